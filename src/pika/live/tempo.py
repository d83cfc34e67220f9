"""Tempo votes for the current track (PROTOCOL.md §3.2 SEND_TEMPO_REQUEST), as a pure rule.

One vote per client, the newest replaces the older one, `clear` takes it back, and a vote stops
counting `lapse` seconds after it was cast. Time comes in as an argument so the rule can be replayed
from the database after a restart and hammered by hypothesis without a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLEAR", "LAPSE", "PREFERENCES", "TempoCounts", "TempoTally"]

PREFERENCES: tuple[str, ...] = ("faster", "perfect", "slower")
CLEAR = "clear"  # not a vote: it removes the client's vote
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


@dataclass(frozen=True)
class TempoTally:
    """Live tempo votes for the current track: one per client, newest wins."""

    votes: Mapping[str, tuple[str, float]] = field(default_factory=dict)  # client -> (preference, cast_at)

    def cast(self, client: str, preference: str, now: float) -> TempoTally:
        """A new tally with `client`'s vote replaced by `preference`, or removed when it is `clear`.

        Raises ValueError for any other preference: the parser has refused those already, so one
        reaching here is a bug, not a user's mistake.
        """
        votes = dict(self.votes)
        if preference == CLEAR:
            votes.pop(client, None)
        elif preference in PREFERENCES:
            votes[client] = (preference, now)
        else:
            raise ValueError(f"tempo preference {preference!r} is not one of {(*PREFERENCES, CLEAR)}")
        return TempoTally(votes)

    def counts(self, now: float, lapse: float = LAPSE) -> TempoCounts:
        """Votes cast less than `lapse` seconds before `now`, per preference."""
        tally = dict.fromkeys(PREFERENCES, 0)
        for preference, cast_at in self.votes.values():
            if now - cast_at < lapse:
                tally[preference] += 1
        return TempoCounts(**tally)

    def next_lapse(self, lapse: float = LAPSE) -> float | None:
        """When the earliest vote stops counting (None without votes), so the DJ can be told then.

        Lapsed votes are kept until `prune`, so this may lie in the past: prune before asking it
        when scheduling a timer.
        """
        return min(cast_at for _, cast_at in self.votes.values()) + lapse if self.votes else None

    def prune(self, now: float, lapse: float = LAPSE) -> TempoTally:
        """A tally without the votes that no longer count at `now`; `counts` is unchanged by it."""
        return TempoTally({c: v for c, v in self.votes.items() if now - v[1] < lapse})

    @classmethod
    def from_votes(cls, rows: Iterable[tuple[str, str, float]]) -> TempoTally:
        """Rebuild a tally from stored `(client, preference, cast_at)` rows, e.g. after a restart.

        Rows are replayed in `cast_at` order, so several rows of one client keep the newest.
        """
        tally = cls()
        for client, preference, cast_at in sorted(rows, key=lambda row: row[2]):
            tally = tally.cast(client, preference, cast_at)
        return tally
