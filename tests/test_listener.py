"""The live WebSocket as a client meets it: where pages find it, what the upgrade refuses, and
the close codes of PROTOCOL.md §1 for broken frames, slow readers and a restart.

Tests that take the `server` or `start_server` fixture run on both transports (conftest.py).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import trio

from pika.live.connection import Connection
from pika.server import Running, serve
from tests.conftest import StartServer, hubs, test_settings
from tests.rawws import RawPeer
from tests.wsclient import connect, go_live, track


def http_get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


async def test_pages_learn_the_live_url_from_the_server(nursery: trio.Nursery, db_url: str) -> None:
    running: Running = await nursery.start(serve, test_settings(db_url))
    status, _, body = await trio.to_thread.run_sync(http_get, running.url + "/api/live")
    assert status == 200
    assert body == {"url": f"ws://127.0.0.1:{running.live_port}/ws"} and running.live_port != running.port
    assert running.live_url == body["url"]


async def test_behind_a_proxy_pages_get_the_public_live_url(nursery: trio.Nursery, db_url: str) -> None:
    settings = test_settings(db_url, public_live_url="wss://pika.example/ws")
    running: Running = await nursery.start(serve, settings)
    _, _, body = await trio.to_thread.run_sync(http_get, running.url + "/api/live")
    assert body == {"url": "wss://pika.example/ws"}


async def test_the_live_port_answers_plain_http_with_a_json_error(nursery: trio.Nursery, db_url: str) -> None:
    running: Running = await nursery.start(serve, test_settings(db_url))
    base = f"http://127.0.0.1:{running.live_port}"
    status, headers, body = await trio.to_thread.run_sync(http_get, base + "/ws")
    assert (status, headers["content-type"]) == (426, "application/json")
    assert "WebSocket" in body["error"]
    status, _, body = await trio.to_thread.run_sync(http_get, base + "/health")
    assert status == 404 and "/ws" in body["error"]


async def test_a_refused_upgrade_carries_the_headers_of_its_refusal(
    nursery: trio.Nursery, db_url: str
) -> None:
    running: Running = await nursery.start(serve, test_settings(db_url))
    stream = await trio.open_tcp_stream("127.0.0.1", running.live_port)
    request = (
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    )
    await stream.send_all(request.encode())
    answer = b""
    with trio.fail_after(5):
        while chunk := await stream.receive_some(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 426 ")
    assert b"sec-websocket-version: 13" in head.lower()  # what to use instead
    assert json.loads(body) == {"error": "Unsupported WebSocket version: use 13"}


# -- broken frames (PROTOCOL.md §1) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("opcode", "payload", "code"),
    [
        pytest.param(0x1, b'{"type":"PING","x":"\xff\xfe"}', 1007, id="invalid-utf8"),
        pytest.param(0x9, b"x" * 126, 1002, id="oversized-ping"),
        pytest.param(0x3, b"{}", 1002, id="reserved-opcode"),
    ],
)
async def test_a_broken_frame_closes_with_its_code_and_the_server_stays_up(
    server: Running, transport: str, opcode: int, payload: bytes, code: int
) -> None:
    peer = await RawPeer.connect(server.url)
    await peer.send_frame(opcode, payload)
    with trio.fail_after(5):
        try:
            closed: int | str = await peer.recv()  # type: ignore[assignment]
        except EOFError:
            closed = "dropped without a close frame"
    # hypercorn (the plain ASGI path) drops the TCP connection and offers no way to say more
    assert closed == ("dropped without a close frame" if transport == "asgi" else code)
    await peer.abort()
    async with connect(server.url) as other:
        assert (await other.request("PING"))[-1]["type"] == "ACK"


# -- slow readers --------------------------------------------------------------------------------


SESSIONS = 20  # live sessions with 1 KiB tracks: each SESSIONS_LIST is ~20 KiB


async def _many_live_sessions(running: Running, dj: Any) -> None:
    for i in range(SESSIONS):
        await go_live(dj, f"conf_big_{i:02d}")
        await dj.request("BROADCAST_TRACK", sessionId=f"conf_big_{i:02d}", track=track("t" * 500, "a" * 500))


async def _stop_reading(running: Running, client_id: str, lists: int) -> tuple[RawPeer, Connection]:
    """A client with a tiny receive buffer asks for `lists` SESSIONS_LISTs and reads none."""
    peer = await RawPeer.connect(running.url, rcvbuf=2048)
    await peer.send("GET_SESSIONS", clientId=client_id)
    with trio.fail_after(5):
        while not any(c.client_id == client_id for hub in hubs(running) for c in hub.connections):
            await trio.sleep(0.01)
    for _ in range(lists):
        await peer.send("GET_SESSIONS")
    return peer, next(c for hub in hubs(running) for c in hub.connections if c.client_id == client_id)


async def _until(condition: Any) -> None:
    with trio.fail_after(20):
        while not condition():
            await trio.sleep(0.01)


async def _close_code_after_reading(peer: RawPeer) -> int:
    with trio.fail_after(10):
        while isinstance(reply := await peer.recv(), dict):
            pass
    return reply


async def test_a_reader_whose_outbox_fills_is_closed_with_1013(start_server: StartServer) -> None:
    running = await start_server(outbox_frames=4, dj_grace_seconds=600)
    async with connect(running.url) as dj:
        await _many_live_sessions(running, dj)
        peer, conn = await _stop_reading(running, "client_never_reads", lists=400)
        await _until(lambda: conn.close_code is not None)
        assert conn.close_code == 1013
        assert await _close_code_after_reading(peer) == 1013


async def test_a_reader_that_takes_no_byte_for_the_stall_time_is_closed_with_1013(
    nursery: trio.Nursery, db_url: str
) -> None:
    settings = test_settings(db_url, write_stall_seconds=0.5, outbox_frames=100_000, dj_grace_seconds=600)
    running: Running = await nursery.start(serve, settings)
    async with connect(running.url) as dj:
        await _many_live_sessions(running, dj)
        peer, conn = await _stop_reading(running, "client_stalled_1", lists=400)
        await _until(lambda: conn.close_code is not None)
        assert conn.close_code == 1013  # the outbox had room: the stall closed it
        assert await _close_code_after_reading(peer) == 1013


async def test_a_restart_closes_a_reader_with_a_backlog_with_1012_after_its_frame_in_flight(
    nursery: trio.Nursery, db_url: str
) -> None:
    """The close comes while the writer waits for the socket: the frame it began goes out whole,
    then the close frame (nothing is taken from an emptied outbox: never 1011)."""
    settings = test_settings(db_url, outbox_frames=100_000, dj_grace_seconds=600)
    running: Running = await nursery.start(serve, settings)
    async with connect(running.url) as dj:
        await _many_live_sessions(running, dj)
        peer, conn = await _stop_reading(running, "client_restarts", lists=400)
        await _until(lambda: conn._writing and len(conn._outbox or ()) > 10)
        running.shutdown.set()
        assert await _close_code_after_reading(peer) == 1012
