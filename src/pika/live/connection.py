"""One WebSocket connection: its identity, its audience, and a bounded outbox.

Nothing that publishes ever awaits a connection: `send()` puts an already-encoded `Frame` in
the outbox with `send_nowait`.  A full outbox means the phone stopped reading; it is closed
with 1013 ("try again later") and counted, and the room goes on.  The connection's own writer
task drains the outbox into the socket; it lives in the connection's nursery (see endpoint.py).

The fast path: a broadcast is encoded once into the exact bytes of a WebSocket text frame
(server frames are unmasked, so every recipient gets the same bytes), and the writer hands
whatever has queued up to the socket in one write, beneath hypercorn's per-message ASGI and
wsproto work.  See `raw_writer` for how, and why it stays safe.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.protocol.events import Data
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream

from pika import metrics
from pika.protocol import encode

if TYPE_CHECKING:
    from pika.live.room import Room

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]
RawWrite = Callable[[bytes], Awaitable[None]]

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_RESTARTING = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_REPLACED = 4001

_ids = itertools.count(1)
BATCH_FRAMES = 64  # frames joined into one socket write at most


@dataclass(frozen=True, slots=True)
class Frame:
    """One outbound message, encoded once for all its recipients: JSON text and wire bytes."""

    text: str
    wire: bytes


def frame(message: dict[str, Any]) -> Frame:
    text = encode(message)
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))  # FIN + text opcode; unmasked (server to client)
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return Frame(text, header + payload)


def raw_writer(asgi_send: AsgiSend) -> RawWrite | None:
    """A way to write pre-encoded frame bytes to this connection's socket, or None.

    hypercorn (0.18) gives an ASGI app its `WSStream.app_send`; the stream's own `send`
    accepts `Data` events and writes them through the connection's send lock, the same path
    its `app_send` ends in after wsproto has built the frame.  Going there directly skips a
    dict, a wsproto encode and a state check per recipient, and lets several queued frames go
    out in one write.  Frames from here are whole and unmasked, interleave safely with
    hypercorn's pings (the send lock), and are never written once the stream has closed.
    When the stream is not what we expect (another server, a hypercorn upgrade), None: the
    writer falls back to plain ASGI messages.
    """
    stream = getattr(asgi_send, "__self__", None)
    if not isinstance(stream, WSStream) or not callable(getattr(stream, "send", None)):
        return None

    async def write(data: bytes) -> None:
        if stream.closed or stream.state != ASGIWebsocketState.CONNECTED:
            return
        await stream.send(Data(stream_id=stream.stream_id, data=data))

    return write


class Connection:
    """A WebSocket peer as the rooms see it: send frames, close it, know who it is."""

    def __init__(
        self, asgi_send: AsgiSend, outbox_frames: int, peer: str = "?", *, fast: bool = True
    ) -> None:
        self.id = next(_ids)
        self.peer = peer
        self._asgi_send = asgi_send
        self._raw_write = raw_writer(asgi_send) if fast else None
        self._outbox, self._drain = trio.open_memory_channel[Frame](outbox_frames)
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
        """Queue one encoded frame; never waits.  A full outbox closes the connection with 1013."""
        if self.close_code is not None:
            return
        try:
            self._outbox.send_nowait(frame)
        except trio.WouldBlock:
            metrics.SLOW_CONSUMERS.inc()
            self.close_soon(CLOSE_TRY_AGAIN, "slow consumer")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.close_code = self.close_code or CLOSE_INTERNAL  # its writer is gone: nothing more to send

    def send_message(self, message: dict[str, Any]) -> None:
        self.send(frame(message))

    def close_soon(self, code: int, reason: str = "", *, after_queued: bool = False) -> None:
        """Ask the writer to close with `code`.  Frames still queued are dropped (a slow consumer
        or a restart), or with `after_queued` sent first (a refusal that explains the close)."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._flush_before_close = after_queued
        self._outbox.close()

    async def run_writer(self) -> None:
        """Drain the outbox into the socket until closed; then send the close frame."""
        async with self._drain:
            async for first in self._drain:
                if self.close_code is not None and not self._flush_before_close:
                    break
                if self._raw_write is None:
                    await self._asgi_send({"type": "websocket.send", "text": first.text})
                else:
                    await self._raw_write(self._batch(first))
        if self.close_code is not None:
            metrics.CLOSES.labels(str(self.close_code)).inc()
            await self._asgi_send(
                {"type": "websocket.close", "code": self.close_code, "reason": self.close_reason}
            )

    def _batch(self, first: Frame) -> bytes:
        """`first` and whatever else is queued (up to BATCH_FRAMES), as one write."""
        wires = [first.wire]
        while len(wires) < BATCH_FRAMES:
            try:
                wires.append(self._drain.receive_nowait().wire)
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return wires[0] if len(wires) == 1 else b"".join(wires)
