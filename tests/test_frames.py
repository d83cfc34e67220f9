"""The live listener's own frame parser (live/frames.py) reads every client stream as wsproto does.

Random streams of masked frames (messages split into fragments, control frames in between,
payloads at every length boundary, now and then a broken frame: a reserved bit, no mask, a bad
opcode, a length in too many bytes, invalid UTF-8, a bad close code) are cut into random reads
and fed to both; the messages, pings and the closing verdict must be the same.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType
from wsproto.events import CloseConnection
from wsproto.frame_protocol import CloseReason, FrameProtocol

from pika.live.frames import Close, Event, FrameParser, Ping, WsprotoFrames, close_frame

BOUNDARIES = [0, 1, 2, 125, 126, 127, 65535, 65536, 65537]  # the length encoding changes at 126 and 65536
LIMIT = 1 << 20
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def raw_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x37\xfa\x21\x3d",
    wide: int = 0,  # 2 or 8: the length in more bytes than needed
) -> bytes:
    """A client frame as the RFC lays it out, written independently of both parsers."""
    size = len(payload)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked = 0x80 if mask is not None else 0
    if wide == 8 or size > 0xFFFF:
        header = struct.pack("!BBQ", first, masked | 127, size)
    elif wide == 2 or size > 125:
        header = struct.pack("!BBH", first, masked | 126, size)
    else:
        header = struct.pack("!BB", first, masked | size)
    if mask is None:
        return header + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


def sized(data: bytes, size: int) -> bytes:
    """`data` repeated or cut to exactly `size` bytes."""
    return (data * (size // max(1, len(data)) + 1))[:size] if data else b"a" * size


payload_sizes = st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, 300))
masks = st.binary(min_size=4, max_size=4)
reads = st.lists(st.integers(0, 1 << 20), max_size=8)  # where a stream is cut into reads


@st.composite
def message_frames(draw: st.DrawFn) -> list[bytes]:
    """One message (text or binary) in one or more frames, pings and pongs between them."""
    text = draw(st.booleans())
    size = draw(payload_sizes)
    if text:
        payload = sized(draw(st.text(min_size=1, max_size=20)).encode(), size)
        payload = payload.decode("utf-8", "ignore").encode()  # a multi-byte character may be cut
    else:
        payload = sized(draw(st.binary(max_size=20)), size)
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    frames = []
    for i, part in enumerate(parts):
        opcode = (1 if text else 2) if i == 0 else 0
        frames.append(raw_frame(opcode, part, fin=i == len(parts) - 1, mask=draw(masks)))
        if draw(st.integers(0, 4)) == 0:
            control = draw(st.sampled_from([9, 10]))
            frames.append(raw_frame(control, draw(st.binary(max_size=125)), mask=draw(masks)))
    return frames


close_codes = st.one_of(
    st.sampled_from([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1012, 1013, 1014, 1015, 1016]),
    st.sampled_from([0, 999, 2999, 3000, 4999, 5000]),
    st.integers(0, 65535),
)


@st.composite
def close_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["empty", "one byte", "code", "bad reason"]))
    if kind == "empty":
        payload = b""
    elif kind == "one byte":
        payload = b"\x03"
    else:
        reason = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")[:123]
        if kind == "bad reason":
            reason = reason[:60] + b"\xff\xfe"
        payload = struct.pack("!H", draw(close_codes)) + reason
    return raw_frame(8, payload, mask=draw(masks))


@st.composite
def broken_frames(draw: st.DrawFn) -> bytes:
    """A frame one rule forbids."""
    kind = draw(
        st.sampled_from(
            [
                "rsv",
                "unmasked",
                "opcode",
                "wide2",
                "wide8",
                "msb",
                "long control",
                "fragmented control",
                "continuation",
                "bad utf-8",
                "surrogate",
            ]
        )
    )
    payload = draw(st.binary(max_size=30))
    mask = draw(masks)
    if kind == "rsv":
        return raw_frame(draw(st.sampled_from([1, 2, 9])), payload, rsv=draw(st.integers(1, 7)), mask=mask)
    if kind == "unmasked":
        return raw_frame(draw(st.sampled_from([1, 2, 8, 9])), b"", mask=None)
    if kind == "opcode":
        return raw_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), payload, mask=mask)
    if kind in ("wide2", "wide8"):
        return raw_frame(2, payload[:125], wide=2 if kind == "wide2" else 8, mask=mask)
    if kind == "msb":
        return struct.pack("!BBQ", 0x82, 0xFF, (1 << 63) | 70000) + mask + b"x" * 10
    if kind == "long control":
        return raw_frame(9, sized(payload, 126), mask=mask)
    if kind == "fragmented control":
        return raw_frame(9, payload[:10], fin=False, mask=mask)
    if kind == "continuation":
        return raw_frame(0, payload, mask=mask)
    if kind == "bad utf-8":
        return raw_frame(1, b"ok" + b"\xc3\x28" + payload, mask=mask)
    return raw_frame(1, b"\xed\xa0\x80", mask=mask)  # an encoded surrogate is not UTF-8


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    messages = draw(st.lists(message_frames(), max_size=6))
    frames = [f for m in messages for f in m]
    if draw(st.booleans()):  # something broken somewhere (maybe inside a fragmented message)
        frames.insert(draw(st.integers(0, len(frames))), draw(broken_frames()))
    if draw(st.booleans()):
        frames.append(draw(close_frames()))
        frames.append(raw_frame(1, b"after the close", mask=b"abcd"))
    return b"".join(frames)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def own(chunks: list[bytes], limit: int = LIMIT) -> list[Event]:
    parser = FrameParser(limit)
    return [event for chunk in chunks for event in parser.receive(chunk)]


def reference(chunks: list[bytes], limit: int = LIMIT) -> list[Event]:
    frames = WsprotoFrames(WsConnection(ConnectionType.SERVER), limit)
    return [event for chunk in chunks for event in frames.receive(chunk)]


def verdicts(events: list[Event]) -> list[object]:
    """The events with a close's reason left out where the parsers word a broken frame their own way."""
    return [Close(e.code, "") if isinstance(e, Close) and e.code in (1002, 1007) else e for e in events]


@SETTINGS
@given(streams(), reads, reads)
def test_any_client_stream_reads_as_wsproto_reads_it(data: bytes, ours: list[int], theirs: list[int]) -> None:
    assert verdicts(own(cut(data, ours))) == verdicts(reference(cut(data, theirs)))


@SETTINGS
@given(st.lists(message_frames(), min_size=1, max_size=4), st.integers(1, 2000), st.data())
def test_a_message_over_the_limit_closes_with_1009_once_its_header_arrives(
    messages: list[list[bytes]], limit: int, data: st.DataObject
) -> None:
    before = b"".join(f for m in messages for f in m)
    big = data.draw(st.sampled_from([limit + 1, limit + 126, 65536 + limit]))
    header = raw_frame(data.draw(st.sampled_from([1, 2])), b"x" * big)[: 14 if big > 0xFFFF else 8]
    expected = [e for e in reference([before]) if not isinstance(e, str | bytes) or _size(e) <= limit]
    got = own([before, header], limit)
    assert got[-1] == Close(1009, "message too big")
    if all(_size(e) <= limit for e in reference([before]) if isinstance(e, str | bytes)):
        assert got[:-1] == expected


def _size(message: str | bytes) -> int:
    return len(message.encode()) if isinstance(message, str) else len(message)


def test_a_message_over_the_limit_in_fragments_closes_with_1009() -> None:
    frames = [raw_frame(1, b"a" * 600, fin=False), raw_frame(9, b"ping"), raw_frame(0, b"b" * 600)]
    assert own([b"".join(frames)], limit=1000) == [Ping(b"ping"), Close(1009, "message too big")]


@given(close_codes, st.text(max_size=200))
def test_close_frames_read_back_as_wsproto_clients_read_them(code: int, reason: str) -> None:
    reason = "" if code == 1005 else reason  # 1005 is a close without a code: no reason either
    client = WsConnection(ConnectionType.CLIENT)
    client.receive_data(close_frame(code, reason))
    [event] = list(client.events())
    assert isinstance(event, CloseConnection)
    known = code in CloseReason._value2member_map_  # as wsproto's own events carry them
    reference = FrameProtocol(client=False, extensions=[]).close(CloseReason(code) if known else code, reason)
    assert close_frame(code, reason) == bytes(reference)


def test_the_close_handshake_is_over_once_both_close_frames_passed() -> None:
    parser = FrameParser(LIMIT)
    assert parser.close(1012, "restarting") == close_frame(1012, "restarting")
    assert not parser.closed
    assert parser.close(1000) == b""  # only one close frame is ever sent
    assert parser.receive(raw_frame(8, struct.pack("!H", 1012))) == [Close(1012, "")]
    assert parser.closed


def test_a_ping_is_answered_with_its_payload() -> None:
    parser = FrameParser(LIMIT)
    assert parser.receive(raw_frame(9, b"hello")) == [Ping(b"hello")]
    assert parser.pong(b"hello") == b"\x8a\x05hello"
