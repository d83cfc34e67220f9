"""`python -m pika.admin` as an operator runs it: real subprocesses against the test's database."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import psycopg
import pytest
import trio

from pika.server import Running, serve
from tests.conftest import test_settings
from tests.test_auth import PASSWORD, call, login, register
from tests.wsclient import connect, go_live


@dataclass
class Result:
    code: int
    out: str
    err: str


async def admin(database_url: str, *args: str, stdin: bytes | None = None) -> Result:
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-m", "pika.admin", *args],
            env={**os.environ, "PIKA_DATABASE_URL": database_url},
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture
async def srv(nursery: trio.Nursery, db_url: str) -> Running:
    return await nursery.start(serve, test_settings(db_url))


async def test_revoke_tokens_makes_every_token_of_the_dj_fail(srv: Running) -> None:
    first = (await register(srv.url, "rita@example.com", "Rita")).json()["token"]
    second = (await login(srv.url, "rita@example.com")).json()["token"]

    result = await admin(srv.database_url, "revoke-tokens", "--email", "RITA@example.com")

    assert result.code == 0, result.err
    assert "revoked 2 tokens" in result.out
    for token in (first, second):
        assert (await call(srv.url, "GET", "/api/auth/me", token=token)).status == 401


async def test_list_tokens_shows_name_and_dates_but_never_a_token_or_digest(srv: Running) -> None:
    token = (await register(srv.url, "sam@example.com", "Sam")).json()["token"]
    await call(srv.url, "GET", "/api/auth/me", token=token)  # marks it used
    with psycopg.connect(srv.database_url) as conn:
        digest = conn.execute("SELECT token_sha256 FROM dj_tokens").fetchone()[0]  # type: ignore[index]

    result = await admin(srv.database_url, "list-tokens", "--email", "sam@example.com")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["id", "name", "created", "last", "used", "state"]
    assert len(lines) == 2
    assert "pika-e2e register" in lines[1] and "active" in lines[1] and "never" not in lines[1]
    assert "pk_dj_" not in result.out and token not in result.out and digest not in result.out
    assert "$argon2" not in result.out


@pytest.mark.parametrize(
    "args",
    [
        ["revoke-tokens", "--email", "nobody@example.com"],
        ["list-tokens", "--email", "nobody@example.com"],
        ["reset-password", "--email", "nobody@example.com"],
        ["end-session", "no_such_session"],
    ],
)
async def test_an_unknown_dj_or_session_exits_1_with_one_line(db_url: str, args: list[str]) -> None:
    result = await admin(db_url, *args)

    assert result.code == 1
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1
    assert "no " in result.err and "Traceback" not in result.err


async def test_reset_password_prints_one_that_logs_in_and_the_old_one_stops(srv: Running) -> None:
    await register(srv.url, "tia@example.com", "Tia")

    result = await admin(srv.database_url, "reset-password", "--email", "tia@example.com")

    assert result.code == 0, result.err
    password = result.out.splitlines()[0].rsplit(": ", 1)[1]
    assert len(password) >= 12
    assert (await login(srv.url, "tia@example.com", password)).status == 200
    assert (await login(srv.url, "tia@example.com", PASSWORD)).status == 401


async def test_reset_password_reads_stdin_and_refuses_a_short_one(srv: Running) -> None:
    await register(srv.url, "uma@example.com", "Uma")

    short = await admin(
        srv.database_url, "reset-password", "--email", "uma@example.com", "--stdin", stdin=b"short\n"
    )
    chosen = await admin(
        srv.database_url,
        "reset-password",
        "--email",
        "uma@example.com",
        "--stdin",
        stdin=b"a new password 42\n",
    )

    assert short.code == 1 and "8-128" in short.err
    assert chosen.code == 0, chosen.err
    assert "a new password 42" not in chosen.out
    assert (await login(srv.url, "uma@example.com", "a new password 42")).status == 200


async def test_end_session_marks_a_live_session_ended_by_admin(srv: Running) -> None:
    async with connect(srv.url) as dj:
        await go_live(dj, "admin_end_0001")

    result = await admin(srv.database_url, "end-session", "admin_end_0001")
    again = await admin(srv.database_url, "end-session", "admin_end_0001")

    assert result.code == 0, result.err
    assert "ends it now" in result.out
    with psycopg.connect(srv.database_url) as conn:
        row = conn.execute("SELECT ended_at, end_reason FROM sessions WHERE id = 'admin_end_0001'").fetchone()
    assert row is not None and row[0] is not None and row[1] == "admin"
    assert again.code == 1 and "already ended" in again.err


async def test_database_trouble_exits_2_with_one_line(db_url: str) -> None:
    result = await admin("postgresql://nobody@/nodb?host=/nonexistent", "list-tokens", "--email", "a@b.co")

    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_help_says_a_running_server_ends_the_session_at_once() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pika.admin", "end-session", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0
    assert "SESSION_ENDED" in done.stdout
