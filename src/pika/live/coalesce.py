"""Coalescing (PROTOCOL.md §6): at most one message per window, and the last state always sent.

`poke()` says "the state may have changed".  The first poke after a quiet window sends at once;
pokes inside a window arm one timer that sends at the window's end.  What is sent is computed
when sending, so it is always the latest state; `send` may decide nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable

import trio


class Coalescer:
    def __init__(self, nursery: trio.Nursery, window: Callable[[], float], send: Callable[[], None]) -> None:
        self._nursery = nursery
        self._window = window
        self._send = send
        self._last = -float("inf")
        self._armed = False

    def poke(self) -> None:
        if self._armed:
            return
        now = trio.current_time()
        if now - self._last >= self._window():
            self._last = now
            self._send()
        else:
            self._armed = True
            self._nursery.start_soon(self._later)

    def poke_at(self, deadline: float) -> None:
        """Re-check at `deadline` (trio time): for state that changes by itself, e.g. lingering listeners."""
        self._nursery.start_soon(self._poke_at, deadline)

    async def _poke_at(self, deadline: float) -> None:
        await trio.sleep_until(deadline)
        self.poke()

    async def _later(self) -> None:
        await trio.sleep_until(self._last + self._window())
        self._armed = False
        self._last = trio.current_time()
        self._send()
