"""A small Pika! protocol client over trio-websocket, for tests: real sockets, real frames.

`connect(server.url)` opens the live listener's `/ws`, found the way pages find it (`GET
/api/live`), unless the test runs on the plain ASGI transport (`ws_url_for`, set by the
`server` fixture of conftest.py)."""

from __future__ import annotations

import inspect
import itertools
import json
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

_ids = itertools.count(1)


class Peer:
    """One client connection: send messages, read what the server sends, in order."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, type: str, **fields: Any) -> None:
        await self.ws.send_message(json.dumps({"type": type, **fields}))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send_message(frame)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        with trio.fail_after(timeout):
            return json.loads(await self.ws.get_message())

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of type `kind`, skipping others (listener counts and the like)."""
        with trio.fail_after(timeout):
            while True:
                message = await self.recv(timeout)
                if message["type"] == kind:
                    return message

    async def request(self, type: str, timeout: float = 5.0, **fields: Any) -> list[dict[str, Any]]:
        """Send with a fresh messageId; return every frame up to and including its ACK/NACK."""
        message_id = fields.pop("messageId", None) or f"m{next(_ids)}"
        await self.send(type, messageId=message_id, **fields)
        replies = []
        with trio.fail_after(timeout):
            while True:
                reply = await self.recv(timeout)
                replies.append(reply)
                if reply["type"] in {"ACK", "NACK"} and reply.get("messageId") == message_id:
                    return replies

    async def nothing_within(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (to assert that nothing does)."""
        got = []
        with trio.move_on_after(seconds):
            while True:
                got.append(json.loads(await self.ws.get_message()))
        return got

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; return the close code."""
        with trio.fail_after(timeout):
            try:
                while True:
                    await self.ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code


async def until(condition: Any, seconds: float = 5.0) -> None:
    """Wait (at most `seconds`) until `condition()` holds: what another task, process or the
    database does, which no event of ours announces.  `condition` may be a coroutine function."""
    with trio.fail_after(seconds):
        while not await _holds(condition):
            await trio.sleep(0.01)


async def _holds(condition: Any) -> bool:
    result = condition()
    return bool(await result if inspect.isawaitable(result) else result)


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


#: HTTP URLs of servers whose tests use the plain ASGI `/ws` on the HTTP port (conftest.py).
ASGI_TRANSPORT: set[str] = set()


async def ws_url_for(url: str) -> str:
    """The WebSocket URL a test client of the server at `url` (http://host:port) opens."""
    if url in ASGI_TRANSPORT:
        return url.replace("http://", "ws://") + "/ws"

    def ask() -> str:
        with urllib.request.urlopen(url + "/api/live", timeout=5) as response:
            return json.loads(response.read())["url"]

    return await trio.to_thread.run_sync(ask)


@asynccontextmanager
async def connect(url: str, **kwargs: Any) -> AsyncIterator[Peer]:
    async with open_websocket_url(await ws_url_for(url), **kwargs) as ws:
        yield Peer(ws)


async def go_live(dj: Peer, session_id: str, dj_name: str = "DJ Test") -> dict[str, Any]:
    replies = await dj.request("REGISTER_SESSION", sessionId=session_id, djName=dj_name)
    assert replies[-1]["type"] == "ACK", replies
    return next(r for r in replies if r["type"] == "SESSION_REGISTERED")


def track(title: str, artist: str = "Test Artist", **extra: Any) -> dict[str, Any]:
    return {"title": title, "artist": artist, **extra}
