"""The listeners behind each LISTENER_COUNT, kept in PostgreSQL so that a restart or a crash
does not forget them (PROTOCOL.md §7: a client counts for five minutes after it left).
Written in batches off the hot path; read back by the hub at start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from pika.db import Database, Tx, timestamptz
from pika.live.clock import Clock
from pika.queries import query

log = logging.getLogger("pika.listeners")

UPSERT_SESSION_LISTENERS = query("upsert_session_listeners")
TOUCH_SESSION_LISTENERS = query("touch_session_listeners")


class ListenerJournal:
    """Listener changes waiting for the next flush, and the task that flushes them.

    Rooms note a client's first connection opening and its last one closing (a dict write, never
    an await); every `interval` seconds one transaction writes what changed and stamps the
    sessions with a client connected: after a crash, a client still marked connected counts as
    having left at the last flush, and lingers from then."""

    def __init__(
        self, db: Database, interval: float, connected_sessions: Callable[[], list[str]], clock: Clock
    ) -> None:
        self._db = db
        self._clock = clock
        self._interval = interval
        self._connected_sessions = connected_sessions  # live sessions with a client connected now
        self._changes: dict[tuple[str, str], float | None] = {}  # (session, client) -> left at

    def opened(self, session_id: str, client_id: str) -> None:
        """`client_id`'s first connection to the session opened."""
        self._changes[(session_id, client_id)] = None

    def left(self, session_id: str, client_id: str, at: float) -> None:
        """`client_id`'s last connection to the session closed at `at` (epoch seconds)."""
        self._changes[(session_id, client_id)] = at

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush every `interval` until cancelled, and once more then (a graceful stop)."""
        task_status.started()
        try:
            while True:
                await trio.sleep(self._interval)
                await self.flush()
        finally:
            with trio.CancelScope(shield=True):
                await self.flush()

    async def flush(self) -> None:
        changes, self._changes = self._changes, {}
        sessions = self._connected_sessions()
        if not changes and not sessions:
            return
        at = timestamptz(self._clock.now())
        keys = list(changes)

        def work(tx: Tx) -> None:
            if keys:
                tx.execute(
                    UPSERT_SESSION_LISTENERS,
                    session_id=[k[0] for k in keys],
                    client_id=[k[1] for k in keys],
                    left_at=[None if (t := changes[k]) is None else timestamptz(t) for k in keys],
                )
            if sessions:
                tx.execute(TOUCH_SESSION_LISTENERS, session_ids=sessions, at=at)

        try:
            await self._db.run(work)
        except Exception:
            log.warning("listener flush failed; kept for the next one", exc_info=True)
            self._changes = {**changes, **self._changes}  # what changed meanwhile is newer
