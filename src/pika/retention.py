"""Retention: operational rows older than `PIKA_RETENTION_DAYS` are deleted, once a day.

Operational rows are telemetry (`session_events`) and the Web Push subscriptions of sessions
that ended long ago; likes, plays, polls, reactions and sessions are product data and are kept.
(Applied message ids and the listeners of ended sessions are purged by the hub's housekeeping.)
Each table is emptied in batches of `BATCH` rows, each its own short transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from pika.db import Database
from pika.queries import query

log = logging.getLogger("pika.retention")

PRUNES = {
    "session_events": query("prune_session_events"),
    "push_subscriptions": query("prune_push_subscriptions"),
}
BATCH = 5000
BATCH_DEADLINE = 60.0  # s: a batch scans for old rows (no index on their age); not a live call
DAY = 86400.0


async def prune(db: Database, days: int, batch: int = BATCH) -> dict[str, int]:
    """Delete every operational row older than `days`; return the rows deleted per table."""
    deleted: dict[str, int] = {}
    for table, statement in PRUNES.items():
        total = 0
        while True:
            count = await db.run(
                lambda tx, q=statement: tx.execute(q, days=days, batch=batch), deadline=BATCH_DEADLINE
            )
            total += count
            if count < batch:
                break
            await trio.sleep(0)  # between batches, whoever waits for the table goes first
        deleted[table] = total
    return deleted


async def run_daily(step: Callable[[], Awaitable[dict[str, int]]], days: int) -> None:
    """Run `step` (prune, bound to a database) at start and then every day, until cancelled; a
    failed run is logged and tried again the next day."""
    while True:
        try:
            deleted = await step()
        except Exception:
            log.exception("retention could not prune old rows; next try in a day")
        else:
            log.info("retention pruned old rows", extra={"fields": {"days": days, **deleted}})
        await trio.sleep(DAY)
