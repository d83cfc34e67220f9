"""A bare WebSocket client on a trio socket and wsproto, for what a polite client never does:
stop reading with a tiny receive buffer, or vanish without a close frame."""

from __future__ import annotations

import json
import socket
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, Request, TextMessage
from wsproto.extensions import PerMessageDeflate


class RawPeer:
    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self._pending: list[Any] = []
        self._text = ""
        self.extensions: list[str] = []  # what the server accepted at the handshake

    @classmethod
    async def connect(cls, url: str, *, rcvbuf: int | None = None, offer_deflate: bool = False) -> RawPeer:
        host, port = url.removeprefix("http://").split(":")
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
