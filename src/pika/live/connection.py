"""One WebSocket connection: its identity, its audience, and a bounded outbox.

Nothing that publishes ever awaits a connection.  `send()` writes an already-encoded `Frame`
straight into the socket when nothing is queued ahead of it and the kernel has room (see
wire.py); otherwise it appends to the outbox, and a writer task drains it.  The writer is
started in the connection's nursery (see endpoint.py) only when there is something to write,
and ends when the outbox is empty: most phones keep up, and an idle task per connection would
cost memory for nothing.  A full outbox means the phone stopped reading; it is closed with 1013
("try again later") and counted, and the room goes on.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from pika import metrics
from pika.live.timers import start_soon_unless_closing
from pika.live.wire import DirectSocket, Frame, direct_socket, frame

if TYPE_CHECKING:
    from pika.live.room import Room

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTARTING = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_REPLACED = 4001

_ids = itertools.count(1)
BATCH_FRAMES = 64  # queued frames joined into one socket write at most


class Connection:
    """A WebSocket peer as the rooms see it: send frames, close it, know who it is."""

    def __init__(
        self, asgi_send: AsgiSend, outbox_frames: int, peer: str = "?", *, fast: bool = True
    ) -> None:
        self.id = next(_ids)
        self.peer = peer
        self._asgi_send = asgi_send
        self._direct: DirectSocket | None = direct_socket(asgi_send) if fast else None
        self._outbox: deque[Frame] = deque()
        self._outbox_frames = outbox_frames
        self._partial = b""  # the rest of a frame the kernel took in part; the gate is ours till it is out
        self._nursery: trio.Nursery | None = None  # where the writer runs, while the socket is served
        self._writing = False
        self.client_id: str | None = None  # bound once: the first valid clientId presented
        self.subscribed: str | None = None  # the session whose audience this connection is in
        self.dj_room: Room | None = None  # the live session this connection is the DJ of
        self.close_code: int | None = None
        self.close_reason = ""
        self._flush_before_close = False

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
        direct = self._direct
        # Straight into the socket only when nothing is ahead of this frame: not a queued frame,
        # not the rest of a partial one, not hypercorn (handshake not done, a ping going out).
        if (
            direct is not None
            and not self._outbox
            and not self._partial
            and direct.open
            and direct.gate.try_take()
        ):
            written = direct.try_write(frame.wire)
            if written == len(frame.wire):
                direct.gate.release()
                return
            if written is None:
                direct.gate.release()
                self._gone()
                return
            if written:
                self._partial = frame.wire[written:]  # keep the gate: nothing may split this frame
                self._start_writer()
                return
            direct.gate.release()
        if len(self._outbox) >= self._outbox_frames:
            metrics.SLOW_CONSUMERS.inc()
            self.close_soon(CLOSE_TRY_AGAIN, "slow consumer")
            return
        self._outbox.append(frame)
        self._start_writer()

    def send_message(self, message: dict[str, Any]) -> None:
        self.send(frame(message))

    def close_soon(self, code: int, reason: str = "", *, after_queued: bool = False) -> None:
        """Ask the writer to close with `code`.  Frames still queued are dropped (a slow consumer
        or a restart), or with `after_queued` sent first (a refusal that explains the close);
        a frame already begun is always finished."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._flush_before_close = after_queued
        if not after_queued:
            self._outbox.clear()
        self._start_writer()

    def serve_in(self, nursery: trio.Nursery | None) -> None:
        """Where to start the writer from now on (None: the socket is no longer served)."""
        self._nursery = nursery
        if nursery is not None and (self._outbox or self._partial or self.close_code is not None):
            self._start_writer()

    def _start_writer(self) -> None:
        if not self._writing and self._nursery is not None:
            self._writing = start_soon_unless_closing(self._nursery, self._write)

    async def _write(self) -> None:
        """Send what `send` could not write at once, in order; then the close frame, if any."""
        try:
            while self._partial or self._outbox:
                if self._partial:
                    await self._finish_partial()
                else:
                    await self._write_queued()
            if self.close_code is not None:
                metrics.CLOSES.labels(str(self.close_code)).inc()
                await self._asgi_send(
                    {"type": "websocket.close", "code": self.close_code, "reason": self.close_reason}
                )
        finally:
            self._writing = False

    async def _finish_partial(self) -> None:
        assert self._direct is not None
        rest, self._partial = self._partial, b""
        try:
            if not await self._direct.write_all(rest):
                self._gone()
        finally:
            self._direct.gate.release()

    async def _write_queued(self) -> None:
        direct = self._direct
        if direct is None:
            for text in self._outbox.popleft().texts:  # a control frame has none: not for ASGI
                await self._asgi_send({"type": "websocket.send", "text": text})
            return
        await direct.gate.take()
        try:
            batch = self._batch()
            if not direct.open or not await direct.write_all(batch):
                self._gone()
        finally:
            direct.gate.release()

    def _batch(self) -> bytes:
        """The queued frames (up to BATCH_FRAMES) as one write."""
        wires = [self._outbox.popleft().wire]
        while self._outbox and len(wires) < BATCH_FRAMES:
            wires.append(self._outbox.popleft().wire)
        return wires[0] if len(wires) == 1 else b"".join(wires)

    def _gone(self) -> None:
        """The socket closed under us: nothing more can be written; the writer stops and the
        reader, which sees the disconnect, cleans up."""
        self._outbox.clear()
        self.close_code = self.close_code or CLOSE_INTERNAL
