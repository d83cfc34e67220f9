"""Server frames on the wire: encoded once, written straight into idle sockets.

Fan-out cost is per recipient, so this is where the server spends its time under load.  Two
things keep it small:

* A broadcast is encoded once into the exact bytes of a WebSocket text frame (server frames
  are unmasked, so every recipient gets the same bytes): `frame()`.
* Writing into a socket whose kernel buffer has room cannot block, so a connection with
  nothing queued is written synchronously from the publishing task (`DirectSocket.try_write`,
  one `write(2)`): no task switch, no lock round trip, nothing per recipient but the syscall.
  Only what the kernel does not take (a phone that reads slowly) goes to the connection's
  outbox and its writer task.

hypercorn owns the socket and writes to it too (handshake, pings, pongs, close frames), always
under its per-connection `send_lock`.  `DirectSocket` swaps that lock for a `SendGate`, which
hypercorn uses exactly as it used the lock and which can also be taken without awaiting.  A
frame the kernel took only in part keeps the gate until its writer has sent the rest, so no
ping can land in the middle of a frame.

Pings go the same way (the hub sends `PING` to every connection on one timer) rather than
through a hypercorn task per connection, which cost a task and a trip through its send path
per ping: at 10,000 dancers, 500 pings a second.

This relies on hypercorn's internals (0.18, pinned below 0.19 in pyproject.toml).  When the
ASGI `send` is not what we expect (another server, an upgrade, TLS), `direct_socket` returns
None and the connection falls back to plain ASGI messages: slower, still correct, but without
pings (ASGI has none), so an idle client is closed after the idle timeout and resumes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from hypercorn.trio.tcp_server import TCPServer

from pika.protocol import encode

AsgiSend = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Frame:
    """Outbound messages, encoded once for all their recipients: the JSON texts and the wire
    bytes (one WebSocket frame per text).  A control frame has no text: it exists only on the
    direct path."""

    texts: tuple[str, ...]
    wire: bytes


PING = Frame((), b"\x89\x00")  # FIN + ping opcode, no payload, unmasked


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
    return Frame((text,), header + payload)


def joined(frames: list[Frame]) -> Frame:
    """Several frames as one: sent back to back, in order, with one write per recipient."""
    if len(frames) == 1:
        return frames[0]
    return Frame(tuple(t for f in frames for t in f.texts), b"".join(f.wire for f in frames))


class SendGate:
    """A lock hypercorn can `async with`, that a publisher can also take without awaiting.

    Not owned by a task (unlike `trio.Lock`): the publisher that wrote half a frame takes it,
    and the connection's writer releases it once the frame is whole.
    """

    def __init__(self) -> None:
        self._held = False
        self._waiters = trio.lowlevel.ParkingLot()

    def locked(self) -> bool:
        return self._held

    def try_take(self) -> bool:
        if self._held:
            return False
        self._held = True
        return True

    async def take(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._held:
            await self._waiters.park()
        self._held = True

    def release(self) -> None:
        self._held = False
        if self._waiters:  # an empty ParkingLot's unpark() still costs 1.6 µs, per recipient
            self._waiters.unpark()

    async def __aenter__(self) -> None:
        await self.take()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class DirectSocket:
    """Write frame bytes into one connection's socket, beside hypercorn and in step with it."""

    def __init__(self, stream: WSStream, tcp: TCPServer, sock: trio.socket.SocketType) -> None:
        self._stream = stream
        self._sock = sock
        self.gate = SendGate()
        tcp.send_lock = self.gate  # type: ignore[assignment]  # hypercorn only `async with`s it

    @property
    def open(self) -> bool:
        return not self._stream.closed and self._stream.state == ASGIWebsocketState.CONNECTED

    def try_write(self, data: bytes | memoryview) -> int | None:
        """Write what the kernel takes now, without blocking: bytes written, or None when the
        socket is gone.  The caller holds the gate."""
        fd = self._sock.fileno()  # asked each time: -1 once closed (a cached number could be reused)
        if fd < 0:
            return None
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            return None

    async def write_all(self, data: bytes) -> bool:
        """Write all of `data`, waiting for room as needed; False when the socket is gone.
        The caller holds the gate."""
        view = memoryview(data)
        while view:
            written = self.try_write(view)
            if written is None:
                return False
            view = view[written:]
            if view:
                await trio.lowlevel.wait_writable(self._sock)
        return True


def direct_socket(asgi_send: AsgiSend) -> DirectSocket | None:
    """The direct writer for the connection behind `asgi_send`, or None (see the module notes).

    hypercorn 0.18 hands a WebSocket app its `WSStream.app_send`; the stream's `send` is its
    `H11Protocol.stream_send`, whose `send` is the `TCPServer.protocol_send` that owns the
    socket and the send lock.
    """
    stream = getattr(asgi_send, "__self__", None)
    if not isinstance(stream, WSStream):
        return None
    protocol = getattr(stream.send, "__self__", None)
    if not isinstance(protocol, H11Protocol):
        return None
    tcp = getattr(protocol.send, "__self__", None)
    if not isinstance(tcp, TCPServer) or not isinstance(tcp.send_lock, trio.Lock) or tcp.send_lock.locked():
        return None
    sock = getattr(tcp.stream, "socket", None)  # a plain SocketStream; TLS has no `.socket`
    if not isinstance(sock, trio.socket.SocketType):
        return None
    return DirectSocket(stream, tcp, sock)
