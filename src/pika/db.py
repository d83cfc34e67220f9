"""PostgreSQL access from trio: psycopg's sync API in worker threads behind a limiter.

psycopg's async API runs only on asyncio, so every statement runs in a worker thread
(`trio.to_thread.run_sync`) on a pooled connection.  The `CapacityLimiter` equals the pool
size: a thread never waits for a connection, and a burst of queries queues in trio, not in
threads.  A unit of work that needs several statements is one sync function run by
`transaction()`: one thread hop, one BEGIN/COMMIT.  The trio-native alternative (psycopg's
private generators) was measured in `loadtest/db.py`; see the README for why this one.

The HTTP API works through a `lane()`: the same pool, but at most half its connections.  A
burst of logins then queues behind itself, never in front of a live room's commit.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

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


class Database:
    """A pool of connections and the limiter that keeps worker threads to its size."""

    def __init__(self, url: str, queries: Queries, pool_size: int = 10) -> None:
        self.url = url
        self.queries = queries
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url,
            min_size=pool_size,
            max_size=pool_size,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
            name="pika",
        )
        self._limiter = trio.CapacityLimiter(pool_size)
        self._lane: trio.CapacityLimiter | None = None

    def lane(self, connections: int) -> Database:
        """This database for a caller that may use at most `connections` of the pool at once."""
        lane = copy.copy(self)
        lane._lane = trio.CapacityLimiter(max(1, connections))
        return lane

    async def run(self, work: Callable[[Tx], T]) -> T:
        """Run `work(tx)` in a worker thread, inside one transaction; return what it returns."""
        return await self._in_thread(self._transaction, work)

    transaction = run

    async def one(self, q: Query, **params: Any) -> Row | None:
        """One statement in autocommit: one round trip instead of BEGIN/statement/COMMIT."""
        return await self._single(lambda tx: tx.one(q, **params))

    async def all(self, q: Query, **params: Any) -> list[Row]:
        return await self._single(lambda tx: tx.all(q, **params))

    async def execute(self, q: Query, **params: Any) -> int:
        return await self._single(lambda tx: tx.execute(q, **params))

    async def _single(self, work: Callable[[Tx], T]) -> T:
        def run() -> T:
            with self._pool.connection() as conn:
                return work(Tx(conn, self.queries))

        return await self._in_thread(run)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        if self._lane is None:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        async with self._lane:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

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

    def _transaction(self, work: Callable[[Tx], T]) -> T:
        with self._pool.connection() as conn, conn.transaction():
            return work(Tx(conn, self.queries))

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


@contextlib.asynccontextmanager
async def open_database(url: str, queries: Queries, pool_size: int = 10) -> AsyncIterator[Database]:
    db = Database(url, queries, pool_size)
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
