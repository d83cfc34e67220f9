"""A lean WebSocket client: handshake and frame codec by hand, on non-blocking sockets.

Why by hand: the generator must stay far cheaper per frame than the server.  trio-websocket
costs ~100 µs per received message and wsproto's event machinery tens of µs; a server's frames
are unmasked and, for our small JSON, unfragmented, so reading one is a few slices.  The codec
(`handshake_request`, `parse_handshake`, `encode_frame`, `FrameReader`) is pure; `WsClient`
drives it on a `loop.Loop`.  Loopback only: no TLS, no extensions (no per-message deflate).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import socket
import struct
import time
from typing import Protocol

from loadtest.loop import HANGUP, READ, WRITE, Loop

# The kernel stamps each received packet (wall clock, ns) when asked: Linux' SO_TIMESTAMPNS, whose
# control message type has the same number.  Not in Python's socket module; 35 on x86 and arm.
SO_TIMESTAMPNS = 35
STAMP_SPACE = socket.CMSG_SPACE(16)  # struct timespec

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_ABNORMAL = 1006  # no close frame: the TCP connection just ended
MAX_HEAD = 16_384  # a handshake response longer than this is not one
MAX_MESSAGE = 4 * 2**20
CONNECT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 3.0
RECV_BYTES = 262_144


# -- codec (pure) ----------------------------------------------------------------------------


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake_request(host: str, port: int, path: str, key: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def parse_handshake(head: bytes, key: str) -> str | None:
    """None when `head` (the response up to the blank line) accepts the upgrade; else why not."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return f"bad status line {lines[0][:60]!r}"
    if parts[1] != "101":
        return f"HTTP {parts[1]}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept_for(key):
        return "bad Sec-WebSocket-Accept"
    return None


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final client frame, masked as RFC 6455 requires (a random mask unless given)."""
    mask = os.urandom(4) if mask is None else mask
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    if n:
        repeated = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return head + mask + payload


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:120]


def parse_close(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""  # "no status received"
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


def received_at(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive timestamp from recvmsg's control data, else now (both wall clock)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack_from("qq", data)
            return seconds + nanoseconds * 1e-9
    return time.time()


class FrameError(Exception):
    """The server sent something this client does not speak (masked or oversized frames)."""


class FrameReader:
    """Bytes in, whole messages out as (opcode, payload); reassembles fragments."""

    def __init__(self) -> None:
        self._buffer = b""
        self._fragments: list[bytes] = []
        self._fragment_op = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buffer + data if self._buffer else data
        out: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80:
                raise FrameError("the server sent a masked frame")
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                start = pos + 10
            if n > MAX_MESSAGE:
                raise FrameError(f"frame of {n} bytes")
            if end - start < n:
                break
            payload = buf[start : start + n]
            pos = start + n
            opcode, fin = b0 & 0x0F, b0 & 0x80
            # control frames (close, ping, pong) may arrive between the fragments of a message
            whole = fin and opcode != OP_CONTINUATION and not self._fragments
            if opcode >= OP_CLOSE or whole:
                out.append((opcode, payload))
            else:
                if opcode != OP_CONTINUATION:
                    self._fragment_op = opcode
                self._fragments.append(payload)
                if fin:
                    out.append((self._fragment_op, b"".join(self._fragments)))
                    self._fragments = []
        self._buffer = buf[pos:] if pos < end else b""
        return out


# -- a client on the loop --------------------------------------------------------------------


class Peer(Protocol):
    """What a WsClient reports to.  `now` is when the bytes reached the socket: the kernel's receive
    timestamp (wall clock, `time.time()`'s clock), so the generator's own delays do not count."""

    def on_open(self, now: float) -> None: ...
    def on_text(self, payload: bytes, now: float) -> None: ...
    def on_closed(self, code: int, by_server: bool, error: str | None, now: float) -> None: ...


CONNECTING, HANDSHAKE, OPEN, CLOSING, CLOSED = range(5)


class WsClient:
    """One WebSocket connection on a `Loop`; every outcome ends in exactly one `peer.on_closed`."""

    __slots__ = ("_head", "_key", "_out", "_reader", "host", "loop", "path", "peer", "port", "sock", "state")

    def __init__(self, loop: Loop, host: str, port: int, peer: Peer, path: str = "/ws") -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.path = path
        self.peer = peer
        self.state = CLOSED
        self.sock: socket.socket | None = None
        self._key = ""
        self._head = b""
        self._out = b""
        self._reader = FrameReader()

    def connect(self) -> None:
        self.state = CONNECTING
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:  # e.g. out of file descriptors
            self._finish(CLOSE_ABNORMAL, False, f"socket: {exc.strerror}")
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError):  # without it, `now` is the time of the read
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock = sock
        err = sock.connect_ex((self.host, self.port))
        if err not in (0, errno.EINPROGRESS):
            self._finish(CLOSE_ABNORMAL, False, f"connect: {os.strerror(err)}")
            return
        self.loop.add(sock.fileno(), WRITE, self._on_event)
        self.loop.call_later(CONNECT_TIMEOUT, self._connect_deadline)

    def send_text(self, text: str) -> None:
        if self.state == OPEN:
            self._write(encode_frame(OP_TEXT, text.encode()))

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the socket ends when the server echoes (or after 3 s)."""
        if self.state == OPEN:
            self.state = CLOSING
            self._write(encode_frame(OP_CLOSE, close_payload(code)))
            self.loop.call_later(CLOSE_TIMEOUT, self._close_deadline)
        elif self.state in (CONNECTING, HANDSHAKE):
            self._finish(CLOSE_ABNORMAL, False, "closed before open")

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, events: int) -> None:
        sock = self.sock
        if sock is None:
            return
        if self.state == CONNECTING:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._finish(CLOSE_ABNORMAL, False, f"connect: {os.strerror(err)}")
                return
            self.state = HANDSHAKE
            self._key = new_key()
            self.loop.modify(sock.fileno(), READ)
            self._write(handshake_request(self.host, self.port, self.path, self._key))
            return
        if events & WRITE and self._out:
            self._flush()
        if events & (READ | HANGUP):
            self._read()

    def _read(self) -> None:
        assert self.sock is not None
        try:
            data, ancillary, _, _ = self.sock.recvmsg(RECV_BYTES, STAMP_SPACE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(CLOSE_ABNORMAL, True, f"recv: {exc.strerror}")
            return
        now = received_at(ancillary)
        if not data:
            self._finish(CLOSE_ABNORMAL, True, None if self.state == CLOSING else "connection dropped")
            return
        if self.state == HANDSHAKE:
            data = self._handshake(data, now)
            if not data:
                return
        try:
            frames = self._reader.feed(data)
        except FrameError as exc:
            self._finish(CLOSE_ABNORMAL, False, str(exc))
            return
        for opcode, payload in frames:
            if self.state == CLOSED:
                return
            if opcode == OP_TEXT:
                self.peer.on_text(payload, now)
            elif opcode == OP_PING:
                self._write(encode_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code, _ = parse_close(payload)
                by_server = self.state == OPEN
                if by_server:
                    self._write(encode_frame(OP_CLOSE, payload[:2]))
                self._finish(code, by_server, None)

    def _handshake(self, data: bytes, now: float) -> bytes:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._finish(CLOSE_ABNORMAL, False, "handshake response too long")
            return b""
        head, rest = self._head[:end], self._head[end + 4 :]
        self._head = b""
        problem = parse_handshake(head, self._key)
        if problem is not None:
            self._finish(CLOSE_ABNORMAL, True, problem)
            return b""
        self.state = OPEN
        self.peer.on_open(now)
        return rest

    def _write(self, data: bytes) -> None:
        if self._out:
            self._out += data
            return
        assert self.sock is not None
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._finish(CLOSE_ABNORMAL, False, f"send: {exc.strerror}")
            return
        if sent < len(data):
            self._out = data[sent:]
            self.loop.modify(self.sock.fileno(), READ | WRITE)

    def _flush(self) -> None:
        assert self.sock is not None
        try:
            sent = self.sock.send(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(CLOSE_ABNORMAL, False, f"send: {exc.strerror}")
            return
        self._out = self._out[sent:]
        if not self._out:
            self.loop.modify(self.sock.fileno(), READ)

    def _connect_deadline(self) -> None:
        if self.state in (CONNECTING, HANDSHAKE):
            self._finish(CLOSE_ABNORMAL, False, "connect timeout")

    def _close_deadline(self) -> None:
        if self.state == CLOSING:
            self._finish(CLOSE_ABNORMAL, False, "no close echo")

    def _finish(self, code: int, by_server: bool, error: str | None) -> None:
        if self.state == CLOSED and self.sock is None:
            return
        self.state = CLOSED
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove(sock.fileno())
            sock.close()
        self.peer.on_closed(code, by_server, error, time.time())
