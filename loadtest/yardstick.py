"""The yardstick: the smallest room server we could write, on `websockets` (asyncio) `broadcast()`.

Pika!'s fan-out figures mean little alone; measured against this server on the same machine,
with the same generator, on the same day, they become a ratio that survives a busy machine.
It speaks only REGISTER_SESSION, SUBSCRIBE and BROADCAST_TRACK (-> NOW_PLAYING), with ACK/NACK
as Pika! answers them; no database, no limits, no persistence: a bound, not a server.

    python -m loadtest.yardstick --port P
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve

MAX_FRAME = 65_536


def _frame(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class Rooms:
    """Sessions by id: their audience (the DJ included, as in Pika!) and their current track."""

    def __init__(self) -> None:
        self.audience: dict[str, set[ServerConnection]] = {}
        self.current: dict[str, str] = {}  # session -> encoded NOW_PLAYING
        self.dj_of: dict[ServerConnection, str] = {}
        self.joined: dict[ServerConnection, str] = {}

    def join(self, ws: ServerConnection, session: str) -> None:
        self.leave(ws)
        self.joined[ws] = session
        self.audience.setdefault(session, set()).add(ws)

    def leave(self, ws: ServerConnection) -> None:
        session = self.joined.pop(ws, None)
        if session is not None:
            self.audience.get(session, set()).discard(ws)

    def handle(self, ws: ServerConnection, msg: dict[str, Any]) -> tuple[list[str], str | None]:
        """One message -> (frames for the sender, NACK error or None)."""
        kind, session = msg.get("type"), msg.get("sessionId")
        if kind == "REGISTER_SESSION":
            session = session if isinstance(session, str) else f"yard_{id(ws):x}"
            self.dj_of[ws] = session
            self.join(ws, session)
            name = msg.get("djName") or "DJ"
            registered = {
                "type": "SESSION_REGISTERED",
                "sessionId": session,
                "djName": name,
                "authenticated": False,
            }
            return [_frame({**registered, "resumeKey": "-"})], None
        if kind == "SUBSCRIBE":
            if not isinstance(session, str):
                return [], "sessionId: is required"
            self.join(ws, session)
            now = self.current.get(session)
            return ([now] if now else []), None
        if kind == "BROADCAST_TRACK":
            track = msg.get("track")
            if self.dj_of.get(ws) != session or not isinstance(track, dict):
                return [], "Not the DJ of this session"
            wire = {"title": track.get("title"), "artist": track.get("artist")}
            frame = _frame({"type": "NOW_PLAYING", "sessionId": session, "djName": "DJ", "track": wire})
            self.current[session] = frame
            broadcast(self.audience.get(session, ()), frame)
            return [], None
        return [], f"{kind} is not available on this server yet"


async def _connection(ws: ServerConnection, rooms: Rooms) -> None:
    try:
        async for frame in ws:
            try:
                msg = json.loads(frame)
            except ValueError:
                await ws.send(_frame({"type": "ERROR", "error": "Invalid JSON"}))
                continue
            if not isinstance(msg, dict):
                continue
            frames, error = rooms.handle(ws, msg)
            message_id = msg.get("messageId")
            if message_id:
                if error is None:
                    frames.append(_frame({"type": "ACK", "messageId": message_id, "status": "ok"}))
                else:
                    frames.append(_frame({"type": "NACK", "messageId": message_id, "error": error}))
            for out in frames:
                await ws.send(out)
    finally:
        rooms.leave(ws)
        rooms.dj_of.pop(ws, None)


async def main(host: str, port: int) -> None:
    rooms = Rooms()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    async def handler(ws: ServerConnection) -> None:
        await _connection(ws, rooms)

    async with serve(handler, host, port, compression=None, max_size=MAX_FRAME, ping_interval=20):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m loadtest.yardstick", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.host, args.port))
