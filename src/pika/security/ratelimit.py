"""Per-key rate limits (likes, votes, reactions, logins, upgrades) that never block the trio loop.

Sliding windows (every per-client limit a dancer frame meets) are a log of integer milliseconds
per key, kept here: nothing in it is an object the garbage collector tracks.  Token buckets are
pyrate-limiter 4.5's GCRA, fed through its bucket's synchronous `put()` (its `Limiter` waits with
`time.sleep` and its async API is asyncio-only).  Nothing here sleeps, awaits or starts a thread;
idle keys are dropped lazily.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import repeat

from pyrate_limiter import InMemoryStateStore, Rate, RateItem, StateBucket, TokenBucket

__all__ = ["KeyedLimiter"]


class KeyedLimiter:
    """`limit` events per `per_seconds` for each key (client id, IP, email, session), never blocking.

    `burst=None`: a sliding window — at most `limit` events in any `per_seconds` span (exact, as "5
    failed logins per 15 minutes" needs; the same answers as pyrate's `SlidingWindowLog`). `burst=N`:
    a token bucket — `N` at once, refilling at `limit / per_seconds` (pyrate's `TokenBucket` with
    `Rate(burst=N)`), so `KeyedLimiter(1, 1.0, burst=10)` is a burst of 10 then 1 per second.

    Keys are isolated: each has its own state. Memory stays bounded: a key idle for longer than its
    window (its state is then indistinguishable from a fresh key's) is forgotten on a later `allow()`,
    oldest first, at amortised O(1) per call. A lock makes calls from worker threads safe; it is held
    for microseconds and never across a wait, because there is none.

    Why the window is not pyrate's `InMemoryBucket`: it keeps a `RateItem` object per event for a
    whole window, so at thousands of frames a second the collector tracked hundreds of thousands of
    them, and each call cost ~1.3-2.5 µs against ~0.1-0.2 µs for this log of integers.

    `clock` returns seconds from a monotonic source; inject a fake one (or `trio.current_time` under
    trio's `MockClock`) for deterministic tests. It is read at millisecond resolution, pyrate's unit.
    """

    def __init__(
        self,
        limit: int,
        per_seconds: float,
        *,
        burst: int | None = None,
        name: str = "limit",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"{name}: limit must be a whole number of events >= 1, got {limit!r}")
        interval_ms = round(per_seconds * 1000) if math.isfinite(per_seconds) else 0
        if interval_ms < 1:
            raise ValueError(f"{name}: per_seconds must be >= 0.001 (1 ms), got {per_seconds!r}")
        if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
            raise ValueError(f"{name}: burst must be None or a whole number >= 1, got {burst!r}")
        self.name = name
        self.limit = limit
        self.per_seconds = per_seconds
        self.burst = burst
        self._policy: _SlidingWindow | _Tokens = (
            _SlidingWindow(limit, interval_ms) if burst is None else _Tokens(limit, interval_ms, burst)
        )
        self._clock = clock
        # Least recently used first: every allow() moves its key to the end, so idle keys gather at the
        # front and forgetting them never scans the active ones.
        self._keys: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, weight: int = 1) -> bool:
        """Consume `weight` events for `key` if the limit has room; False (consuming nothing) if not.

        Never sleeps. A weight larger than the limit (or the burst) is always refused.
        """
        if weight < 1:
            raise ValueError(f"{self.name}: weight must be >= 1, got {weight!r}")
        with self._lock:
            now = self._now_ms()
            self._forget_idle(now)
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = _Entry(self._policy.new_state())
            else:
                self._keys.move_to_end(key)
            entry.last_seen = now
            return self._policy.put(entry.state, now, weight)

    def would_allow(self, key: str) -> bool:
        """Whether one more event for `key` would be allowed now, without consuming it."""
        return self.retry_after(key) == 0.0

    def retry_after(self, key: str) -> float:
        """Seconds until one more event for `key` would be allowed; 0.0 if it would be now.

        Rounded up by a millisecond, so that waiting exactly this long is always enough despite the
        clock being read at millisecond resolution. Callers put `math.ceil()` of it in `Retry-After`.
        """
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                return 0.0
            wait_ms = self._policy.wait_ms(entry.state, self._now_ms())
        return 0.0 if wait_ms <= 0 else (wait_ms + 1) / 1000

    def reset(self, key: str) -> None:
        """Forget `key`, as though it had never been seen (e.g. after a successful login)."""
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        """Keys currently remembered: those used within about one window, plus any not yet swept."""
        return len(self._keys)

    def __repr__(self) -> str:
        shape = "" if self.burst is None else f", burst={self.burst}"
        return f"KeyedLimiter({self.name!r}: {self.limit} per {self.per_seconds}s{shape}, {len(self)} keys)"

    def _now_ms(self) -> int:
        # Milliseconds, pyrate's unit (and the log's). round(), not int(): a fake clock at 1.001 s must
        # read 1001 ms, not 1000.9999… truncated to 1000.
        return round(self._clock() * 1000)

    def _forget_idle(self, now: int) -> None:
        """Drop keys idle for longer than the window, oldest first; stops at the first live one."""
        keys = self._keys
        horizon = now - self._policy.idle_ms
        while keys:
            if next(iter(keys.values())).last_seen >= horizon:
                return
            keys.popitem(last=False)


# -- helpers ------------------------------------------------------------------------------------------


class _Entry:
    """One key's state and the millisecond of its last allow()."""

    __slots__ = ("last_seen", "state")

    def __init__(self, state: deque[int] | StateBucket) -> None:
        self.state = state
        self.last_seen = 0


class _SlidingWindow:
    """At most `limit` events in any `interval_ms`: the milliseconds of the events still in the
    window, oldest first.  An event at `t` counts while `now - interval_ms <= t` (pyrate's rule).
    Refused events are not logged, so a log never holds more than `limit` entries."""

    def __init__(self, limit: int, interval_ms: int) -> None:
        self.limit = limit
        self.interval_ms = interval_ms
        # A key unused for a whole window has no entry left inside it: forgetting it changes nothing.
        self.idle_ms = interval_ms

    def new_state(self) -> deque[int]:
        return deque()

    def put(self, state: deque[int] | StateBucket, now: int, weight: int) -> bool:
        log = self._trimmed(state, now)
        if len(log) + weight > self.limit:
            return False
        if weight == 1:
            log.append(now)
        else:
            log.extend(repeat(now, weight))
        return True

    def wait_ms(self, state: deque[int] | StateBucket, now: int) -> int:
        """Until the event that blocks one more (the `limit`-th newest) leaves the window; 0 if none."""
        log = self._trimmed(state, now)
        if len(log) < self.limit:
            return 0
        return log[len(log) - self.limit] + self.interval_ms - now + 1

    def _trimmed(self, state: deque[int] | StateBucket, now: int) -> deque[int]:
        assert isinstance(state, deque)
        horizon = now - self.interval_ms
        while state and state[0] < horizon:
            state.popleft()
        return state


class _Tokens:
    """A bucket of `burst` tokens refilling at `limit` per `interval_ms`: pyrate's `TokenBucket` (GCRA).

    Its state is one number per key, so it needs no trimming.
    """

    _ALGORITHM = TokenBucket()

    def __init__(self, limit: int, interval_ms: int, burst: int) -> None:
        self.rates = [Rate(limit, interval_ms, burst=burst)]
        # An empty bucket is full again after `burst` emission intervals; pyrate rounds an interval up to
        # the microsecond, and so does this, so a key forgotten after that long was already full.
        emission_us = math.ceil(interval_ms * 1000 / limit)
        self.idle_ms = math.ceil(burst * emission_us / 1000)

    def new_state(self) -> StateBucket:
        return StateBucket(self.rates, algorithm=self._ALGORITHM, store=InMemoryStateStore())

    def put(self, state: deque[int] | StateBucket, now: int, weight: int) -> bool:
        assert isinstance(state, StateBucket)
        return state.put(RateItem("", now, weight)) is True

    def wait_ms(self, state: deque[int] | StateBucket, now: int) -> int:
        """Replay pyrate's step for one more token against the stored state, committing nothing."""
        assert isinstance(state, StateBucket)
        stored = state.store.read(self._ALGORITHM, self.rates)
        assert isinstance(stored, tuple)
        _, decision = self._ALGORITHM.step(self.rates, stored, now, 1)
        return 0 if decision.allowed else (decision.retry_after_ms or 0)
