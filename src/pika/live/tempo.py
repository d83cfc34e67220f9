"""Tempo votes for the current track (PROTOCOL.md §3.2 SEND_TEMPO_REQUEST), as a pure rule.

One vote per client, the newest replaces the older one, `clear` takes it back, and a vote stops
counting `lapse` seconds after it was cast. Time comes in as an argument so the rule can be replayed
from the database after a restart and hammered by hypothesis without a clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pika.protocol import TEMPO_CLEAR, TEMPO_VOTES

__all__ = ["LAPSE", "TempoCounts", "TempoTally"]

LAPSE = 300.0  # seconds a vote keeps counting (PROTOCOL.md §9)


@dataclass(frozen=True, slots=True)
class TempoCounts:
    """How many live votes each preference has: what the DJ sees in TEMPO_FEEDBACK."""

    faster: int = 0
    perfect: int = 0
    slower: int = 0

    @property
    def total(self) -> int:
        return self.faster + self.perfect + self.slower

    def feedback(self, session_id: str) -> dict[str, Any]:
        """The TEMPO_FEEDBACK frame (PROTOCOL.md §4) for these counts."""
        return {
            "type": "TEMPO_FEEDBACK",
            "sessionId": session_id,
            "faster": self.faster,
            "slower": self.slower,
            "perfect": self.perfect,
            "total": self.total,
        }


class TempoTally:
    """Live tempo votes for the current track: one per client, newest wins.

    Mutable, and O(log n) per vote: a room of 10,000 dancers casts thousands of votes per
    track, and a copy (or a scan) of the tally per vote made that quadratic.  A heap of
    (cast_at, client) finds the earliest live vote; entries a newer vote or a clear made stale
    are skipped when they reach the top.
    """

    def __init__(self) -> None:
        self.votes: dict[str, tuple[str, float]] = {}  # client -> (preference, cast_at)
        self._by_age: list[tuple[float, str]] = []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TempoTally) and self.votes == other.votes

    def __repr__(self) -> str:
        return f"TempoTally({self.votes!r})"

    def cast(self, client: str, preference: str, now: float) -> TempoTally:
        """Replace `client`'s vote by `preference`, or remove it when it is `clear`; returns self.

        Raises ValueError for any other preference: the parser has refused those already, so one
        reaching here is a bug, not a user's mistake.
        """
        if preference == TEMPO_CLEAR:
            self.votes.pop(client, None)
        elif preference in TEMPO_VOTES:
            self.votes[client] = (preference, now)
            heapq.heappush(self._by_age, (now, client))
        else:
            raise ValueError(f"tempo preference {preference!r} is not one of {(*TEMPO_VOTES, TEMPO_CLEAR)}")
        return self

    def counts(self, now: float, lapse: float = LAPSE) -> TempoCounts:
        """Votes cast less than `lapse` seconds before `now`, per preference."""
        tally = dict.fromkeys(TEMPO_VOTES, 0)
        for preference, cast_at in self.votes.values():
            if now - cast_at < lapse:
                tally[preference] += 1
        return TempoCounts(**tally)

    def next_lapse(self, lapse: float = LAPSE) -> float | None:
        """When the earliest vote stops counting (None without votes), so the DJ can be told then.

        Lapsed votes are kept until `prune`, so this may lie in the past: prune before asking it
        when scheduling a timer.
        """
        oldest = self._oldest()
        return None if oldest is None else oldest[0] + lapse

    def prune(self, now: float, lapse: float = LAPSE) -> TempoTally:
        """Drop the votes that no longer count at `now` (`counts` is unchanged by it); returns self."""
        while (oldest := self._oldest()) is not None and now - oldest[0] >= lapse:
            heapq.heappop(self._by_age)
            del self.votes[oldest[1]]
        return self

    def _oldest(self) -> tuple[float, str] | None:
        """The heap's top after dropping entries that no longer match a live vote."""
        heap = self._by_age
        while heap:
            cast_at, client = heap[0]
            vote = self.votes.get(client)
            if vote is not None and vote[1] == cast_at:
                return heap[0]
            heapq.heappop(heap)
        return None

    @classmethod
    def from_votes(cls, rows: Iterable[tuple[str, str, float]]) -> TempoTally:
        """Rebuild a tally from stored `(client, preference, cast_at)` rows, e.g. after a restart.

        Rows are replayed in `cast_at` order, so several rows of one client keep the newest.
        """
        tally = cls()
        for client, preference, cast_at in sorted(rows, key=lambda row: row[2]):
            tally.cast(client, preference, cast_at)
        return tally
