"""Session telemetry (`session_events`), written off the hot path.

`emit()` never waits: it puts the event on a bounded queue; one writer task stores batches.
When the queue is full the event is dropped and counted (`pika_telemetry_dropped_total`):
telemetry must never slow a socket.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import trio

from pika import metrics
from pika.db import Database, Tx
from pika.queries import query

log = logging.getLogger("pika.telemetry")

INSERT_SESSION_EVENT = query("insert_session_event")
BATCH = 200


class Telemetry:
    def __init__(self, db: Database, capacity: int = 10_000) -> None:
        self._db = db
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](capacity)

    def emit(self, session_id: str, event_type: str, **metadata: Any) -> None:
        row = {
            "session_id": session_id,
            "event_type": event_type,
            "metadata": json.dumps(metadata),
            "created_at": datetime.now(UTC),
        }
        try:
            self._send.send_nowait(row)
        except (trio.WouldBlock, trio.ClosedResourceError):
            metrics.TELEMETRY_DROPPED.inc()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Store events in batches until cancelled; what is queued at cancellation is flushed."""
        task_status.started()
        try:
            while True:
                batch = [await self._receive.receive()]
                await self._store(self._take(batch))
        finally:
            with trio.CancelScope(shield=True):
                await self._store(self._take([]))

    def _take(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        while len(batch) < BATCH:
            try:
                batch.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        return batch

    async def _store(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return

        def work(tx: Tx) -> None:
            for row in batch:
                tx.execute(INSERT_SESSION_EVENT, **row)

        try:
            await self._db.run(work)
        except Exception:
            log.exception("telemetry batch lost", extra={"fields": {"events": len(batch)}})
