"""Group commit: dancer actions from every room written together, one transaction per batch.

A busy room sends thousands of likes, tempo votes and thank-yous a minute.  Written one
transaction each, every action paid a worker-thread hop, a pool checkout, BEGIN, its claim,
its statements and a COMMIT with an fsync; ten of those threads then fought the trio loop for
the GIL, and the DJ's next track queued behind them for the pool.  Here one flusher takes
everything queued, runs it in one worker thread on one connection, commits once, and only then
wakes each handler, which ACKs and tells the DJ.  While a batch commits the next one gathers,
so a quiet room pays no added wait and a busy one pays one fsync per batch instead of per tap.

What each action keeps, exactly as when it had a transaction to itself:
- an ACK still means durable: a handler wakes only after its batch committed;
- messageId dedupe: the batch claims every id in one statement; an id applied before answers
  `Duplicate` and its work does not run;
- a refused action is never remembered: its claim is deleted in the same transaction.  For
  that to hold without a savepoint per action, **a batched work must refuse before it writes**
  (check, then write; or one conditional write whose result decides);
- one bad action cannot fail the others: an unexpected error rolls the batch back, and its
  actions are then written one transaction each, so the error reaches only its own sender.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import outcome
import trio

from pika import metrics
from pika.db import Database, Tx
from pika.live.requests import Duplicate, Refusal
from pika.queries import query

log = logging.getLogger("pika.group_commit")
T = TypeVar("T")

CLAIM_MESSAGES = query("claim_messages")
UNCLAIM_MESSAGES = query("unclaim_messages")

MAX_BATCH = 500  # actions per transaction: bounds how long the first one in a batch waits
SHUTTING_DOWN = "Server restarting; nothing was changed, try again"


class _Write:
    """One queued action: who claims which messageId, the work, and its outcome once written."""

    __slots__ = ("done", "message_id", "result", "sender", "work")

    def __init__(self, sender: str, message_id: str | None, work: Callable[[Tx], Any]) -> None:
        self.sender = sender
        self.message_id = message_id
        self.work = work
        self.result: outcome.Outcome[Any] | None = None
        self.done = trio.Event()


class GroupCommit:
    """The queue of dancer writes and the one task that flushes it (run it in the hub's nursery)."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: list[_Write] = []
        self._wake = trio.Event()
        self._stopped = False

    async def write(self, sender: str, message_id: str | None, work: Callable[[Tx], T]) -> T:
        """Run `work(tx)` in the next batch, claiming `message_id` for `sender` (when given).

        Returns what `work` returned once the batch committed.  Raises `Duplicate` when the
        messageId was applied before, and whatever `work` raised (a `Refusal`, say) when it
        refused; then nothing of it was kept.
        """
        if self._stopped:
            raise Refusal(SHUTTING_DOWN)
        item = _Write(sender, message_id, work)
        self._queue.append(item)
        self._wake.set()
        try:
            await item.done.wait()
        except trio.Cancelled:
            if item in self._queue:  # not taken yet: it will never be written
                self._queue.remove(item)
            raise
        assert item.result is not None
        return item.result.unwrap()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush batches until cancelled; anything still queued then is refused, never half-done."""
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._queue:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: len(batch)]
                    await self._flush(batch)
        finally:
            self._stopped = True
            for item in self._queue:
                item.result = outcome.Error(Refusal(SHUTTING_DOWN))
                item.done.set()
            self._queue.clear()

    async def _flush(self, batch: list[_Write]) -> None:
        metrics.GROUP_COMMIT_SIZE.observe(len(batch))
        try:
            try:
                results = await self._db.run(lambda tx: _write_batch(tx, batch))
            except Exception:
                log.warning("a batch failed; writing its actions one by one", exc_info=True)
                results = [await outcome.acapture(self._db.run, _alone(item)) for item in batch]
            for item, result in zip(batch, results, strict=True):
                item.result = result
        finally:
            for item in batch:  # cancelled half-way through the one-by-one writes: the rest never ran
                if item.result is None:
                    item.result = outcome.Error(Refusal(SHUTTING_DOWN))
                item.done.set()


def _alone(item: _Write) -> Callable[[Tx], Any]:
    return lambda tx: _write_batch(tx, [item])[0].unwrap()


def _write_batch(tx: Tx, batch: list[_Write]) -> list[outcome.Outcome[Any]]:
    """In a worker thread, inside one transaction: claim, run each work, forget refused claims.

    A `Refusal` (or `Duplicate`) belongs to its action; any other exception aborts the batch.
    """
    keys = list(dict.fromkeys((w.sender, w.message_id) for w in batch if w.message_id))
    claimed: set[tuple[str, str]] = set()
    if keys:
        rows = tx.all(CLAIM_MESSAGES, senders=[k[0] for k in keys], message_ids=[k[1] for k in keys])
        claimed = {(row["sender"], row["message_id"]) for row in rows}
    results: list[outcome.Outcome[Any]] = []
    refused: list[tuple[str, str]] = []
    for w in batch:
        key = (w.sender, w.message_id or "")
        if w.message_id:
            if key not in claimed:  # applied before, or a second copy within this batch
                results.append(outcome.Error(Duplicate()))
                continue
            claimed.discard(key)
        try:
            results.append(outcome.Value(w.work(tx)))
        except (Refusal, Duplicate) as exc:
            results.append(outcome.Error(exc))
            if w.message_id:
                refused.append(key)
    if refused:
        tx.execute(UNCLAIM_MESSAGES, senders=[k[0] for k in refused], message_ids=[k[1] for k in refused])
    return results
