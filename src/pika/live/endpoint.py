"""`/ws` on the HTTP port, spoken in plain ASGI through hypercorn's public interface.

The slower of the two transports (the live listener is the fast one), for clients that know one
URL.  Each connection runs in its own nursery: a reader that handles frames strictly in order and,
while something waits, a writer that sends the outbox as ASGI messages.  No protocol pings here
(see server.py): hypercorn closes a socket silent for `idle_timeout` (`read_timeout`).
"""

from __future__ import annotations

from typing import Any

import trio

from pika import metrics
from pika.config import Settings
from pika.live.connection import CLOSE_DEADLINE, CLOSE_TOO_BIG, Connection
from pika.live.handlers import receive
from pika.live.hub import Hub
from pika.live.listener import refusal_response
from pika.live.wire import Frame
from pika.security.admission import admitted_ip

AsgiSend = Any


class AsgiTransport:
    """A connection's bytes as ASGI messages: texts only, every frame through the writer."""

    __slots__ = ("_send",)
    direct = False

    def __init__(self, send: AsgiSend) -> None:
        self._send = send

    def try_write(self, data: bytes) -> int | None:
        return 0

    async def write(self, frames: list[Frame] | bytes, close_by: float) -> bytes | None:
        if isinstance(frames, bytes):  # only the owned socket leaves partial frames
            return b""
        for f in frames:
            for text in f.texts:  # a control frame has none: hypercorn sends its own
                await self._send({"type": "websocket.send", "text": text})
        return b""

    async def close(self, code: int, reason: str, close_by: float) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def abort(self) -> None:
        """Not reached: hypercorn's own timeouts drop a silent ASGI connection."""


class LiveEndpoint:
    """The ASGI callable for `/ws`."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub

    async def __call__(self, scope: dict[str, Any], receive_event: Any, send: Any) -> None:
        event = await receive_event()
        if event["type"] != "websocket.connect":
            return
        refusal = self.hub.admission(scope)
        if refusal is not None:
            metrics.REJECTED_UPGRADES.labels(str(refusal.status)).inc()
            status, headers, body = refusal_response(refusal)
            await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
            return
        conn = Connection(AsgiTransport(send), self.settings.outbox_frames, peer=_peer(scope))
        conn.client_ip = admitted_ip(scope)
        self.hub.add(conn)
        try:
            await send({"type": "websocket.accept"})
            async with trio.open_nursery() as nursery:
                conn.serve_in(nursery)
                await self._read(conn, receive_event)
                if conn.close_code is None:
                    nursery.cancel_scope.cancel()  # the peer left: nothing more to write
                else:
                    nursery.cancel_scope.deadline = trio.current_time() + CLOSE_DEADLINE  # let it go out
        finally:
            conn.serve_in(None)
            with trio.CancelScope(shield=True):
                await self.hub.remove(conn)
            self.hub.ws_admission.release(scope)

    async def _read(self, conn: Connection, receive_event: Any) -> None:
        limit = self.settings.max_frame_bytes
        while True:
            event = await receive_event()
            kind = event["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive":
                continue
            frame = event.get("text")
            if frame is None:
                frame = event.get("bytes") or b""
            elif len(frame) * 4 > limit and len(frame.encode("utf-8", "surrogatepass")) > limit:
                # hypercorn counts characters of text frames; the limit is in bytes (PROTOCOL.md §1)
                conn.close_soon(CLOSE_TOO_BIG, "message too big")
                return
            await receive(self.hub, conn, frame)


def _peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
