"""OPERATIONS.md cannot rot: every `sql` and `sh` block in it runs here, in the runbook's order,
against a seeded database (tests/ops_seed.sql) and a running server on it.

`sql` blocks run through psycopg and must return the columns and plausible values listed in
EXPECTED (keyed by the block's first `-- title` line); `sh` blocks run in bash with `set -euo
pipefail` and the server's database and port in the environment; `sh no-run` blocks need the
production host (compose, podman) and are only checked to be few.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import trio

from pika.config import SQL_DIR
from tests.conftest import StartServer
from tests.test_retention import seed

DOC = SQL_DIR.parent / "OPERATIONS.md"
FENCE = re.compile(r"^```([a-z]+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

Rows = list[tuple[Any, ...]]

#: title line -> (columns, a check on the rows the seeded database gives)
EXPECTED: dict[str, tuple[list[str], Callable[[Rows], bool]]] = {
    "live sessions now": (
        ["session_id", "dj_name", "started_at", "last_activity_at", "dj_away", "listeners"],
        lambda rows: [(r[0], r[5]) for r in rows] == [("friday_milonga", 20), ("saturday_social", 0)],
    ),
    "sessions of one DJ account": (
        ["session_id", "dj_name", "started_at", "ended_at", "end_reason", "plays"],
        lambda rows: {r[0] for r in rows} == {"friday_milonga", "summer_marathon"} and rows[0][5] == 25,
    ),
    "disconnect rate per day": (
        ["day", "connections", "disconnects", "disconnect_pct"],
        # A day whose sessions began the evening before has disconnects and no connections: no rate.
        lambda rows: (
            sum(r[2] for r in rows) == 6
            and all(r[3] is None if r[1] == 0 else 0 <= r[3] <= 100 for r in rows)
        ),
    ),
    "reconnect durations": (
        ["reconnects", "p50_ms", "p95_ms", "max_ms"],
        lambda rows: rows[0][0] == 6 and rows[0][1] == 7150 and rows[0][3] == 12500,
    ),
    "busiest sessions": (
        ["session_id", "dj_name", "started_at", "dancers", "likes"],
        lambda rows: rows[0][0] == "friday_milonga" and rows[0][3:] == (30, 250) and len(rows) == 4,
    ),
    "client versions": (
        ["version", "connects", "last_seen"],
        lambda rows: [(r[0], r[1]) for r in rows] == [("1.4.1", 3), ("1.4.0", 2), ("1.3.2", 1)],
    ),
    "active polls": (
        ["poll_id", "session_id", "question", "started_at", "ends_at", "votes"],
        lambda rows: [(r[1], r[2], r[5]) for r in rows] == [("friday_milonga", "Next tanda?", 12)],
    ),
    "tokens in use": (
        ["email", "token_id", "name", "created_at", "last_used_at"],
        # dj@example.com's were revoked by the incident section above
        lambda rows: (
            [(r[0], r[2]) for r in rows] == [("mo@example.com", "laptop"), ("mo@example.com", "phone")]
        ),
    ),
    "table sizes": (
        ["table_name", "approx_rows", "size"],
        lambda rows: {"session_events", "likes", "sessions"} <= {r[0] for r in rows},
    ),
}


def blocks() -> list[tuple[str, str, str]]:
    """(language, the rest of the info string, body) of every fenced block, in order."""
    return [(m[1], m[2].strip(), m[3]) for m in FENCE.finditer(DOC.read_text(encoding="utf-8"))]


def test_every_block_is_sql_sh_or_shown_not_run_and_every_sql_block_has_an_expectation() -> None:
    kinds = [(lang, info) for lang, info, _ in blocks()]
    assert set(kinds) <= {("sql", ""), ("sh", ""), ("sh", "no-run")}, kinds
    assert kinds.count(("sh", "no-run")) <= 12  # the production host's few; everything else runs
    titles = [body.splitlines()[0].removeprefix("-- ") for lang, _, body in blocks() if lang == "sql"]
    assert sorted(titles) == sorted(EXPECTED)


async def test_every_sql_and_sh_block_of_the_runbook_works(
    db_url: str, start_server: StartServer, tmp_path: Path
) -> None:
    seed(db_url)
    # the seeded live session has no DJ connected: keep it live (grace) while the blocks run
    running = await start_server(dj_grace_seconds=3600.0)
    env = {**os.environ, "PIKA_DATABASE_URL": db_url, "PIKA_PORT": str(running.port)}
    env.pop("PIKA_METRICS_TOKEN", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    ran = 0
    for lang, info, body in blocks():
        if info == "no-run":
            continue
        if lang == "sql":
            title = body.splitlines()[0].removeprefix("-- ")
            columns, plausible = EXPECTED[title]
            with psycopg.connect(db_url, autocommit=True) as conn:
                cur = conn.execute(body)
                assert cur.description is not None, title
                got = [c.name for c in cur.description]
                rows = cur.fetchall()
            assert got == columns, title
            assert rows and plausible(rows), f"{title}: {rows}"
        else:
            with trio.fail_after(120):
                done = await trio.run_process(
                    ["bash", "-euo", "pipefail", "-c", body],
                    cwd=tmp_path,
                    env=env,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            assert done.returncode == 0, (
                f"{body}\nstdout: {done.stdout.decode()}\nstderr: {done.stderr.decode()}"
            )
        ran += 1
    assert ran >= 20
