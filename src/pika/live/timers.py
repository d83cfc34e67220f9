"""Room timers: coalescing (PROTOCOL.md §6) and tasks that may outlive their nursery's opening.

Coalescing means at most one message per window, and the last state always sent.
`poke()` says "the state may have changed".  The first poke after a quiet window sends at once;
pokes inside a window arm one timer that sends at the window's end.  What is sent is computed
when sending, so it is always the latest state; `send` may decide nothing changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio


def start_soon_unless_closing(nursery: trio.Nursery, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
    """Start a task, or do nothing when the nursery is already closing (a room or the server
    shutting down: its timers are moot).  Returns whether the task was started."""
    try:
        nursery.start_soon(fn, *args)
    except RuntimeError:  # "Nursery is closed to new arrivals"
        return False
    return True


class Coalescer:
    def __init__(self, nursery: trio.Nursery, window: Callable[[], float], send: Callable[[], None]) -> None:
        self._nursery = nursery
        self._window = window
        self._send = send
        self._last = -float("inf")
        self._armed = False
        self._check_at: float | None = None

    def poke(self) -> None:
        if self._armed:
            return
        now = trio.current_time()
        if now - self._last >= self._window():
            self._last = now
            self._send()
        else:
            self._armed = start_soon_unless_closing(self._nursery, self._later)

    def poke_at(self, deadline: float) -> None:
        """Re-check at `deadline` (trio time), for state that changes by itself (lingering
        listeners, lapsing votes).  One pending check at a time, the earliest: the `send`
        callback re-arms for the next deadline, so a thousand votes never hold a thousand tasks."""
        if self._check_at is not None and self._check_at <= deadline:
            return
        self._check_at = deadline
        start_soon_unless_closing(self._nursery, self._poke_at, deadline)

    async def _poke_at(self, deadline: float) -> None:
        await trio.sleep_until(deadline)
        if self._check_at == deadline:
            self._check_at = None
        self.poke()

    async def _later(self) -> None:
        await trio.sleep_until(self._last + self._window())
        self._armed = False
        self._last = trio.current_time()
        self._send()
