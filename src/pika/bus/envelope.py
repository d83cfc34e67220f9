"""One NOTIFY payload of the bus: which room, whose numbering and which number, and the batch's
frames when they fit, else the id of the `bus_events` row holding them (read once per process).

Layout: a JSON header line `[origin, session, seq, event_id]`, then one frame per line (frames
are compact JSON: a raw newline never occurs in one).  PostgreSQL refuses payloads of 8000 bytes
or more; MAX_PAYLOAD leaves room for the channel name and a margin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_PAYLOAD = 7900  # bytes of UTF-8


class BadEnvelope(ValueError):
    """A payload on the bus channel that is not an envelope (another program's NOTIFY)."""


@dataclass(frozen=True)
class Envelope:
    origin: str
    session_id: str
    seq: int
    frames: tuple[str, ...] | None  # None: stored in bus_events under `event_id`
    event_id: int | None = None

    def encode(self) -> str:
        header = json.dumps([self.origin, self.session_id, self.seq, self.event_id], separators=(",", ":"))
        return "\n".join((header, *(self.frames or ())))

    def fits(self) -> bool:
        return len(self.encode().encode("utf-8")) <= MAX_PAYLOAD

    @classmethod
    def decode(cls, payload: str) -> Envelope:
        header, *frames = payload.split("\n")
        try:
            origin, session_id, seq, event_id = json.loads(header)
        except (ValueError, TypeError) as exc:
            raise BadEnvelope(f"not a bus envelope: {payload[:80]!r}") from exc
        if not (isinstance(origin, str) and isinstance(session_id, str) and isinstance(seq, int)):
            raise BadEnvelope(f"not a bus envelope: {payload[:80]!r}")
        if event_id is not None:
            return cls(origin, session_id, seq, None, int(event_id))
        return cls(origin, session_id, seq, tuple(frames))
