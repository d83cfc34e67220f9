"""The `/ws` endpoint, spoken directly in ASGI (no framework between hypercorn and the rooms).

Each connection runs in its own nursery: a reader that handles frames strictly in order
(a frame is not read before the previous one is fully handled) and, while something waits to
be written, a writer that drains the outbox (connection.py).  A closing socket never interrupts
a handler between its database commit and its broadcast: see `dispatch` for how.  While the
loop lags, a dancer's next frame waits for a turn (loop_guard.py); a DJ's never does.
"""

from __future__ import annotations

from typing import Any

import trio

from pika import metrics
from pika.config import Settings
from pika.live.connection import CLOSE_TOO_BIG, Connection
from pika.live.handlers import dispatch
from pika.live.hub import Hub
from pika.security.admission import UpgradeRefusal

CLOSE_DEADLINE = 5.0


class LiveEndpoint:
    """The ASGI callable for `/ws`."""

    def __init__(self, settings: Settings, hub: Hub) -> None:
        self.settings = settings
        self.hub = hub

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        refusal = self.hub.admission(scope)
        if refusal is not None:
            await _reject(send, refusal)
            return
        conn = Connection(send, self.settings.outbox_frames, peer=_peer(scope))
        self.hub.add(conn)
        try:
            await send({"type": "websocket.accept"})
            async with trio.open_nursery() as nursery:
                conn.serve_in(nursery)
                await self._read(conn, receive)
                if conn.close_code is None:
                    nursery.cancel_scope.cancel()  # the peer left: nothing more to write
                else:
                    nursery.cancel_scope.deadline = (
                        trio.current_time() + CLOSE_DEADLINE
                    )  # let the close frame go
        finally:
            conn.serve_in(None)
            with trio.CancelScope(shield=True):
                await self.hub.remove(conn)
            self.hub.ws_admission.release(scope)

    async def _read(self, conn: Connection, receive: Any) -> None:
        while True:
            event = await receive()
            kind = event["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive":
                continue
            frame = event.get("text")
            if frame is None:
                frame = event.get("bytes") or b""
            elif (
                len(frame) * 4 > self.settings.max_frame_bytes
                and _utf8_size(frame) > self.settings.max_frame_bytes
            ):
                # hypercorn counts characters of text frames; the limit is in bytes (PROTOCOL.md §1)
                conn.close_soon(CLOSE_TOO_BIG, "message too big")
                return
            if not self.hub.guard.open and conn.dj_room is None:
                await self.hub.guard.turn()  # the loop lags: the DJ first, dancers in turn
            await dispatch(self.hub, conn, frame)


async def _reject(send: Any, refusal: UpgradeRefusal) -> None:
    """Answer the upgrade with an HTTP error, a JSON body and `Retry-After` when there is one
    (PROTOCOL.md §1: before the upgrade)."""
    metrics.REJECTED_UPGRADES.labels(str(refusal.status)).inc()
    body = ('{"error":"' + refusal.error.replace('"', "'") + '"}').encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.retry_after is not None:
        headers.append((b"retry-after", str(refusal.retry_after).encode()))
    await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
