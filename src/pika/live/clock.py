"""The live path's one clock: epoch seconds read from trio's clock, mapped to wall time once.

Every room rule takes `now` from here and every timer sleeps on trio's clock, so both move
together, and `trio.testing.MockClock` drives poll auto-close, announcement expiry, grace,
listener linger, tempo lapse and session expiry alike.
"""

from __future__ import annotations

import time

import trio


class Clock:
    def __init__(self) -> None:
        self._offset: float | None = None  # epoch - trio time, fixed at the first reading

    def now(self) -> float:
        """Epoch seconds (what timestamps on the wire and in the database are made of)."""
        return trio.current_time() + self._epoch_offset()

    def deadline(self, at: float) -> float:
        """The trio time at which the epoch time `at` comes."""
        return at - self._epoch_offset()

    def _epoch_offset(self) -> float:
        if self._offset is None:
            self._offset = time.time() - trio.current_time()
        return self._offset
