"""Group commit: every room's writes in one queue, one transaction per batch, in queue order.

One flusher takes everything queued (likes, tempo votes, thank-yous, poll votes, the DJ's
commands), runs it in one worker thread on one connection, commits once, and only then releases
and wakes each action: a busy room pays one transaction per batch instead of one per tap, and the
database commits what the rooms decided in the order they decided it.  A dancer's tap may wait a
few milliseconds for company (`LINGER`); a DJ's command never does.  What each action keeps of
having a transaction to itself is listed on `GroupCommit`.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import outcome
import trio

from pika import metrics
from pika.db import Database, DatabaseStalled, Tx
from pika.live.core.effects import Write
from pika.live.requests import Duplicate, Refusal, claim
from pika.queries import Query, query

log = logging.getLogger("pika.group_commit")
T = TypeVar("T")

UNCLAIM_MESSAGES = query("unclaim_messages")

MAX_BATCH = 500  # actions per transaction: bounds how long the first one in a batch waits
FILL = 8  # submitted actions that make a batch worth its transaction at once
LINGER = 0.010  # s: the longest a submitted action waits for FILL to gather
SHUTTING_DOWN = "Server restarting; nothing was changed, try again"


Work = Callable[[Tx], Any] | Write
Release = Callable[[Any], None]
Answer = Callable[[outcome.Outcome[Any]], None]
Notice = tuple[str, str]  # (bus key, line): what a kept action tells the other processes
Notices = Callable[[Any], Sequence[Notice]]  # an action's notices, from its result
#: Sends a batch's notices inside its transaction (in the worker thread); returns what to do
#: once it committed (bus/postgres.py `PgBus.notify_in`).
Notify = Callable[[Tx, list[Notice]], Callable[[], None]]


class _Write:
    """One queued action: who claims which messageId, the work, and who waits for the result:
    a parked task (`write`) or a callback (`submit`)."""

    __slots__ = (
        "answer",
        "at",
        "ends_batch",
        "message_id",
        "notices",
        "release",
        "result",
        "sender",
        "taken",
        "task",
        "work",
    )

    def __init__(
        self,
        sender: str,
        message_id: str | None,
        work: Work,
        release: Release | None,
        ends_batch: bool,
        answer: Answer | None = None,
        notices: Notices | None = None,
    ) -> None:
        self.sender = sender
        self.message_id = message_id
        self.work = work
        self.release = release
        self.ends_batch = ends_batch
        self.answer = answer
        self.notices = notices
        self.task = None if answer is not None else trio.lowlevel.current_task()
        self.at = trio.current_time()
        self.taken = False
        self.result: outcome.Outcome[Any] | None = None


class GroupCommit:
    """The queue of dancer writes and the one task that flushes it (run it in the hub's nursery).

    Each action keeps what a transaction of its own gave it:
    - an ACK means durable: a handler wakes only after its batch committed;
    - messageId dedupe: the batch claims every id in one statement; an id applied before answers
      `Duplicate` and its work does not run;
    - a refused action is never remembered: its claim is deleted in the same transaction, so
      **a batched work must refuse before it writes** (no savepoint per action);
    - one bad action cannot fail the others: an unexpected error rolls the batch back and its
      actions are retried one transaction each, so the error reaches only its own sender;
    - once a batch has taken an action its handler is answered (the wait cannot be cancelled
      then), so a closing socket never leaves a committed action untold to the DJ.
    The commonest actions are a row (`Write(row=True)`: its params one object of the statement's
    `%(rows)s::json` array): joined with the other rows of its query queued since the batch's
    last other work and written by one set-based statement before the next (so a like and its
    undo keep their order).  Without an `answer` a row cannot refuse (only the database can reject
    it: then the batch is retried one by one); with one, the query returns one row per input row,
    in order, and `answer(returned)` is the action's result or raises `Refusal` (its claim is then
    forgotten, so the statement must not have written that row: check and write in one).
    A batch goes as soon as a waiting writer (`write`: a DJ's command, the relay's flush) is
    queued, or FILL actions are; submitted actions alone (`submit`: dancers' taps, whose ACK
    nobody waits on in a task) wait up to `linger` for that, as PostgreSQL's `commit_delay`
    does: the transactions a second of taps costs stop growing with the number of processes
    that share the room (each gathers its own batch), and a lone tap waits `linger` at most.
    An action may carry `notices` for the other processes (a dancer action on a room another
    process owns): those of the batch's kept actions are sent in its transaction by `notify`
    (the relay's bus), so the owner hears of an action exactly when it is durable, and a quiet
    process pays no second transaction to tell it.
    """

    def __init__(
        self, db: Database, max_batch: int = MAX_BATCH, fill: int = FILL, linger: float = LINGER
    ) -> None:
        self._db = db
        self._max_batch = max_batch
        self._fill = min(fill, max_batch)
        self._linger = linger
        self.notify: Notify | None = None  # set by the relay of a process that shares rooms
        self._queue: list[_Write] = []
        self._wake = trio.Event()
        self._stopped = False
        self._room = trio.lowlevel.ParkingLot()  # readers waiting for the queue to shrink

    @property
    def full(self) -> bool:
        """A batch's worth of actions waits already: a dancer's next frame should wait (`room`)."""
        return len(self._queue) >= self._max_batch and not self._stopped

    async def room(self) -> None:
        """Wait until the queue holds less than a batch.  A dancer's reader waits here before
        its frame is decided, so a DJ's command, which never waits, is queued behind at most one
        batch of dancer actions: the next track is not held up by a backlog of likes."""
        while self.full:
            await self._room.park()

    async def write(
        self,
        sender: str,
        message_id: str | None,
        work: Callable[[Tx], T] | Write,
        release: Release | None = None,
        *,
        ends_batch: bool = False,
        notices: Notices | None = None,
    ) -> T:
        """Run `work(tx)` (or the `Write`) in the next batch, claiming `message_id` for `sender`.

        Returns what `work` returned (a `Write`: what its `answer` returned) once the batch
        committed; `release(result)` is called first, by the flusher, for each action of the
        batch that was kept, in queue order (a room's decisions, in database order).  Raises
        `Duplicate` when the messageId was applied before, and whatever `work` raised (a
        `Refusal`, say) when it refused; then nothing of it was kept.  Cancellable only until
        a batch takes the action.  `ends_batch`: what is queued after it waits for the next batch
        (a DJ's command: its batch, and so its frames, do not grow with the dancers meanwhile).
        """
        if self._stopped:
            raise Refusal(SHUTTING_DOWN)
        item = _Write(sender, message_id, work, release, ends_batch, notices=notices)
        self._queue.append(item)
        self._wake.set()  # a waiting writer never lingers

        def abort(_: Any) -> trio.lowlevel.Abort:
            if item.taken:
                return trio.lowlevel.Abort.FAILED  # being written: wait for the answer
            self._queue.remove(item)
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    def submit(
        self,
        sender: str,
        message_id: str | None,
        work: Work,
        release: Release | None,
        answer: Answer,
        notices: Notices | None = None,
    ) -> None:
        """`write` without a waiting task: `release` as there, then `answer(result)` once the batch
        committed (or refused the action).  The reader of a dancer's socket goes back to reading at
        once, and the flusher answers it: no task parks and wakes per frame."""
        if self._stopped:
            _answer(answer, outcome.Error(Refusal(SHUTTING_DOWN)))
            return
        self._queue.append(_Write(sender, message_id, work, release, False, answer, notices))
        if len(self._queue) == 1 or len(self._queue) >= self._fill:
            self._wake.set()  # the flusher's linger starts, or ends

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush batches until cancelled; anything still queued then is refused, never half-done.
        Batches are written on a connection of the flusher's own (`Database.own_connection`)."""
        try:
            async with self._db.own_connection("pika-writes") as db:
                task_status.started()
                await self._flush_forever(db)
        finally:
            self._stopped = True
            self._room.unpark_all()
            for item in self._queue:
                _tell(item, outcome.Error(Refusal(SHUTTING_DOWN)))
            self._queue.clear()

    async def _flush_forever(self, db: Database) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._queue:
                await self._gather()
                batch = self._next_batch()
                if not self.full:
                    self._room.unpark(count=self._max_batch - len(self._queue))
                for item in batch:
                    item.taken = True
                await self._flush(db, batch)

    async def _gather(self) -> None:
        """Wait until the queue is worth a transaction (see the class), or its oldest submitted
        action has waited `linger`."""
        with trio.move_on_at(self._queue[0].at + self._linger):
            while not self._ready():
                await self._wake.wait()
                self._wake = trio.Event()

    def _ready(self) -> bool:
        queue = self._queue
        return len(queue) >= self._fill or any(item.task is not None for item in queue)

    def _next_batch(self) -> list[_Write]:
        """The queue's head, up to `max_batch` actions or the first one that ends its batch."""
        size = min(len(self._queue), self._max_batch)
        size = next((at + 1 for at, item in enumerate(self._queue[:size]) if item.ends_batch), size)
        batch = self._queue[:size]
        del self._queue[:size]
        return batch

    async def _flush(self, db: Database, batch: list[_Write]) -> None:
        metrics.GROUP_COMMIT_SIZE.observe(len(batch))
        try:
            try:
                results = await self._commit(db, batch)
            except DatabaseStalled:  # rolled back: every action in it is refused, none is kept
                results = [outcome.Error(DatabaseStalled()) for _ in batch]
            except Exception:
                log.warning("a batch failed; writing its actions one by one", exc_info=True)
                results = [await outcome.acapture(self._alone, db, item) for item in batch]
            for item, result in zip(batch, results, strict=True):
                item.result = result
                if item.release is not None and isinstance(result, outcome.Value):
                    released = outcome.capture(item.release, result.value)
                    if isinstance(released, outcome.Error):
                        item.result = released
        finally:
            for item in batch:  # cancelled half-way through the one-by-one writes: the rest never ran
                _tell(item, item.result or outcome.Error(Refusal(SHUTTING_DOWN)))

    async def _alone(self, db: Database, item: _Write) -> Any:
        """One action of a failed batch in a transaction of its own."""
        return (await self._commit(db, [item]))[0].unwrap()

    async def _commit(self, db: Database, items: list[_Write]) -> list[outcome.Outcome[Any]]:
        """`items` written in one transaction; once it committed, their notices count as sent."""
        started = time.perf_counter()
        results, sent = await db.run(lambda tx: _write_batch(tx, items, self.notify))
        metrics.GROUP_COMMIT_SECONDS.observe(time.perf_counter() - started)
        sent()
        return results


def _tell(item: _Write, result: outcome.Outcome[Any]) -> None:
    if item.task is not None:
        trio.lowlevel.reschedule(item.task, result)
    else:
        assert item.answer is not None
        _answer(item.answer, result)


def _answer(answer: Answer, result: outcome.Outcome[Any]) -> None:
    """Call a submitted action's answer; its failure is its own sender's, never the flusher's."""
    try:
        answer(result)
    except Exception:
        log.exception("answering a group-committed action failed")


def _statement(tx: Tx, write: Write) -> Any:
    """One statement of its own; its `answer` judges the row it returned (or None)."""
    if write.answer is None:
        tx.execute(write.query, **write.params)
        return None
    return write.answer(tx.one(write.query, **write.params))


def _write_batch(
    tx: Tx, batch: list[_Write], notify: Notify | None
) -> tuple[list[outcome.Outcome[Any]], Callable[[], None]]:
    """In a worker thread, inside one transaction: claim, run each work, write the rows, forget
    refused claims, send the kept actions' notices.  A `Refusal` (or `Duplicate`) belongs to its
    action; any other exception aborts the batch.  Returns the results and what to call once the
    transaction committed.
    """
    keys = list(dict.fromkeys((w.sender, w.message_id) for w in batch if w.message_id))
    claimed = claim(tx, keys) if keys else set()
    results: list[outcome.Outcome[Any]] = []
    refused: list[tuple[str, str]] = []
    by_query: dict[Query, list[tuple[int, _Write, Write]]] = {}  # (position in results, write, row)

    def settle(at: int, w: _Write, work: Callable[[], Any]) -> None:
        try:
            results[at] = outcome.Value(work())
        except (Refusal, Duplicate) as exc:
            results[at] = outcome.Error(exc)
            if w.message_id:
                refused.append((w.sender, w.message_id))

    def write_rows() -> None:
        for q, rows in by_query.items():
            params = json.dumps([row.params for _, _, row in rows])
            if rows[0][2].answer is None:
                tx.execute(q, rows=params)
                continue
            for (at, w, row), returned in zip(rows, tx.all(q, rows=params), strict=True):
                assert row.answer is not None
                settle(at, w, functools.partial(row.answer, returned))
        by_query.clear()

    for w in batch:
        results.append(outcome.Value(None))
        if w.message_id:
            key = (w.sender, w.message_id)
            if key not in claimed:  # applied before, or a second copy within this batch
                results[-1] = outcome.Error(Duplicate())
                continue
            claimed.discard(key)
        work = w.work
        if isinstance(work, Write) and work.row:
            by_query.setdefault(work.query, []).append((len(results) - 1, w, work))
            continue
        write_rows()  # rows queued before this work are written before it, as they came
        if isinstance(work, Write):
            settle(len(results) - 1, w, functools.partial(_statement, tx, work))
        else:
            settle(len(results) - 1, w, functools.partial(work, tx))
    write_rows()
    if refused:
        tx.execute(UNCLAIM_MESSAGES, pairs=json.dumps(refused))
    if notify is None:  # a process alone: nobody to tell
        return results, _nothing
    notices = [
        notice
        for w, result in zip(batch, results, strict=True)
        if w.notices is not None and isinstance(result, outcome.Value)
        for notice in w.notices(result.value)
    ]
    return results, (notify(tx, notices) if notices else _nothing)


def _nothing() -> None:
    pass
