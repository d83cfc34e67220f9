"""PostgreSQL round trips from trio, two ways, so the choice in `pika.db` rests on numbers.

psycopg's async API runs only on asyncio, so from trio there are two ways to talk to PostgreSQL:

* threads: what Pika! ships (`pika.db.Database`): a sync psycopg pool, every statement in a
  worker thread via `trio.to_thread.run_sync`, behind a `trio.CapacityLimiter`.
* native: psycopg connections in non-blocking mode, driven by psycopg's generator core and
  trio's `wait_readable` / `wait_writable`.  **This uses private psycopg API**
  (`psycopg.generators`, `Connection._connect_gen`, `Cursor._execute_gen`,
  `Connection._commit_gen`), which may change in any psycopg release; it lives here, in a
  benchmark, and nowhere in `src/`.

Both run the same SQL text (`sql/queries/insert_session_event.sql`, `get_session.sql`) with
the same parameters, row factory, prepared-statement threshold and transaction shape
(BEGIN, statement, COMMIT: `Database` wraps every call in a transaction), so the only
difference measured is how trio waits for the socket.

    python -m loadtest.db [--seconds 3] [--warmup 0.5] [--database-url URL] [--json FILE]

Without `--database-url` it starts a throwaway embedded PostgreSQL and applies the
migrations; with one, the schema must already be applied (`Migrator(url, ...).up()`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
import trio
from psycopg import generators  # private module: used only for its Wait / Ready enums
from psycopg.abc import PQGen, PQGenConn
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pika.config import SQL_DIR
from pika.db import Database, describe_url
from pika.embedded import embedded_postgres
from pika.migrate import Migrator
from pika.queries import Queries, load_queries, query

RV = TypeVar("RV")
Row = dict[str, Any]
Op = Callable[[], Awaitable[object]]

INSERT_SESSION_EVENT = query("insert_session_event")
GET_SESSION = query("get_session")

TASK_COUNTS = (1, 20)
POOL_SIZE = max(TASK_COUNTS)  # one connection per task at the highest concurrency, both paths
OPS = ("INSERT", "SELECT")
PATHS = ("threads", "native")
CELL_GRACE_SECONDS = 60.0  # a cell that overruns its duration by this much is stuck: give up

WAIT_R, WAIT_W, WAIT_RW = generators.WAIT_R, generators.WAIT_W, generators.WAIT_RW
READY_R, READY_W = generators.READY_R, generators.READY_W


# --- trio-native psycopg (private psycopg API) ----------------------------------------------


async def _wait_fd(fileno: int, state: int) -> int:
    """Wait until `fileno` is ready as `state` (a psycopg `Wait`) asks; return a psycopg `Ready`."""
    if state == WAIT_R:
        await trio.lowlevel.wait_readable(fileno)
        return READY_R
    if state == WAIT_W:
        await trio.lowlevel.wait_writable(fileno)
        return READY_W
    if state != WAIT_RW:
        raise psycopg.InternalError(f"bad poll state from psycopg: {state!r}")
    # Read or write, whichever comes first: only while libpq cannot flush a large query, when
    # the server may be waiting for us to read before it reads more.  Rare, so a nursery is fine.
    ready = 0
    async with trio.open_nursery() as nursery:

        async def one(wait: Callable[[int], Awaitable[None]], flag: int) -> None:
            nonlocal ready
            await wait(fileno)
            ready |= flag
            nursery.cancel_scope.cancel()

        nursery.start_soon(one, trio.lowlevel.wait_readable, READY_R)
        nursery.start_soon(one, trio.lowlevel.wait_writable, READY_W)
    return ready


async def wait_trio(gen: PQGen[RV], fileno: int) -> RV:
    """Drive a psycopg generator to completion on `fileno`: trio's `psycopg.waiting.wait_async`.

    The generator does all libpq work without blocking and yields what it waits for; we park
    the task in trio's I/O loop until the socket is ready and send the readiness back.
    """
    try:
        state = next(gen)
    except StopIteration as ex:
        await trio.lowlevel.checkpoint()  # trio's rule: every async call is a checkpoint
        return cast(RV, ex.value)
    try:
        while True:
            state = gen.send(await _wait_fd(fileno, state))
    except StopIteration as ex:
        return cast(RV, ex.value)


async def wait_conn_trio(gen: PQGenConn[RV]) -> RV:
    """Like `wait_trio`, for the connect generator, whose socket may change as it goes."""
    try:
        fileno, state = next(gen)
        while True:
            fileno, state = gen.send(await _wait_fd(fileno, state))
    except StopIteration as ex:
        return cast(RV, ex.value)


class NativePool:
    """Fixed-size pool of non-blocking psycopg connections, waited on by trio, never by threads.

    Idle connections sit in a memory channel, so taking one costs about what the psycopg pool's
    checkout costs the threaded path.  A connection that fails or is cancelled mid-statement is
    closed, not reused: its protocol state is unknown.
    """

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[psycopg.Connection[Row]](math.inf)
        self._all: list[psycopg.Connection[Row]] = []

    async def open(self, url: str, size: int) -> None:
        conninfo = make_conninfo(url)
        for _ in range(size):
            # Connection._connect_gen: private; leaves the libpq connection in non-blocking mode.
            conn = await wait_conn_trio(psycopg.Connection._connect_gen(conninfo))
            conn = cast(psycopg.Connection[Row], conn)
            conn.row_factory = dict_row  # as in pika.db.Database
            # Not autocommit: the first statement sends BEGIN, `_commit_gen` sends COMMIT, the
            # same three round trips as `Database`'s autocommit connection + `conn.transaction()`.
            self._all.append(conn)
            self._send.send_nowait(conn)

    def close(self) -> None:
        for conn in self._all:
            conn.close()

    async def one(self, sql: str, params: dict[str, Any]) -> Row | None:
        return await self._run(sql, params, fetch=True)

    async def execute(self, sql: str, params: dict[str, Any]) -> None:
        await self._run(sql, params, fetch=False)

    async def _run(self, sql: str, params: dict[str, Any], *, fetch: bool) -> Row | None:
        conn = await self._receive.receive()
        try:
            cur = conn.cursor()
            fileno = conn.pgconn.socket
            await wait_trio(cur._execute_gen(sql, params), fileno)  # private: Cursor.execute's core
            row = cur.fetchone() if fetch and cur.description else None  # no I/O: result is local
            await wait_trio(conn._commit_gen(), fileno)  # private: Connection.commit's core
        except BaseException:
            conn.close()
            raise
        self._send.send_nowait(conn)
        return row


# --- measurement ----------------------------------------------------------------------------


@dataclass
class Cell:
    """One measured combination; latencies are per call as the caller sees them."""

    path: str
    tasks: int
    op: str
    ops: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float


def _percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile in milliseconds (no interpolation: p99 is a latency that happened)."""
    if not sorted_ns:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1e6


async def _hammer(op: Op, tasks: int, seconds: float) -> tuple[list[int], float]:
    """Run `op` back to back in `tasks` tasks for `seconds`; return latencies (ns) and wall time.

    Each task finishes the call in flight at the deadline, so the wall time includes it.
    """
    latencies: list[int] = []
    started = time.perf_counter()
    stop_at = started + seconds

    async def worker() -> None:
        clock = time.perf_counter_ns
        record = latencies.append
        while time.perf_counter() < stop_at:
            t0 = clock()
            await op()
            record(clock() - t0)

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    return latencies, time.perf_counter() - started


async def measure(path: str, op_name: str, op: Op, tasks: int, seconds: float, warmup: float) -> Cell:
    """Warm up (thread cache, pool, prepared statements, caches), then measure for `seconds`."""
    with trio.fail_after(warmup + seconds + CELL_GRACE_SECONDS):
        if warmup > 0:
            await _hammer(op, tasks, warmup)
        latencies, elapsed = await _hammer(op, tasks, seconds)
    latencies.sort()
    return Cell(
        path=path,
        tasks=tasks,
        op=op_name,
        ops=len(latencies),
        seconds=round(elapsed, 3),
        ops_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(_percentile(latencies, 0.50), 3),
        p99_ms=round(_percentile(latencies, 0.99), 3),
    )


def _insert_params(session_id: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "event_type": "connect",
        "metadata": Jsonb({"source": "loadtest"}),
        "created_at": dt.datetime.now(dt.UTC),
    }


async def run_all(url: str, queries: Queries, session_id: str, seconds: float, warmup: float) -> list[Cell]:
    """Every (tasks, op) for both paths, the paths alternating so that drift hits both alike."""
    insert_sql, select_sql = queries[INSERT_SESSION_EVENT], queries[GET_SESSION]
    db = Database(url, queries, pool_size=POOL_SIZE)
    native = NativePool()
    await db.open()
    try:
        await native.open(url, POOL_SIZE)

        async def threads_insert() -> None:
            await db.execute(INSERT_SESSION_EVENT, **_insert_params(session_id))

        async def threads_select() -> None:
            if await db.one(GET_SESSION, session_id=session_id) is None:
                raise RuntimeError("fixture session row not found")

        async def native_insert() -> None:
            await native.execute(insert_sql, _insert_params(session_id))

        async def native_select() -> None:
            if await native.one(select_sql, {"session_id": session_id}) is None:
                raise RuntimeError("fixture session row not found")

        ops: dict[tuple[str, str], Op] = {
            ("threads", "INSERT"): threads_insert,
            ("threads", "SELECT"): threads_select,
            ("native", "INSERT"): native_insert,
            ("native", "SELECT"): native_select,
        }
        cells = []
        for tasks in TASK_COUNTS:
            for op_name in OPS:
                for path in PATHS:
                    cell = await measure(path, op_name, ops[path, op_name], tasks, seconds, warmup)
                    print(f"  measured {path} x{tasks} {op_name}", file=sys.stderr, flush=True)
                    cells.append(cell)
        return cells
    finally:
        native.close()
        with trio.CancelScope(shield=True):
            await db.close()


# --- setup, report ------------------------------------------------------------------------------


@contextlib.contextmanager
def database(url: str | None) -> Iterator[tuple[str, str]]:
    """Yield (url, description): the given database, or a throwaway embedded one with the schema."""
    if url:
        yield url, describe_url(url)
        return
    with (
        tempfile.TemporaryDirectory(prefix="pika-loadtest-") as tmp,
        embedded_postgres(Path(tmp) / "pgdata") as url,
    ):
        Migrator(url, SQL_DIR / "migrations").up()
        yield url, "embedded PostgreSQL on a Unix socket (throwaway)"


@contextlib.contextmanager
def fixture_session(url: str) -> Iterator[tuple[str, str]]:
    """Benchmark setup only: one session row for SELECT to find; removed again with its events.

    Yields (session id, PostgreSQL server version).

    Inline SQL on purpose: it is not something Pika! runs, just this benchmark's fixture.
    """
    session_id = f"loadtest-{secrets.token_hex(8)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sessions (id, dj_name, resume_key_sha256) VALUES (%s, %s, %s)",
            (session_id, "Load Test", "0" * 64),
        )
        row = conn.execute("SHOW server_version").fetchone()
    try:
        yield session_id, str(row[0]) if row else "?"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM session_events WHERE session_id = %s", (session_id,))
            conn.execute("DELETE FROM sessions WHERE id = %s", (session_id,))


def machine(db_description: str, server_version: str) -> dict[str, Any]:
    """What the numbers depend on; printed above the table and stored in the JSON."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__})",
        "trio": trio.__version__,
        "postgresql": server_version,
        "database": db_description,
    }


def render(header: dict[str, Any], settings: dict[str, Any], cells: list[Cell]) -> str:
    lines = [
        f"PostgreSQL round trips from trio: {header['cpu_count']} cores "
        f"({header['usable_cpus']} usable), Python {header['python']}, psycopg {header['psycopg']}, "
        f"trio {header['trio']}, PostgreSQL {header['postgresql']}, {header['database']}",
        f"{settings['seconds']:g} s per cell after {settings['warmup']:g} s warm-up; "
        f"pool of {settings['pool_size']} for both paths; each call = BEGIN + statement + COMMIT",
        "",
        f"{'path':<8} {'tasks':>5} {'op':<6} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for c in cells:
        lines.append(
            f"{c.path:<8} {c.tasks:>5} {c.op:<6} {c.ops_per_s:>9,.0f} {c.p50_ms:>8.3f} {c.p99_ms:>8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.db", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured duration per cell (default 3)")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="warm-up per cell, not measured (default 0.5)"
    )
    parser.add_argument(
        "--database-url",
        help="an existing database with the schema applied; default: a throwaway embedded PostgreSQL",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be > 0 and --warmup >= 0")

    queries = load_queries(SQL_DIR / "queries")
    settings = {"seconds": args.seconds, "warmup": args.warmup, "pool_size": POOL_SIZE}
    with database(args.database_url) as (url, description), fixture_session(url) as (session_id, version):
        cells = trio.run(run_all, url, queries, session_id, args.seconds, args.warmup)
    header = machine(description, version)
    print(render(header, settings, cells))
    if args.json:
        report = {"machine": header, "settings": settings, "results": [asdict(c) for c in cells]}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
