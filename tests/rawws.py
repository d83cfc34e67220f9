"""A bare WebSocket client on a trio socket and wsproto, for what a polite client never does:
stop reading with a tiny receive buffer, send broken frames, or vanish without a close frame;
and `upgrade`, a handshake written by hand, lean enough to open thousands of sockets from one test."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from tests.wsclient import ws_url_for


class RawPeer:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self._pending: list[Any] = []
        self._text = ""
        self.extensions: list[str] = []  # what the server accepted at the handshake

    @classmethod
    async def connect(cls, url: str, *, rcvbuf: int | None = None, offer_deflate: bool = False) -> RawPeer:
        """Connect to the `/ws` of the server at `url` (http://host:port) that tests use."""
        host, port = (await ws_url_for(url)).removeprefix("ws://").removesuffix("/ws").split(":")
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect((host, int(port)))
        peer = cls(trio.SocketStream(sock), WSConnection(ConnectionType.CLIENT))
        extensions = [PerMessageDeflate()] if offer_deflate else []
        await peer._write(Request(host=f"{host}:{port}", target="/ws", extensions=extensions))
        while not any(isinstance(e, AcceptConnection) for e in peer._pending):
            await peer._read_more()
        accepted = next(e for e in peer._pending if isinstance(e, AcceptConnection))
        peer.extensions = [ext.name for ext in accepted.extensions]
        peer._pending = [e for e in peer._pending if not isinstance(e, AcceptConnection)]
        return peer

    async def send(self, type: str, **fields: Any) -> None:
        await self._write(Message(data=json.dumps({"type": type, **fields})))

    async def recv(self) -> dict[str, Any] | int:
        """The next JSON message, or the close code when the server closed."""
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if isinstance(event, TextMessage):
                    self._text += event.data
                    if event.message_finished:
                        text, self._text = self._text, ""
                        return json.loads(text)
                elif isinstance(event, CloseConnection):
                    return event.code
                elif isinstance(event, Ping):
                    await self._write(event.response())
            await self._read_more()

    async def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """One masked frame built by hand, whatever it says: for frames wsproto would refuse."""
        mask = os.urandom(4)
        size = len(payload)
        head = bytes((0x80 * fin | opcode,))
        if size < 126:
            head += bytes((0x80 | size,))
        elif size < 65536:
            head += struct.pack("!BH", 0x80 | 126, size)
        else:
            head += struct.pack("!BQ", 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.stream.send_all(head + mask + masked)

    async def abort(self) -> None:
        """Vanish: close the TCP connection without a WebSocket close frame."""
        await self.stream.aclose()

    async def _write(self, event: Any) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def _read_more(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("server closed the TCP connection")
        self.ws.receive_data(data)
        self._pending.extend(self.ws.events())


@dataclass
class Answer:
    """The server's answer to an upgrade: status, lower-cased headers, body (empty on 101) and
    the stream, still open (the caller closes it)."""

    status: int
    headers: dict[str, str]
    body: bytes
    stream: trio.SocketStream


async def upgrade(url: str, origin: str | None = None) -> Answer:
    """Send a WebSocket upgrade request by hand to the `/ws` of the server at `url` that tests use
    (conftest's transport) and read the answer, without a client library in between: exactly
    what the server says before any upgrade (101 or an HTTP error)."""
    parts = urlsplit(await ws_url_for(url))
    assert parts.hostname and parts.port
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    head = [
        "GET /ws HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        head.append(f"Origin: {origin}")
    try:
        await stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                raise EOFError("the server closed the connection during the handshake")
            data += chunk
        raw_head, _, body = data.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(lines[0].split(" ", 2)[1])
        if status != 101:
            while len(body) < int(headers.get("content-length", "0")):
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                body += chunk
    except BaseException:
        await stream.aclose()
        raise
    return Answer(status, headers, body, stream)


async def churn(url: str, times: int) -> list[Answer]:
    """Open and at once close `times` upgrades in a row, as a flooding host does; their answers."""
    answers = []
    for _ in range(times):
        answer = await upgrade(url)
        await answer.stream.aclose()
        answers.append(answer)
    return answers
