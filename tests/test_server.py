"""The server as an operator meets it: /health, /metrics, JSON errors, the command line, shutdown.

HTTP goes through the standard library in a worker thread; the command line runs as a real
subprocess (`python -m pika …`), so exit codes, stderr lines and leftover processes are real.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

import pika
from pika.config import SQL_DIR, describe
from pika.embedded import embedded_postgres
from pika.migrate import Migrator
from pika.server import Running, serve
from tests.conftest import hubs
from tests.conftest import test_settings as settings_for
from tests.procs import proc_stat, process_tree
from tests.wsclient import connect

# PROTOCOL.md's fields, and the process that answered (README, Protocol additions)
HEALTH_FIELDS = {
    "status",
    "version",
    "timestamp",
    "activeSessions",
    "connections",
    "database",
    "process",
    "pid",
}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _request(url: str, method: str, path: str, timeout: float) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return Reply(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        conn.close()


async def fetch(url: str, path: str, method: str = "GET", timeout: float = 10.0) -> Reply:
    """One HTTP request to the server at `url`; fails the test if no answer comes within `timeout`."""
    with trio.fail_after(timeout):
        return await trio.to_thread.run_sync(_request, url, method, path, timeout, abandon_on_cancel=True)


# -- /health, /metrics, errors ------------------------------------------------------------------


async def test_health_answers_ok_with_exactly_the_documented_fields(server: Running) -> None:
    reply = await fetch(server.url, "/health")

    assert reply.status == 200
    assert reply.content_type.startswith("application/json")
    body = reply.json()
    assert set(body) == HEALTH_FIELDS
    assert body["status"] == "ok"
    assert body["version"] == pika.__version__
    assert body["activeSessions"] == 0
    assert body["connections"] == 0
    assert body["database"] == "connected"
    assert body["pid"] == os.getpid() and body["process"] == f"{socket.gethostname()}:{os.getpid()}"
    assert ISO_Z.match(body["timestamp"]), body["timestamp"]
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


@contextlib.asynccontextmanager
async def private_postgres(tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    """A migrated embedded PostgreSQL of this test's own; yields (url, postmaster pid)."""
    pgdata = tmp_path / "pgdata"
    embedded = embedded_postgres(pgdata)
    with trio.fail_after(60):
        url = await trio.to_thread.run_sync(embedded.__enter__)
    try:
        with trio.fail_after(60):
            await trio.to_thread.run_sync(Migrator(url, SQL_DIR / "migrations").up)
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        yield url, pid
    finally:
        with trio.CancelScope(shield=True), trio.fail_after(60):
            await trio.to_thread.run_sync(embedded.__exit__, None, None, None)


async def wait_until_gone(pid: int, timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while proc_stat(pid) is not None:
            await trio.sleep(0.05)


async def test_health_answers_503_when_postgresql_stops(tmp_path: Path) -> None:
    async with private_postgres(tmp_path) as (url, postmaster), trio.open_nursery() as nursery:
        running: Running = await nursery.start(serve, settings_for(url))
        assert (await fetch(running.url, "/health")).status == 200

        os.kill(postmaster, signal.SIGINT)  # PostgreSQL's "fast" shutdown: backends end, then it exits
        await wait_until_gone(postmaster)
        started = time.monotonic()
        reply = await fetch(running.url, "/health", timeout=5.0)

        assert time.monotonic() - started < 5.0
        assert reply.status == 503
        body = reply.json()
        assert set(body) == HEALTH_FIELDS
        assert body["status"] == "error"
        assert body["database"] == "unavailable"
        nursery.cancel_scope.cancel()


async def test_health_answers_503_within_three_seconds_when_postgresql_hangs(tmp_path: Path) -> None:
    async with private_postgres(tmp_path) as (url, postmaster), trio.open_nursery() as nursery:
        running: Running = await nursery.start(serve, settings_for(url))
        assert (await fetch(running.url, "/health")).status == 200
        frozen = process_tree(postmaster)  # postmaster and backends: nothing answers, nothing fails
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            reply = await fetch(running.url, "/health", timeout=5.0)
            elapsed = time.monotonic() - started
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

        assert reply.status == 503
        assert elapsed < 3.0
        assert reply.json()["database"] == "unavailable"
        assert (await fetch(running.url, "/health")).status == 200  # and it recovers once PostgreSQL does
        nursery.cancel_scope.cancel()


async def test_metrics_answers_prometheus_text_with_the_pika_series(server: Running) -> None:
    reply = await fetch(server.url, "/metrics")

    assert reply.status == 200
    assert reply.content_type.startswith("text/plain")
    text = reply.body.decode()
    for name in (
        "pika_ws_connections",
        "pika_live_sessions",
        "pika_ws_messages_in_total",
        "pika_ws_slow_consumer_closes_total",
        "pika_db_query_seconds",
    ):
        assert f"# TYPE {name}" in text or f"# TYPE {name.removesuffix('_total')}" in text, name


async def test_a_program_that_embeds_the_server_keeps_its_interpreter_settings(
    nursery: trio.Nursery, db_url: str
) -> None:
    before = (gc.get_threshold(), sys.getswitchinterval(), len(gc.callbacks), gc.get_freeze_count())
    await nursery.start(serve, settings_for(db_url))
    assert (gc.get_threshold(), sys.getswitchinterval(), len(gc.callbacks), gc.get_freeze_count()) == before


async def test_an_unknown_route_answers_404_in_json(server: Running) -> None:
    reply = await fetch(server.url, "/no/such/page")

    assert reply.status == 404
    assert reply.content_type.startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]


async def test_a_wrong_method_answers_405_in_json(server: Running) -> None:
    reply = await fetch(server.url, "/health", method="POST")

    assert reply.status == 405
    assert reply.content_type.startswith("application/json")
    body = reply.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str) and body["error"]


# -- graceful shutdown --------------------------------------------------------------------------


async def test_shutting_down_closes_a_connected_client_with_1012(server: Running) -> None:
    async with connect(server.url) as client:
        with trio.fail_after(5):
            while sum(hub.connection_count for hub in hubs(server)) < 1:
                await trio.sleep(0.01)
        server.shutdown.set()

        assert await client.closed_with(timeout=5.0) == 1012


# -- the command line ---------------------------------------------------------------------------


def cli_env(**pika: str) -> dict[str, str]:
    """This environment without any PIKA_* variable (or a borrowed XDG_RUNTIME_DIR), plus `pika`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIKA_") and k != "XDG_RUNTIME_DIR"}
    env.update({f"PIKA_{k.upper()}": v for k, v in pika.items()})
    return env


async def run_pika(*args: str, cwd: Path, timeout: float = 30.0, **pika: str) -> Any:
    """`python -m pika ARGS` to completion; the CompletedProcess with text stdout and stderr."""
    with trio.fail_after(timeout):
        proc = await trio.run_process(
            [sys.executable, "-m", "pika", *args],
            env=cli_env(**pika),
            cwd=cwd,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    proc.stdout = proc.stdout.decode()
    proc.stderr = proc.stderr.decode()
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_processes_using(path: Path) -> list[int]:
    """Pids of running processes named postgres whose command line mentions `path`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "postgres" in cmdline and str(path) in cmdline:
            found.append(int(entry.name))
    return found


async def test_the_readme_command_serves_health_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    port = free_port()
    env = cli_env(data_dir=str(state), port=str(port), live_port="0", log_level="WARNING")
    url = f"http://127.0.0.1:{port}"
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("wb") as stderr:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "pika", "serve"], env=env, cwd=tmp_path, stderr=stderr
        )
    try:
        with trio.fail_after(30):
            while True:
                assert proc.poll() is None, f"the server exited early: {stderr_path.read_text()}"
                with contextlib.suppress(OSError):
                    reply = await trio.to_thread.run_sync(_request, url, "GET", "/health", 2.0)
                    if reply.status == 200:
                        break
                await trio.sleep(0.2)
        assert reply.json()["database"] == "connected"
        # the command tunes the interpreter: full collections are timed for ops to see
        metrics = await trio.to_thread.run_sync(_request, url, "GET", "/metrics", 2.0)
        count = re.search(
            r'^pika_gc_pause_seconds_count\{generation="2"\} (\S+)$', metrics.body.decode(), re.M
        )
        assert count is not None and float(count.group(1)) >= 1

        proc.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            returncode = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.fail_after(5):
                await proc.wait()
        leftovers = postgres_processes_using(state)
        for pid in leftovers:  # this test's own PostgreSQL: do not leave it behind for the next one
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)

    assert returncode == 0, stderr_path.read_text()
    assert leftovers == []
    assert (state / "pgdata" / "PG_VERSION").is_file()


async def test_an_unreachable_database_ends_serve_with_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = await run_pika(
        "serve", cwd=tmp_path, database_url="postgresql://pika:supersecret@127.0.0.1:1/pika_db"
    )

    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "127.0.0.1:1" in proc.stderr
    assert "pika_db" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "supersecret" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("url", ["not a url at all", "mysql://x"])
async def test_a_malformed_database_url_ends_serve_with_one_line_and_exit_2(url: str, tmp_path: Path) -> None:
    proc = await run_pika("serve", cwd=tmp_path, database_url=url)

    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "PIKA_DATABASE_URL" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_no_migrate_on_an_empty_database_refuses_naming_the_pending_file(
    empty_db: str, tmp_path: Path
) -> None:
    proc = await run_pika("serve", "--no-migrate", cwd=tmp_path, database_url=empty_db, port="0")

    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "0001_initial_schema.sql" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"]])
async def test_help_lists_every_setting_by_its_environment_variable(args: list[str], tmp_path: Path) -> None:
    proc = await run_pika(*args, cwd=tmp_path)

    assert proc.returncode == 0
    missing = [name for name, _default, _help, _group in describe() if name not in proc.stdout]
    assert missing == []
