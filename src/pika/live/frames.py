"""Client-to-server WebSocket frames (RFC 6455 §5) without I/O: bytes in, whole messages out.

The live listener's read path.  `FrameParser` checks what wsproto checks (masking, reserved bits,
opcodes, length encodings, fragmentation order, UTF-8, close codes) and answers a message over
the size limit with 1009 as soon as its header says so; `WsprotoFrames` is the same interface on
wsproto, for connections that negotiated per-message deflate (and the reference in the tests).
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass

from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.events import Ping as WsPing
from wsproto.utilities import LocalProtocolError

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_BAD_DATA = 1007
CLOSE_TOO_BIG = 1009
# Codes a peer may send (RFC 6455 §7.4, as wsproto reads it): 1000-1003, 1007-1013, 3000-4999.
_PEER_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1014), *range(3000, 5000)))
_LOCAL_ONLY = frozenset((1005, 1006, 1015))  # never on the wire: a close with them says 1000


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's close frame, or the parser's verdict on a bad stream (then nothing follows)."""

    code: int
    reason: str


Event = str | bytes | Ping | Close  # a text message, a binary message, or a control frame


class _Failed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class FrameParser:
    """Parses what a client sends; `close()`/`pong()` encode the server's control frames."""

    __slots__ = (
        "_buffer",
        "_decoder",
        "_limit",
        "_parts",
        "_size",
        "_stopped",
        "_text",
        "received_close",
        "sent_close",
    )

    def __init__(self, limit: int, data: bytes = b"") -> None:
        self._limit = limit  # bytes per message
        self._buffer = data
        self._parts: list[bytes] | list[str] | None = None  # a fragmented message's frames so far
        self._text = False
        self._size = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        self._stopped = False  # after a close frame or a verdict nothing more is parsed
        self.sent_close = False
        self.received_close = False

    @property
    def closed(self) -> bool:
        """Both close frames have passed: the close handshake is over."""
        return self.sent_close and self.received_close

    def receive(self, data: bytes) -> list[Event]:
        """The messages and control frames that `data` completes, in order."""
        buf = self._buffer + data if self._buffer else data
        events: list[Event] = []
        pos = 0
        try:
            while not self._stopped:
                end = self._frame(buf, pos, events)
                if end < 0:
                    break
                pos = end
        except _Failed as exc:
            self._stopped = True
            self._parts = None
            events.append(Close(exc.code, str(exc)))
        self._buffer = b"" if self._stopped else buf[pos:]
        return events

    def _frame(self, buf: bytes, pos: int, events: list[Event]) -> int:
        """Parse the frame at `pos` into `events`; its end, or -1 while it is incomplete."""
        available = len(buf) - pos
        if available < 2:
            return -1
        first = buf[pos]
        second = buf[pos + 1]
        opcode = first & 0x0F
        control = opcode >= 8
        if opcode not in (0, 1, 2, 8, 9, 10):
            raise _Failed(CLOSE_PROTOCOL_ERROR, f"Invalid opcode {opcode:#x}")
        if control and not first & 0x80:
            raise _Failed(CLOSE_PROTOCOL_ERROR, "Invalid attempt to fragment control frame")
        length = second & 0x7F
        head = pos + 2
        if control and length > 125:
            raise _Failed(CLOSE_PROTOCOL_ERROR, "Control frame with payload len > 125")
        if length == 126:
            if available < 4:
                return -1
            length = (buf[head] << 8) | buf[head + 1]
            head += 2
            if length <= 125:
                raise _Failed(CLOSE_PROTOCOL_ERROR, "Payload length used 2 bytes when 1 would have sufficed")
        elif length == 127:
            if available < 10:
                return -1
            length = int.from_bytes(buf[head : head + 8], "big")
            head += 8
            if length <= 0xFFFF:
                raise _Failed(CLOSE_PROTOCOL_ERROR, "Payload length used 8 bytes when 2 would have sufficed")
            if length >> 63:
                raise _Failed(CLOSE_PROTOCOL_ERROR, "8-byte payload length with non-zero MSB")
        if first & 0x70:
            raise _Failed(CLOSE_PROTOCOL_ERROR, "Reserved bit set unexpectedly")
        if not second & 0x80:
            raise _Failed(CLOSE_PROTOCOL_ERROR, "server received unexpected unmasked frame")
        if not control:
            self._check_order(opcode)
            if self._size + length > self._limit:
                raise _Failed(CLOSE_TOO_BIG, "message too big")
        start = head + 4
        end = start + length
        if len(buf) < end:
            return -1
        payload = _unmask(buf[start:end], buf[head:start]) if length else b""
        if control:
            self._control(opcode, payload, events)
        else:
            self._data(opcode, payload, bool(first & 0x80), events)
        return end

    def _check_order(self, opcode: int) -> None:
        if self._parts is None:
            if opcode == 0:
                raise _Failed(CLOSE_PROTOCOL_ERROR, "unexpected CONTINUATION")
        elif opcode != 0:
            raise _Failed(CLOSE_PROTOCOL_ERROR, f"expected CONTINUATION, got {opcode:#x}")

    def _data(self, opcode: int, payload: bytes, fin: bool, events: list[Event]) -> None:
        if fin and self._parts is None:  # a whole message in one frame: most of them
            if opcode == 1:
                try:
                    events.append(payload.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise _Failed(CLOSE_BAD_DATA, str(exc)) from None
            else:
                events.append(payload)
            return
        if self._parts is None:
            self._parts = []
            self._text = opcode == 1
            self._decoder = codecs.getincrementaldecoder("utf-8")() if self._text else None
        self._size += len(payload)
        if self._decoder is not None:
            try:
                self._parts.append(self._decoder.decode(payload, fin))  # type: ignore[arg-type]
            except UnicodeDecodeError as exc:
                raise _Failed(CLOSE_BAD_DATA, str(exc)) from None
        else:
            self._parts.append(payload)  # type: ignore[arg-type]
        if fin:
            parts = self._parts
            events.append("".join(parts) if self._text else b"".join(parts))  # type: ignore[arg-type]
            self._parts = None
            self._decoder = None
            self._size = 0

    def _control(self, opcode: int, payload: bytes, events: list[Event]) -> None:
        if opcode == 9:
            events.append(Ping(payload))
        elif opcode == 8:
            events.append(_close(payload))
            self._stopped = True
            self.received_close = True
        # a pong (10) only says the peer is there: the reader has already noted that

    def close(self, code: int, reason: str = "") -> bytes:
        """The server's close frame (b"" once one was sent)."""
        if self.sent_close:
            return b""
        self.sent_close = True
        return close_frame(code, reason)

    def pong(self, payload: bytes) -> bytes:
        return bytes((0x8A, len(payload))) + payload


def _close(payload: bytes) -> Close:
    if not payload:
        return Close(CLOSE_NO_STATUS, "")
    if len(payload) == 1:
        raise _Failed(CLOSE_PROTOCOL_ERROR, "CLOSE with 1 byte payload")
    code = (payload[0] << 8) | payload[1]
    if code not in _PEER_CODES:
        raise _Failed(CLOSE_PROTOCOL_ERROR, f"CLOSE with invalid code {code}")
    try:
        return Close(code, payload[2:].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _Failed(CLOSE_BAD_DATA, f"Error decoding CLOSE reason: {exc}") from None


def _unmask(data: bytes, mask: bytes) -> bytes:
    size = len(data)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(size, "big")


def close_frame(code: int, reason: str = "") -> bytes:
    """A server close frame: no payload for 1005, 1000 for the codes that are never sent, and
    the reason cut to fit 125 bytes at a character boundary."""
    if code == CLOSE_NO_STATUS:
        return b"\x88\x00"
    if code in _LOCAL_ONLY:
        code = 1000
    text = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return bytes((0x88, 2 + len(text))) + struct.pack("!H", code) + text


class WsprotoFrames:
    """`FrameParser`'s interface on wsproto (with its extensions), whose events arrive by frame
    or part of one: joined here into messages under the same size limit."""

    def __init__(self, ws: WsConnection, limit: int) -> None:
        self.ws = ws
        self._limit = limit
        self._parts: list[str | bytes] = []
        self._size = 0
        self._stopped = False

    @property
    def sent_close(self) -> bool:
        return self.ws.state in (ConnectionState.LOCAL_CLOSING, ConnectionState.CLOSED)

    @property
    def received_close(self) -> bool:
        return self.ws.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED)

    @property
    def closed(self) -> bool:
        return self.ws.state is ConnectionState.CLOSED

    def receive(self, data: bytes) -> list[Event]:
        if self._stopped or self.closed:
            return []
        self.ws.receive_data(data)
        events: list[Event] = []
        for event in self.ws.events():
            if isinstance(event, CloseConnection):
                events.append(Close(event.code, event.reason or ""))
                self._stopped = True
                break
            if isinstance(event, WsPing):
                events.append(Ping(bytes(event.payload)))
            elif isinstance(event, TextMessage | BytesMessage):
                self._parts.append(event.data)
                text = isinstance(event.data, str)
                self._size += len(event.data.encode("utf-8", "surrogatepass") if text else event.data)
                if self._size > self._limit:
                    events.append(Close(CLOSE_TOO_BIG, "message too big"))
                    self._stopped = True
                    break
                if event.message_finished:
                    events.append(("" if text else b"").join(self._parts))  # type: ignore[arg-type]
                    self._parts = []
                    self._size = 0
        return events

    def close(self, code: int, reason: str = "") -> bytes:
        try:
            return self.ws.send(CloseConnection(code=code, reason=reason or None))
        except LocalProtocolError:  # the close handshake is already over
            return b""

    def pong(self, payload: bytes) -> bytes:
        return self.ws.send(WsPing(payload).response())
