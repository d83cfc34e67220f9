"""DJ announcements (PROTOCOL.md §3.1 SEND_ANNOUNCEMENT), as a pure value.

Whether an announcement still shows depends only on `now`, so a dancer who subscribes after it
expired never sees it even if the expiry timer has not fired yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pika.protocol import iso

__all__ = ["Announcement"]


@dataclass(frozen=True)
class Announcement:
    """A message from the DJ to the session's dancers, open-ended or until `ends_at`."""

    session_id: str
    message: str
    dj_name: str
    created_at: float
    ends_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Announcement:
        """An active announcement as PostgreSQL holds it (a restored room, a replica)."""
        ends_at = row["ends_at"].timestamp() if row["ends_at"] else None
        return cls(row["session_id"], row["message"], row["dj_name"], row["created_at"].timestamp(), ends_at)

    def active(self, now: float) -> bool:
        return self.ends_at is None or now < self.ends_at

    def received_message(self) -> dict[str, Any]:
        """ANNOUNCEMENT_RECEIVED (PROTOCOL.md §4); `endsAt` is left out rather than sent as null."""
        return {
            "type": "ANNOUNCEMENT_RECEIVED",
            "sessionId": self.session_id,
            "message": self.message,
            "djName": self.dj_name,
            **self.summary(),
        }

    def summary(self) -> dict[str, Any]:
        """`{message, timestamp, endsAt?}`: the `activeAnnouncement` of a SESSIONS_LIST entry."""
        summary: dict[str, Any] = {"message": self.message, "timestamp": iso(self.created_at)}
        if self.ends_at is not None:
            summary["endsAt"] = iso(self.ends_at)
        return summary
