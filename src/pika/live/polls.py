"""Polls (PROTOCOL.md §3.1 START_POLL/END_POLL/CANCEL_POLL, §3.2 VOTE_ON_POLL), as a pure rule.

A `Poll` is a value: voting returns a new poll or raises `VoteRejected` with the exact reason the
wire carries. Time comes in as an argument, so expiry is decided here and not by whoever holds a
clock; the messages are built here too so that every path sends the same keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from pika.protocol import iso

__all__ = ["ACTIVE", "CANCELLED", "CLOSED", "Poll", "VoteRejected"]

ACTIVE = "active"
CLOSED = "closed"
CANCELLED = "cancelled"


class VoteRejected(Exception):
    """A well-formed vote the poll refuses; `str(exc)` is the VOTE_REJECTED reason."""

    ALREADY_VOTED: ClassVar[str] = "Already voted"
    ENDED: ClassVar[str] = "Poll has ended"
    INVALID_OPTION: ClassVar[str] = "Invalid option index"

    @property
    def reason(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Poll:
    """One poll of a session and its ballots: at most one per client, never changed once cast."""

    id: int
    session_id: str
    question: str
    options: tuple[str, ...]
    started_at: float
    ends_at: float | None
    ballots: Mapping[str, int] = field(default_factory=dict)  # client -> option index
    status: str = ACTIVE  # active | closed | cancelled

    @classmethod
    def from_row(cls, row: Mapping[str, Any], ballots: Mapping[str, int]) -> Poll:
        """An active poll as PostgreSQL holds it (a restored room, a replica)."""
        return cls(
            id=row["id"],
            session_id=row["session_id"],
            question=row["question"],
            options=tuple(row["options"]),
            started_at=row["started_at"].timestamp(),
            ends_at=row["ends_at"].timestamp() if row["ends_at"] else None,
            ballots=ballots,
        )

    def vote(self, client: str, option_index: int, now: float) -> Poll:
        """A new poll with `client`'s ballot for `option_index`.

        Checks run in the order a client can act on: an ended poll refuses everything, then a bad
        index, then a second vote.
        """
        if self.ended(now):
            raise VoteRejected(VoteRejected.ENDED)
        if not 0 <= option_index < len(self.options):
            raise VoteRejected(VoteRejected.INVALID_OPTION)
        if client in self.ballots:
            raise VoteRejected(VoteRejected.ALREADY_VOTED)
        return replace(self, ballots={**self.ballots, client: option_index})

    def ended(self, now: float) -> bool:
        """True once closed, cancelled or past `ends_at`: the timer may not have fired yet."""
        return self.status != ACTIVE or (self.ends_at is not None and now >= self.ends_at)

    def votes(self) -> list[int]:
        """Votes per option, in option order (a stored out-of-range ballot is not counted)."""
        counts = [0] * len(self.options)
        for index in self.ballots.values():
            if 0 <= index < len(counts):
                counts[index] += 1
        return counts

    @property
    def total_votes(self) -> int:
        return sum(self.votes())

    def winner_index(self) -> int:
        """First index of the highest count; -1 when nobody voted or the DJ cancelled the poll."""
        counts = self.votes()
        if self.status == CANCELLED or not any(counts):
            return -1
        return counts.index(max(counts))

    def has_voted(self, client: str) -> bool:
        return client in self.ballots

    def voted_option(self, client: str) -> int | None:
        return self.ballots.get(client)

    def close(self, status: str = CLOSED) -> Poll:
        """The poll ended by END_POLL or its timer (`closed`) or by CANCEL_POLL (`cancelled`)."""
        if status not in (CLOSED, CANCELLED):
            raise ValueError(f"poll status {status!r} is not {CLOSED!r} or {CANCELLED!r}")
        return replace(self, status=status)

    def started_message(self, client: str | None = None) -> dict[str, Any]:
        """POLL_STARTED; with `client`, also whether and how that client voted (for SUBSCRIBE)."""
        message: dict[str, Any] = {
            "type": "POLL_STARTED",
            "sessionId": self.session_id,
            "pollId": self.id,
            "question": self.question,
            "options": list(self.options),
        }
        if self.ends_at is not None:
            message["endsAt"] = iso(self.ends_at)
        message["votes"] = self.votes()
        message["totalVotes"] = self.total_votes
        if client is not None:
            message["hasVoted"] = self.has_voted(client)
            voted = self.voted_option(client)
            if voted is not None:
                message["votedOptionIndex"] = voted
        return message

    def update_message(self) -> dict[str, Any]:
        return {
            "type": "POLL_UPDATE",
            "pollId": self.id,
            "sessionId": self.session_id,
            "votes": self.votes(),
            "totalVotes": self.total_votes,
        }

    def ended_message(self) -> dict[str, Any]:
        return {
            "type": "POLL_ENDED",
            "pollId": self.id,
            "sessionId": self.session_id,
            "results": self.votes(),
            "totalVotes": self.total_votes,
            "winnerIndex": self.winner_index(),
        }
