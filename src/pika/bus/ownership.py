"""Which process owns a room's decisions: the one holding a PostgreSQL advisory lock on it.

Each process keeps one dedicated connection and takes a session-level `pg_try_advisory_lock`
keyed by a 64-bit hash of the session id.  A lock and not a row lock (`SELECT … FOR UPDATE` or an
`owner` column): a session-level lock lives exactly as long as its connection, so a process
killed with SIGKILL, or cut off from the database, loses its rooms at once and another process
can claim them; nothing stale is left to clean up and no transaction stays open for hours.  An
owner learns it lost its connection (and so its rooms) at its next call or check.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import trio
from psycopg.rows import dict_row

from pika.db import DatabaseStalled
from pika.queries import Queries, query

log = logging.getLogger("pika.bus.ownership")

BUS_CLAIM = query("bus_claim")
BUS_RELEASE = query("bus_release")
BUS_PING = query("bus_ping")

CHECK_EVERY = 5.0  # s between two checks that the lock connection is alive
# A host that vanishes (power, network) leaves its TCP connection half open: both ends probe it,
# so PostgreSQL drops it, and its locks, within about 25 s instead of the OS's two hours.
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "options": "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
}


@contextlib.asynccontextmanager
async def ownership(url: str, queries: Queries) -> AsyncIterator[Ownership]:
    """This process's Ownership, checked while open, closed (its rooms freed) on exit."""
    owner = Ownership(url, queries)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(owner.run)
            yield owner
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await owner.close()


class Ownership:
    def __init__(self, url: str, queries: Queries, on_lost: Callable[[set[str]], None] | None = None) -> None:
        self.url = url
        self.queries = queries
        self.on_lost = on_lost  # told which rooms another process took while the connection was away
        self.owned: set[str] = set()
        self.regaining: set[str] = set()  # owned until the lock connection died: claimed again
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = trio.Lock()  # one statement at a time on the one connection

    async def claim(self, session_id: str) -> bool:
        """Own `session_id` unless another process does; True when this process owns it now."""
        if session_id in self.owned:
            return True  # taken twice, a session-level lock would need two unlocks
        row = await self._call(BUS_CLAIM, session_id=session_id)
        if row["claimed"]:
            self.owned.add(session_id)
        return bool(row["claimed"])

    async def adopt(self, session_id: str) -> None:
        """Own a room this process has just opened (a new session): while the database is away
        it is claimed as soon as it is back, so opening the room does not wait for it."""
        try:
            await self.claim(session_id)
        except DatabaseStalled:
            self.regaining.add(session_id)

    async def release(self, session_id: str) -> None:
        """Give a room up; when the database is away the lock is gone with the connection anyway."""
        self.regaining.discard(session_id)
        if session_id in self.owned:
            self.owned.discard(session_id)
            with contextlib.suppress(DatabaseStalled):
                await self._call(BUS_RELEASE, session_id=session_id)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check the lock connection every CHECK_EVERY seconds while rooms are owned, and claim
        again the rooms a dead connection lost."""
        task_status.started()
        while True:
            await trio.sleep(CHECK_EVERY)
            with contextlib.suppress(DatabaseStalled):  # reported to on_lost by _call
                if self.owned:
                    await self.check()
                await self.regain()

    async def regain(self) -> None:
        """Claim again what the lost connection owned; a room another process took meanwhile is
        reported to `on_lost` (until the relay lands, its clients must reconnect to that one)."""
        for session_id in list(self.regaining):
            if not await self.claim(session_id):
                log.error("room now owned by another process", extra={"fields": {"session": session_id}})
                if self.on_lost is not None:
                    self.on_lost({session_id})
            self.regaining.discard(session_id)

    async def check(self) -> None:
        """Ask the lock connection whether it is alive: if not, its rooms are reported lost."""
        await self._call(BUS_PING)

    async def close(self) -> None:
        """Close the lock connection: every room it owned is free for another process."""
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self.owned.clear()

    async def _call(self, statement: Any, **params: Any) -> dict[str, Any]:
        """Run one statement; when the connection turns out dead (every lock gone with it),
        report the loss and try once more on a new connection."""
        async with self._lock:
            for attempt in (1, 2):
                try:
                    return await trio.to_thread.run_sync(self._execute, statement, params)
                except psycopg.OperationalError as exc:
                    self._lost(exc)
                    if attempt == 2:
                        raise DatabaseStalled() from exc
            raise AssertionError("unreachable")

    def _execute(self, statement: Any, params: dict[str, Any]) -> dict[str, Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=5, row_factory=dict_row, **KEEPALIVES
            )
        row = self._conn.execute(self.queries[statement], params).fetchone()
        assert row is not None
        return row

    def _lost(self, exc: Exception) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        lost, self.owned = self.owned, set()
        if lost:
            log.warning(
                "lock connection lost: claiming its rooms again",
                extra={"fields": {"rooms": len(lost), "error": exc}},
            )
            self.regaining |= lost
