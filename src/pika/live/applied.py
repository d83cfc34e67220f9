"""Which messageIds were applied recently, per sender: the dedupe check without a round trip.

PROTOCOL.md §1: a messageId applied for the same sender within 10 minutes is answered with a
bare ACK, before any rate or state check.  The truth is the `applied_messages` row each effect
claims in its own transaction; this in-memory mirror (loaded at start, fed on every success)
lets a flood of retries or refusals cost no query.  Pure: time comes in as an argument.  An entry
is a string and a float, objects the garbage collector never tracks: a busy night's million
entries add nothing to its scans.
"""

from __future__ import annotations

from collections.abc import Iterable

WINDOW = 600.0


class AppliedIds:
    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._at: dict[str, float] = {}  # insertion order ≈ time order

    def seen(self, sender: str, message_id: str, now: float) -> bool:
        at = self._at.get(_key(sender, message_id))
        return at is not None and now - at < self.window

    def add(self, sender: str, message_id: str, at: float) -> None:
        key = _key(sender, message_id)
        self._at.pop(key, None)
        self._at[key] = at

    def load(self, rows: Iterable[tuple[str, str, float]]) -> None:
        """(sender, messageId, applied_at) rows, oldest first, e.g. from the database at start."""
        for sender, message_id, at in rows:
            self.add(sender, message_id, at)

    def prune(self, now: float) -> None:
        """Forget what left the window: the oldest entries, without copying the rest."""
        expired = []
        for key, at in self._at.items():
            if now - at < self.window:
                break
            expired.append(key)
        for key in expired:
            del self._at[key]

    def __len__(self) -> int:
        return len(self._at)


def _key(sender: str, message_id: str) -> str:
    """One string per pair, unambiguous whatever either holds (the sender's length leads)."""
    return f"{len(sender)}:{sender}{message_id}"
