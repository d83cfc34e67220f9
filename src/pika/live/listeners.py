"""Listener counting (PROTOCOL.md §7), as a pure rule: no I/O, time comes in as an argument.

A listener is a distinct clientId in a live session's audience.  Several tabs of one browser
count once; a client whose last connection closed still counts for `linger` seconds, because
phones sleep in pockets and come back (a server restart included: `restore`).  Members another
process reports (`report`) count as connected until it stops reporting them, or falls silent.
"""

from __future__ import annotations

from collections.abc import Iterable

REPORT_EVERY = 5.0  # s between a process's reports of its members of a room owned elsewhere
REPORT_LAPSE = 3 * REPORT_EVERY  # s without a report after which a process's members have left


class Listeners:
    """Distinct clients of one session: open connections per client, and when each one left."""

    def __init__(self, linger: float) -> None:
        self.linger = linger
        self._open: dict[str, int] = {}
        self._left: dict[str, float] = {}
        self._reports: dict[str, tuple[frozenset[str], float]] = {}  # origin -> (members, last heard)

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

    def report(self, origin: str, members: Iterable[str], now: float) -> bool:
        """Another process's members (`origin`: its relay) as it reports them at `now`: each is
        one open connection of its client until a report leaves it out, or until the process
        has not reported for `REPORT_LAPSE` (killed): then they left when it was last heard.
        True when its members changed."""
        before = self._reports.pop(origin, (frozenset(), now))[0]
        after = frozenset(members)
        for client in after - before:
            self.join(client)
        for client in before - after:
            self.leave(client, now)
        if after:
            self._reports[origin] = (after, now)
        return after != before

    def count(self, now: float) -> int:
        self._forget(now)
        return len(self._open) + len(self._left)

    @property
    def connected(self) -> int:
        """Clients with at least one open connection."""
        return len(self._open)

    def next_expiry(self) -> float | None:
        """When the count may next drop by itself: the earliest lingering client stops counting,
        or the longest silent process's members leave (None when neither can happen)."""
        expiries = [min(self._left.values()) + self.linger] if self._left else []
        if self._reports:
            expiries.append(min(heard for _, heard in self._reports.values()) + REPORT_LAPSE)
        return min(expiries, default=None)

    def _forget(self, now: float) -> None:
        silent = [origin for origin, (_, heard) in self._reports.items() if now - heard >= REPORT_LAPSE]
        for origin in silent:
            members, heard = self._reports.pop(origin)
            for client in members:
                self.leave(client, heard)
        expired = [c for c, left in self._left.items() if now - left >= self.linger]
        for client in expired:
            del self._left[client]
