"""PostgreSQL access from trio: psycopg's sync API in worker threads behind a limiter.

psycopg's async API runs only on asyncio, so each unit of work (one sync function, one
transaction) runs in a worker thread on a pooled connection; the limiter equals the pool size, so
a burst queues in trio, not in threads.  The HTTP API gets a `lane()` of half the pool, the group
commit a connection of its own (`own_connection`).  Every call has a deadline: past it nothing is
applied (`_Attempt`), and while PostgreSQL is known to be stalled calls fail at once (`_Breaker`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import outcome
import psycopg
import trio
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from pika import metrics
from pika.errors import DatabaseUnavailable
from pika.queries import Queries, Query

log = logging.getLogger("pika.db")
T = TypeVar("T")
Row = dict[str, Any]

UNAVAILABLE = "Database unavailable, retry"
RETRY_EVERY = 1.0  # s: while PostgreSQL is stalled, one call this often finds out whether it is back


class DatabaseStalled(Exception):
    """PostgreSQL did not complete a call within the deadline, or is known to be stalled:
    nothing of the call was applied (its transaction rolls back).  `str()` is what a client is told."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE)


class Tx:
    """Statements on one connection inside one transaction; used only from a worker thread."""

    def __init__(self, conn: psycopg.Connection[Row], queries: Queries) -> None:
        self._conn = conn
        self._queries = queries

    def one(self, q: Query, **params: Any) -> Row | None:
        cur = self._run(q, params)
        return cur.fetchone() if cur.description else None

    def all(self, q: Query, **params: Any) -> list[Row]:
        cur = self._run(q, params)
        return cur.fetchall() if cur.description else []

    def execute(self, q: Query, **params: Any) -> int:
        return self._run(q, params).rowcount

    def _run(self, q: Query, params: dict[str, Any]) -> psycopg.Cursor[Row]:
        started = time.perf_counter()
        try:
            return self._conn.execute(self._queries[q], params)
        finally:
            metrics.child(metrics.DB_QUERY_SECONDS, q.name).observe(time.perf_counter() - started)


def _pool(url: str, size: int, name: str, **connect: Any) -> ConnectionPool[psycopg.Connection[Row]]:
    """A pool of `size` connections (opened by the caller): dict rows, autocommit outside `run`."""
    kwargs = {"row_factory": dict_row, "autocommit": True, **connect}
    return ConnectionPool(url, min_size=size, max_size=size, open=False, kwargs=kwargs, name=name)


class Database:
    """A pool of connections and the limiter that keeps worker threads to its size."""

    def __init__(self, url: str, queries: Queries, pool_size: int = 10, deadline: float = 3.0) -> None:
        self.url = url
        self.queries = queries
        self.deadline = deadline
        self._breaker = _Breaker()
        self._pool = _pool(url, pool_size, "pika")
        self._limiter = trio.CapacityLimiter(pool_size)
        self._lane: trio.CapacityLimiter | None = None

    def lane(self, connections: int) -> Database:
        """This database for a caller that may use at most `connections` of the pool at once."""
        lane = copy.copy(self)
        lane._lane = trio.CapacityLimiter(max(1, connections))
        lane._breaker = _Breaker()  # a slow HTTP read must not make the live rooms fail fast
        return lane

    @contextlib.asynccontextmanager
    async def own_connection(self, name: str) -> AsyncIterator[Database]:
        """This database on one connection of its own while the block runs, for a caller that
        makes one call at a time (the group commit): every call runs on the same backend, so its
        statements are prepared at first use and its caches stay warm, and no burst of other
        callers can hold the connection it needs.  One connection more than the pool, shown as
        `name` in pg_stat_activity; a broken one is replaced, as in the pool."""
        own = copy.copy(self)  # the same breaker: a stall seen here fails the pool's callers fast too
        own._pool = _pool(self.url, 1, name, prepare_threshold=0, application_name=name)
        own._limiter = trio.CapacityLimiter(1)
        own._lane = None
        own._pool.open(wait=False)  # connects in the background; the first call waits for it
        try:
            yield own
        finally:
            with trio.CancelScope(shield=True):
                await own.close()

    async def run(self, work: Callable[[Tx], T], *, deadline: float | None = None) -> T:
        """Run `work(tx)` in a worker thread, inside one transaction; return what it returns.
        Raises `DatabaseStalled` (and nothing is applied) when the deadline (default: the
        database's) passes first."""
        return await self._in_thread(self._transaction, work, deadline=deadline)

    async def one(self, q: Query, **params: Any) -> Row | None:
        """One statement in autocommit: one round trip instead of BEGIN/statement/COMMIT.
        For reads only: a statement given up at the deadline may still run when PostgreSQL
        wakes up, so a write that memory must agree with goes through `run`."""
        return await self._single(lambda tx: tx.one(q, **params))

    async def all(self, q: Query, **params: Any) -> list[Row]:
        """Like `one`, every row: for reads only."""
        return await self._single(lambda tx: tx.all(q, **params))

    async def execute(self, q: Query, **params: Any) -> int:
        """One write in its own transaction (see `run`); returns the rows it changed."""
        return await self.run(lambda tx: tx.execute(q, **params))

    async def _single(self, work: Callable[[Tx], T]) -> T:
        def run(attempt: _Attempt) -> T:
            with self._pool.connection(timeout=attempt.deadline) as conn:
                return work(Tx(conn, self.queries))

        return await self._in_thread(run)

    async def _in_thread(self, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
        """`fn(attempt, *args)` in a worker thread, within the deadline (see `_Attempt`)."""
        breaker = self._breaker
        if not breaker.admit(time.monotonic()):
            raise DatabaseStalled
        await trio.lowlevel.checkpoint_if_cancelled()  # a cancelled caller starts nothing
        attempt = _Attempt(self.deadline if deadline is None else deadline)
        # Only the deadline gives a thread up: a caller cancelled once it started (a closing socket,
        # a shutdown) waits for its thread as before, so what it started is answered, not orphaned.
        with trio.CancelScope(shield=True):
            with trio.move_on_after(attempt.deadline):
                try:
                    if self._lane is None:
                        result = await self._thread(attempt, fn, *args)
                    else:
                        async with self._lane:
                            result = await self._thread(attempt, fn, *args)
                except PoolTimeout:  # every connection is held by calls PostgreSQL has not answered
                    breaker.stalled(time.monotonic())
                    raise DatabaseStalled from None
                breaker.answered()
                return result
            if attempt.give_up():
                if attempt.started:  # PostgreSQL kept it waiting (not a busy lane or limiter)
                    breaker.stalled(time.monotonic())
                raise DatabaseStalled
            return await attempt.committed()  # its COMMIT was sent before the deadline: see _Attempt

    async def _thread(self, attempt: _Attempt, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(
            attempt.run, fn, *args, limiter=self._limiter, abandon_on_cancel=True
        )

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when PostgreSQL answers `SELECT 1` within `timeout` seconds."""
        with trio.move_on_after(timeout):
            try:
                await trio.to_thread.run_sync(self._ping, timeout, abandon_on_cancel=True)
                return True
            except (psycopg.Error, PoolTimeout):
                return False
        return False

    def _ping(self, timeout: float) -> None:
        with self._pool.connection(timeout=timeout) as conn:
            conn.execute("SELECT 1")  # the one statement not worth a file: a liveness probe

    def _transaction(self, attempt: _Attempt, work: Callable[[Tx], T]) -> T:
        with self._pool.connection(timeout=attempt.deadline) as conn, conn.transaction():
            result = work(Tx(conn, self.queries))
            if not attempt.may_commit():
                raise DatabaseStalled  # the caller gave up: roll back, never commit behind its back
            return result

    async def open(self, timeout: float = 10.0) -> None:
        def _open() -> None:
            try:
                self._pool.open(wait=True, timeout=timeout)
            except PoolTimeout:
                self._pool.close()
                raise DatabaseUnavailable(cannot_connect_message(self.url)) from None

        check_url(self.url)
        await trio.to_thread.run_sync(_open)

    async def close(self) -> None:
        await trio.to_thread.run_sync(self._pool.close)


class _Attempt:
    """One call's handshake with its worker thread, which trio cannot cancel.

    The thread commits only if the caller has not given up; the caller gives up at the deadline
    only if the thread has not begun to commit.  A COMMIT already sent may still succeed when a
    stalled PostgreSQL wakes up, so then the caller waits for its outcome instead: memory is
    changed exactly when the database was (an ACK means committed, a NACK means rolled back).
    """

    __slots__ = ("_lock", "_wake", "abandoned", "committing", "created", "deadline", "result", "started")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # s
        self.created = time.perf_counter()
        self._lock = threading.Lock()
        self._wake: Callable[[], None] | None = None
        self.started = False
        self.abandoned = False
        self.committing = False
        self.result: outcome.Outcome[Any] | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """In the worker thread: `fn(self, *args)`, its outcome kept for a caller still waiting."""
        if self.abandoned:
            raise DatabaseStalled  # given up before it started: do not even begin
        self.started = True
        metrics.DB_POOL_WAIT_SECONDS.observe(time.perf_counter() - self.created)
        result = outcome.capture(fn, self, *args)
        with self._lock:
            self.result = result
            wake = self._wake
        if wake is not None:
            wake()
        return _value(result)

    def may_commit(self) -> bool:
        """In the worker thread, right before COMMIT: False when the caller has given up."""
        with self._lock:
            self.committing = not self.abandoned
            return self.committing

    def give_up(self) -> bool:
        """In trio, at the deadline: True when the call is abandoned (it will roll back)."""
        with self._lock:
            if self.result is None and not self.committing:
                self.abandoned = True
            return self.abandoned

    async def committed(self) -> Any:
        """The outcome of a COMMIT that was in flight at the deadline."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        with self._lock:
            if self.result is None:
                self._wake = wake
        if self.result is None:
            log.warning("database stalled during a COMMIT: waiting for its outcome")
            await done.wait()
        assert self.result is not None
        return _value(self.result)


def _value(result: outcome.Outcome[Any]) -> Any:
    """An outcome's value, or its exception raised: as `unwrap()`, but it may be read twice
    (by the thread's own return, and by a caller that waited past the deadline)."""
    if isinstance(result, outcome.Error):
        raise result.error
    return result.value


class _Breaker:
    """Fail fast while PostgreSQL is known to be stalled: after a call missed its deadline, calls
    are refused at once, except one every RETRY_EVERY seconds, which finds out if it is back."""

    def __init__(self) -> None:
        self.down = False
        self._next_try = 0.0

    def admit(self, now: float) -> bool:
        if not self.down:
            return True
        if now < self._next_try:
            return False
        self._next_try = now + RETRY_EVERY
        return True

    def stalled(self, now: float) -> None:
        if not self.down:
            log.warning("database stalled: failing fast until it answers")
            metrics.DB_STALLS.inc()
        self.down = True
        self._next_try = now + RETRY_EVERY

    def answered(self) -> None:
        if self.down:
            log.warning("database answers again")
            self.down = False


@contextlib.asynccontextmanager
async def open_database(
    url: str, queries: Queries, pool_size: int = 10, deadline: float = 3.0
) -> AsyncIterator[Database]:
    db = Database(url, queries, pool_size, deadline)
    await db.open()
    try:
        yield db
    finally:
        with trio.CancelScope(shield=True):
            await db.close()


def timestamptz(epoch: float) -> datetime:
    """An epoch-seconds time as an aware UTC datetime, the way psycopg binds a `timestamptz`."""
    return datetime.fromtimestamp(epoch, UTC)


def describe_url(url: str) -> str:
    """`database D on host H` for messages: never the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparseable PostgreSQL URL"
    host = info.get("host") or "localhost"
    if "port" in info:
        host = f"{host}:{info['port']}"
    return f"database {info.get('dbname') or info.get('user') or '?'!s} on {host}"


def check_url(url: str) -> None:
    """Raise DatabaseUnavailable with a clear line for a URL psycopg cannot parse."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme and scheme not in {"postgres", "postgresql"}:
        raise DatabaseUnavailable(
            f"PIKA_DATABASE_URL has scheme {scheme!r}; use postgresql://user@host/dbname"
        )
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise DatabaseUnavailable(
            "PIKA_DATABASE_URL is not a valid PostgreSQL URL; use postgresql://user:password@host:port/dbname"
        ) from None


def connect_sync(url: str, **kwargs: Any) -> psycopg.Connection[Row]:
    """One plain connection (migrations, admin commands); DatabaseUnavailable when unreachable."""
    check_url(url)
    try:
        return psycopg.connect(url, row_factory=dict_row, connect_timeout=5, **kwargs)
    except psycopg.OperationalError:
        raise DatabaseUnavailable(cannot_connect_message(url)) from None


def cannot_connect_message(url: str) -> str:
    return (
        f"cannot connect to PostgreSQL: {describe_url(url)} did not accept a connection "
        "(is it running? check PIKA_DATABASE_URL)"
    )
