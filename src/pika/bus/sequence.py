"""Per-room sequence numbers: the sender numbers each room's batches 1, 2, 3 …; a receiver that
sees anything but the next number (a notification lost while its listener was away, a new
owner) must re-read the room from PostgreSQL instead of showing what it holds.  Pure: no I/O.

A sender's numbers belong to its `origin` (one per bus instance): a room whose batches start
coming from another origin has changed owner, and what the old one sent last may be lost.
A room not followed yet is taken up at whatever number comes: its state is read from PostgreSQL
once the listener is up, so nothing before that number is missing.
"""

from __future__ import annotations

import enum
from collections import defaultdict


class Verdict(enum.Enum):
    NEXT = "next"  # the batch that follows what this process holds: apply it
    STALE = "stale"  # already seen (or older): ignore it
    REREAD = "reread"  # something is missing: re-read the room's state from PostgreSQL


class Sequencer:
    """The sender's side: the next number of each room."""

    def __init__(self) -> None:
        self._last: defaultdict[str, int] = defaultdict(int)

    def next(self, session_id: str) -> int:
        self._last[session_id] += 1
        return self._last[session_id]

    def following(self, session_id: str) -> int:
        """The number `next` would give, not taken yet: for a batch sent in a transaction whose
        commit is still to come (`take` it then), so a rolled-back one leaves no gap."""
        return self._last.get(session_id, 0) + 1

    def take(self, session_id: str, seq: int) -> None:
        self._last[session_id] = seq


class Sequences:
    """The receiver's side: for each room, whose numbers it follows and the last one applied."""

    def __init__(self) -> None:
        self._rooms: dict[str, tuple[str, int]] = {}

    def accept(self, session_id: str, origin: str, seq: int) -> Verdict:
        known = self._rooms.get(session_id)
        if known is not None and known[0] == origin:
            if seq <= known[1]:
                return Verdict.STALE
            self._rooms[session_id] = (origin, seq)
            return Verdict.NEXT if seq == known[1] + 1 else Verdict.REREAD
        self._rooms[session_id] = (origin, seq)
        return Verdict.NEXT if known is None else Verdict.REREAD  # else: a new owner

    def reset(self) -> None:
        """The listener was away: nothing held can be trusted to be the next."""
        self._rooms.clear()
