"""One WebSocket connection as the rooms see it: identity, audience, a bounded outbox.

Publishing never awaits a connection.  On a socket Pika! owns (listener.py), `send()` writes an
encoded `Frame` straight into the socket when nothing is ahead of it; what the kernel does not
take waits in the outbox for a writer task, started only while there is a backlog; a burst to
one connection (a DJ's LIKE_RECEIVED as a batch of likes commits) is gathered for it too, into
one write.  On the plain ASGI path (endpoint.py) every frame goes through the outbox and the
writer.  A full outbox, or a socket that takes no byte for `write_stall_seconds`, is a slow
consumer: closed with 1013.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import trio

from pika import metrics
from pika.live.timers import start_soon_unless_closing
from pika.live.wire import PING, Frame, frame

if TYPE_CHECKING:
    from pika.live.room import Room

CLOSE_ABNORMAL = 1006  # never sent: marks a socket that went away, so nothing more is written
CLOSE_TOO_BIG = 1009
CLOSE_RESTARTING = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_REPLACED = 4001
CLOSE_REVOKED = 4003  # the DJ's token was revoked (PROTOCOL.md §1): the session enters its grace

CLOSE_DEADLINE = 5.0  # s from asking for a close to giving up on the close handshake
BATCH_FRAMES = 64  # queued frames joined into one socket write at most
BURST_SECONDS = 0.002  # a frame this soon after a direct write waits for the writer, with the burst

_ids = itertools.count(1)


class Transport(Protocol):
    """How a connection's bytes reach its peer: an owned socket or hypercorn's ASGI `send`."""

    direct: bool  # frames may be written without awaiting (and pinged by the hub)

    def try_write(self, data: bytes) -> int | None:
        """Write what the kernel takes now: bytes written, or None when the socket is gone."""

    async def write(self, frames: list[Frame] | bytes, close_by: float) -> bytes | None:
        """Write frames (or the rest of one); returns b"" when all went out, the unwritten rest
        when the peer took nothing for the stall time or `close_by` passed, None when gone."""

    async def close(self, code: int, reason: str, close_by: float) -> None:
        """Send the close frame and let the reader wait for the peer's reply until `close_by`."""

    def abort(self) -> None:
        """Drop the connection now, without a close handshake."""


class Connection:
    """A WebSocket peer: send frames, close it, know who it is."""

    __slots__ = (
        "_actions",
        "_answered",
        "_burst",
        "_close_by",
        "_nursery",
        "_outbox",
        "_outbox_frames",
        "_partial",
        "_transport",
        "_writing",
        "_wrote_at",
        "client_id",
        "client_ip",
        "close_code",
        "close_reason",
        "dj_room",
        "heard",
        "id",
        "peer",
        "subscribed",
    )

    def __init__(self, transport: Transport, outbox_frames: int, peer: str = "?") -> None:
        self.id = next(_ids)
        self.peer = peer
        self._transport = transport
        self._outbox: deque[Frame] | None = None  # made when a frame must wait, dropped when drained
        self._outbox_frames = outbox_frames
        self._partial = b""  # the rest of a frame the kernel took in part: it goes out first
        self._burst: list[bytes] | None = None  # frames gathered for the writer's next write
        self._wrote_at = -BURST_SECONDS  # when a frame was last written straight in
        self._nursery: trio.Nursery | None = None  # where the writer runs, while the socket is served
        self._writing = False
        self._close_by = float("inf")
        self.heard = trio.current_time()  # when the peer last sent anything (owned sockets)
        self.client_id: str | None = None  # bound once: the first valid clientId presented
        self.client_ip = "unknown"  # as the trusted-proxy rules resolve it (the audit log's `ip`)
        self.subscribed: str | None = None  # the session whose audience this connection is in
        self.dj_room: Room | None = None  # the live session this connection is the DJ of
        self.close_code: int | None = None
        self.close_reason = ""
        self._actions = 0  # dancer actions queued for a group commit, not yet answered
        self._answered: trio.Event | None = None  # set when the last of them is answered

    @property
    def listener_id(self) -> str:
        """Who this connection counts as among listeners: its clientId, else itself."""
        return self.client_id or f"conn:{self.id}"

    @property
    def open(self) -> bool:
        return self.close_code is None

    def bind_client(self, client_id: str | None) -> None:
        if client_id and self.client_id is None:
            self.client_id = client_id

    def send(self, frame: Frame) -> None:
        """Write or queue one encoded frame; never waits.  A full outbox closes with 1013."""
        if self.close_code is not None:
            return
        if self._burst is not None:
            self._burst.append(frame.wire)
            return
        if self._transport.direct and not self._writing and not self._outbox:
            wire = frame.wire
            now = time.monotonic()
            if now - self._wrote_at < BURST_SECONDS:
                self._start_writer()
                if self._writing:  # it runs in the next scheduler pass: what comes until then joins
                    self._burst = [wire]
                    return
            self._wrote_at = now
            written = self._transport.try_write(wire)
            if written == len(wire):
                return
            if written is None:
                self._gone()
                return
            if written:
                self._partial = wire[written:]
                self._start_writer()
                return
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        elif len(outbox) >= self._outbox_frames:
            self._slow()
            return
        outbox.append(frame)
        self._start_writer()

    def action_started(self) -> None:
        """An action of this peer was queued; the flusher answers it (`action_answered`)."""
        self._actions += 1

    def action_answered(self) -> None:
        self._actions -= 1
        if not self._actions and self._answered is not None:
            self._answered.set()
            self._answered = None

    async def actions_answered(self) -> None:
        """Wait until every queued action of this peer is answered: its frames are answered in
        the order they came, as when each waited for its own commit."""
        while self._actions:
            if self._answered is None:
                self._answered = trio.Event()
            await self._answered.wait()

    @property
    def acting(self) -> bool:
        return self._actions > 0

    def send_message(self, message: dict[str, Any]) -> None:
        self.send(frame(message))

    def keep_alive(self, now: float, idle_timeout: float) -> None:
        """The hub's pinger, once per ping interval: ping an owned socket, or drop it when the
        peer has sent nothing (pongs included) for `idle_timeout`.  hypercorn pings its own."""
        if not self._transport.direct or self.close_code is not None:
            return
        if now - self.heard > idle_timeout:
            self._transport.abort()
        else:
            self.send(PING)

    def close_soon(self, code: int, reason: str = "", *, after_queued: bool = False) -> None:
        """Ask the writer to close with `code`.  Frames still queued are dropped (a slow consumer
        or a restart), or with `after_queued` sent first (a refusal that explains the close);
        a frame already begun is always finished."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._close_by = trio.current_time() + CLOSE_DEADLINE
        if not after_queued:
            self._outbox = None
            self._burst = None
        self._start_writer()

    def serve_in(self, nursery: trio.Nursery | None) -> None:
        """Where to start the writer from now on (None: the socket is no longer served)."""
        self._nursery = nursery
        if nursery is not None and (
            self._outbox or self._partial or self._burst or self.close_code is not None
        ):
            self._start_writer()

    def _start_writer(self) -> None:
        if not self._writing and self._nursery is not None:
            self._writing = start_soon_unless_closing(self._nursery, self._write)

    async def _write(self) -> None:
        """Send what `send` could not write at once, in order; then the close frame, if any.

        Each step takes what it writes from the outbox before it awaits, so a close that empties
        the outbox meanwhile only shortens what comes next."""
        transport = self._transport
        try:
            while self.close_code != CLOSE_ABNORMAL:
                if self._partial:
                    data: list[Frame] | bytes = self._partial
                    self._partial = b""
                elif self._burst:
                    data = b"".join(self._burst)
                    self._burst = None
                    self._wrote_at = time.monotonic()  # frames that follow soon gather again
                elif self._outbox:
                    data = self._batch(self._outbox)
                else:
                    break
                rest = await transport.write(data, self._close_by)
                if rest is None:
                    self._gone()
                elif rest:
                    self._partial = rest
                    if self.close_code is not None:  # the close handshake ran out of time
                        transport.abort()
                        self._gone()
                    else:
                        self._slow()  # the peer took nothing for the stall time
            self._outbox = None
            self._burst = None
            if self.close_code is not None and self.close_code != CLOSE_ABNORMAL:
                metrics.CLOSES.labels(str(self.close_code)).inc()
                await transport.close(self.close_code, self.close_reason, self._close_by)
        finally:
            self._writing = False

    @staticmethod
    def _batch(outbox: deque[Frame]) -> list[Frame]:
        """The queued frames (up to BATCH_FRAMES), taken from the outbox."""
        batch = [outbox.popleft()]
        while outbox and len(batch) < BATCH_FRAMES:
            batch.append(outbox.popleft())
        return batch

    def _slow(self) -> None:
        metrics.SLOW_CONSUMERS.inc()
        self.close_soon(CLOSE_TRY_AGAIN, "slow consumer")

    def _gone(self) -> None:
        """The socket closed under us: nothing more can be written; the reader, which sees the
        disconnect, cleans up."""
        self._outbox = None
        self._burst = None
        self._partial = b""
        self.close_code = CLOSE_ABNORMAL
