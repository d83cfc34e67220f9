"""PgBus: room batches between server processes over PostgreSQL LISTEN/NOTIFY.

`publish` sends one NOTIFY per room batch (frames inline when they fit, else a `bus_events` row),
numbered per room (sequence.py); `notify_in` does the same inside a transaction of the caller's
(the group commit's: a dancer action is told to its room's owner as it is written).  Each
process keeps one dedicated LISTEN connection, waited on by trio (`wait_readable` on its socket:
no thread, no asyncio), and hands what arrives to its `Subscriber` in order; a gap, a new
owner, or a listener that was away (the database restarted) makes it ask the subscriber to
re-read those rooms (or every room) from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any, Protocol

import psycopg
import trio

from pika import metrics
from pika.backoff import reconnect_delay
from pika.bus.envelope import BadEnvelope, Envelope
from pika.bus.sequence import Sequencer, Sequences, Verdict
from pika.db import Database, DatabaseStalled, Tx
from pika.queries import query

log = logging.getLogger("pika.bus")

BUS_LISTEN = query("bus_listen")
BUS_NOTIFY = query("bus_notify")
BUS_EVENT_INSERT = query("bus_event_insert")
BUS_EVENT_FRAMES = query("bus_event_frames")
BUS_EVENTS_PURGE = query("bus_events_purge")

PURGE_EVERY = 600.0  # s
KEEP_EVENTS = 3600.0  # s a big batch stays readable: far longer than any notification is in flight

Batch = tuple[str, Sequence[str]]  # (session id, frame texts in order)


def _nothing_owed(key: str) -> bool:
    return False


class Subscriber(Protocol):
    """Where a process's bus delivers: the rooms it serves (the relay of issue 17)."""

    def deliver(self, session_id: str, frames: tuple[str, ...]) -> None: ...

    def reread(self, session_ids: Collection[str] | None) -> None:
        """Re-read these rooms (None: every room) from PostgreSQL: batches were missed."""


#: Where a publish's statements run, inside one transaction: `Database.run` by default; a
#: server's relay passes its group commit, so a flush's NOTIFYs ride in the next batch of writes.
Runner = Callable[[Callable[[Tx], None]], Awaitable[None]]


class PgBus:
    def __init__(
        self, url: str, db: Database, subscriber: Subscriber, process: str, run: Runner | None = None
    ) -> None:
        self.url = url
        self.db = db
        self._run = run or db.run
        self.subscriber = subscriber
        self.origin = f"{process}#{secrets.token_hex(4)}"  # this instance's numbering
        self.sequencer = Sequencer()
        self.sequences = Sequences()
        self.connected = trio.Event()  # set while the LISTEN connection is up (tests wait on it)
        self._owed: list[Envelope] = []  # numbered batches a failed publish must still send

    # -- sending --------------------------------------------------------------------------------

    async def publish(self, batches: Sequence[Batch], owed: Callable[[str], bool] = _nothing_owed) -> None:
        """One NOTIFY per room batch, in one transaction (delivered when it commits), after any
        batch still owed.  Raises `DatabaseStalled` when nothing was sent (the connection lost to
        a database restart too).  Then the batches whose key is `owed` (what no re-read can
        restore) are kept, with their numbers, for the next call: a receiver that got them after
        all takes a second copy for one it has seen; the rest leave a gap, and receivers re-read."""
        envelopes = [
            *self._owed,
            *(Envelope(self.origin, key, self.sequencer.next(key), tuple(frames)) for key, frames in batches),
        ]
        try:
            await self._run(lambda tx: self._send(tx, envelopes))
        except (DatabaseStalled, psycopg.OperationalError) as exc:
            self._owed = [envelope for envelope in envelopes if owed(envelope.session_id)]
            raise DatabaseStalled from exc
        self._owed = []

    def notify_in(self, tx: Tx, notices: Sequence[tuple[str, str]]) -> Callable[[], None]:
        """In a worker thread, inside a transaction the caller commits (the group commit's): the
        (key, line) notices as one batch per key, numbered once that commit is known (call the
        returned function then).  Only the caller numbers these keys, one transaction at a time."""
        lines: dict[str, list[str]] = {}
        for key, line in notices:
            lines.setdefault(key, []).append(line)
        envelopes = [
            Envelope(self.origin, key, self.sequencer.following(key), tuple(texts))
            for key, texts in lines.items()
        ]
        self._send(tx, envelopes)

        def committed() -> None:
            for envelope in envelopes:
                self.sequencer.take(envelope.session_id, envelope.seq)

        return committed

    @property
    def owes(self) -> bool:
        """Batches a failed `publish` kept wait for the next one."""
        return bool(self._owed)

    def _send(self, tx: Tx, envelopes: list[Envelope]) -> None:
        payloads = []
        for envelope in envelopes:
            if not envelope.fits():
                assert envelope.frames is not None
                row = tx.one(BUS_EVENT_INSERT, session_id=envelope.session_id, frames=list(envelope.frames))
                assert row is not None
                envelope = replace(envelope, frames=None, event_id=row["id"])
            payloads.append(envelope.encode())
        tx.all(BUS_NOTIFY, payloads=payloads)
        metrics.child(metrics.BUS_BATCHES, "sent").inc(len(payloads))

    # -- receiving ------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; reconnect with backoff.  Reports started after the first
        attempt (the database may be away at start: batches are then re-read when it is back)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._purge_old)
            failures = 0
            started = False
            while True:
                conn: psycopg.Connection[Any] | None = None
                try:
                    conn = await trio.to_thread.run_sync(self._listen)
                    if failures:
                        log.info("bus listening again: every room is re-read")
                        self.sequences.reset()
                        metrics.BUS_REREADS.inc()
                        self.subscriber.reread(None)
                    failures = 0
                    self.connected.set()
                    if not started:
                        started = True
                        task_status.started()
                    await self._receive(conn)
                except psycopg.OperationalError as exc:
                    log.warning("bus: database unavailable, reconnecting", extra={"fields": {"error": exc}})
                finally:
                    self.connected = trio.Event()
                    if conn is not None:
                        conn.close()
                failures += 1
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(reconnect_delay(failures))

    def _listen(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        conn.execute(self.db.queries[BUS_LISTEN])
        return conn

    async def _receive(self, conn: psycopg.Connection[Any]) -> None:
        while True:
            await trio.lowlevel.wait_readable(conn.fileno())
            # Readable: notifications arrived, or the server closed the socket (raises here).
            for note in list(conn.notifies(timeout=0)):
                await self._handle(note.payload)

    async def _handle(self, payload: str) -> None:
        try:
            envelope = Envelope.decode(payload)
        except BadEnvelope as exc:
            log.warning("bus: ignored a foreign notification", extra={"fields": {"error": exc}})
            return
        if envelope.origin == self.origin:
            return  # this process fanned it out itself
        session_id = envelope.session_id
        verdict = self.sequences.accept(session_id, envelope.origin, envelope.seq)
        if verdict is Verdict.STALE:
            return
        frames = envelope.frames
        if verdict is Verdict.NEXT and frames is None:
            frames = await self._stored(envelope.event_id)
        if verdict is Verdict.REREAD or frames is None:
            metrics.BUS_REREADS.inc()
            self.subscriber.reread([session_id])
            return
        metrics.child(metrics.BUS_BATCHES, "received").inc()
        self.subscriber.deliver(session_id, frames)

    async def _stored(self, event_id: int | None) -> tuple[str, ...] | None:
        """A big batch's frames, read once by this process; None when they cannot be read."""
        try:
            row = await self.db.one(BUS_EVENT_FRAMES, id=event_id)
        except (DatabaseStalled, psycopg.OperationalError):
            return None
        return None if row is None else tuple(row["frames"])

    async def _purge_old(self) -> None:
        while True:
            with contextlib.suppress(
                DatabaseStalled, psycopg.OperationalError
            ):  # the next round deletes them
                await self.db.execute(BUS_EVENTS_PURGE, older_than=KEEP_EVENTS)
            await trio.sleep(PURGE_EVERY)
