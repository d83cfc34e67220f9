"""One WebSocket connection: its identity, its audience, and a bounded outbox.

Nothing that publishes ever awaits a connection: `send()` puts an already-encoded frame in
the outbox with `send_nowait`.  A full outbox means the phone stopped reading; it is closed
with 1013 ("try again later") and counted, and the room goes on.  The connection's own writer
task drains the outbox into the socket; it lives in the connection's nursery (see endpoint.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from pika import metrics
from pika.protocol import encode

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


class Connection:
    """A WebSocket peer as the rooms see it: send frames, close it, know who it is."""

    def __init__(self, asgi_send: AsgiSend, outbox_frames: int, peer: str = "?") -> None:
        self.id = next(_ids)
        self.peer = peer
        self._asgi_send = asgi_send
        self._outbox, self._drain = trio.open_memory_channel[str](outbox_frames)
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

    def send(self, frame: str) -> None:
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
        self.send(encode(message))

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
            async for frame in self._drain:
                if self.close_code is not None and not self._flush_before_close:
                    break
                await self._asgi_send({"type": "websocket.send", "text": frame})
        if self.close_code is not None:
            metrics.CLOSES.labels(str(self.close_code)).inc()
            await self._asgi_send(
                {"type": "websocket.close", "code": self.close_code, "reason": self.close_reason}
            )
