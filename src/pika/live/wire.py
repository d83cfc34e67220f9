"""Server frames encoded once: the JSON text and the exact bytes of its WebSocket frame.

Server frames are unmasked, so every recipient of a broadcast gets the same bytes: `frame()`
builds them once and the live listener writes them straight into each socket; the plain ASGI
path sends the text instead.  `joined()` makes several frames one write per recipient.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from pika.protocol import ack, encode, iso


@dataclass(frozen=True, slots=True)
class Frame:
    """Outbound messages for all their recipients: the JSON texts and the wire bytes (one
    WebSocket frame per text).  A control frame has no text: only the owned socket sends it."""

    texts: tuple[str, ...]
    wire: bytes


# Who a frame relayed to other processes is for (live/relay.py): a room's whole audience, its
# subscribers without the DJ side, or every connection (discovery events).
ROOM, SUBSCRIBERS, EVERYONE = "R", "S", "E"

PING = Frame((), b"\x89\x00")  # FIN + ping opcode, no payload, unmasked


def frame(message: dict[str, Any]) -> Frame:
    return text_frame(encode(message))


def text_frame(text: str) -> Frame:
    """The frame of a message already encoded (one relayed from another process)."""
    payload = text.encode("utf-8")
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))  # FIN + text opcode; unmasked (server to client)
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return Frame((text,), header + payload)


_PLAIN_ID = re.compile(r"[ !#-\[\]-~]{1,128}")  # printable ASCII but " and backslash: JSON as it is


def ack_frame(message_id: str, now: float) -> Frame:
    """`frame(ack(message_id, now))`, filled into a template when the id needs no JSON escaping
    (every ACK of a dancer frame goes out this way)."""
    if _PLAIN_ID.fullmatch(message_id) is None:
        return frame(ack(message_id, now))
    text = f'{{"type":"ACK","messageId":"{message_id}","status":"ok","timestamp":"{iso(now)}"}}'
    payload = text.encode("ascii")
    size = len(payload)
    header = bytes((0x81, size)) if size < 126 else struct.pack("!BBH", 0x81, 126, size)
    return Frame((text,), header + payload)


def joined(frames: list[Frame]) -> Frame:
    """Several frames as one: sent back to back, in order, with one write per recipient."""
    if len(frames) == 1:
        return frames[0]
    return Frame(tuple(t for f in frames for t in f.texts), b"".join(f.wire for f in frames))
