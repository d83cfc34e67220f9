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
from collections.abc import Callable
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


class Ownership:
    def __init__(self, url: str, queries: Queries, on_lost: Callable[[set[str]], None] | None = None) -> None:
        self.url = url
        self.queries = queries
        self.on_lost = on_lost  # told which rooms this process no longer owns
        self.owned: set[str] = set()
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

    async def release(self, session_id: str) -> None:
        if session_id in self.owned:
            self.owned.discard(session_id)
            await self._call(BUS_RELEASE, session_id=session_id)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check the lock connection every CHECK_EVERY seconds while rooms are owned."""
        task_status.started()
        while True:
            await trio.sleep(CHECK_EVERY)
            if self.owned:
                with contextlib.suppress(DatabaseStalled):  # reported to on_lost by _call
                    await self.check()

    async def check(self) -> None:
        """Ask the lock connection whether it is alive: if not, its rooms are reported lost."""
        await self._call(BUS_PING)

    async def close(self) -> None:
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
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5, row_factory=dict_row)
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
                "lock connection lost: rooms no longer owned",
                extra={"fields": {"rooms": len(lost), "error": exc}},
            )
            if self.on_lost is not None:
                self.on_lost(lost)
