"""Listener counting (PROTOCOL.md §7), as a pure rule: no I/O, time comes in as an argument.

A listener is a distinct clientId in a live session's audience.  Several tabs of one browser
count once; a client whose last connection closed still counts for `linger` seconds, because
phones sleep in pockets and come back (a server restart included: `restore`).
"""

from __future__ import annotations


class Listeners:
    """Distinct clients of one session: open connections per client, and when each one left."""

    def __init__(self, linger: float) -> None:
        self.linger = linger
        self._open: dict[str, int] = {}
        self._left: dict[str, float] = {}

    def join(self, client: str) -> bool:
        """One connection of `client` joined; True when it is the client's first open one."""
        opened = self._open.get(client, 0)
        self._open[client] = opened + 1
        self._left.pop(client, None)
        return opened == 0

    def leave(self, client: str, now: float) -> bool:
        """One connection of `client` left; True when it was the last: the client lingers from now."""
        remaining = self._open.get(client, 0) - 1
        if remaining > 0:
            self._open[client] = remaining
            return False
        self._open.pop(client, None)
        if remaining == 0:
            self._left[client] = now
        return remaining == 0

    def restore(self, client: str, left: float) -> None:
        """A client that left at `left` as a previous server run saw it: it lingers from then,
        unless it is connected again or already lingers from later."""
        if client not in self._open and self._left.get(client, left) <= left:
            self._left[client] = left

    def count(self, now: float) -> int:
        self._forget(now)
        return len(self._open) + len(self._left)

    @property
    def connected(self) -> int:
        """Clients with at least one open connection."""
        return len(self._open)

    def next_expiry(self) -> float | None:
        """When the earliest lingering client stops counting (None when nobody lingers)."""
        return min(self._left.values()) + self.linger if self._left else None

    def _forget(self, now: float) -> None:
        expired = [c for c, left in self._left.items() if now - left >= self.linger]
        for client in expired:
            del self._left[client]
