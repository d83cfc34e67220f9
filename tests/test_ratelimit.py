"""KeyedLimiter: per-key limits that count exactly, forget idle keys and never block the trio loop.

Time is a fake clock injected into the limiter, so window edges are tested to the millisecond without
sleeping; only the trio test uses the real monotonic clock.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from pyrate_limiter import InMemoryBucket, Rate, RateItem

from pika.security.ratelimit import KeyedLimiter


class FakeClock:
    """Seconds, moved only by the test."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def allowed(limiter: KeyedLimiter, key: str, times: int) -> int:
    return sum(limiter.allow(key) for _ in range(times))


# -- sliding window -------------------------------------------------------------------------------------


def test_a_key_gets_exactly_limit_events_then_is_refused(clock: FakeClock) -> None:
    limiter = KeyedLimiter(10, 60.0, clock=clock)
    assert [limiter.allow("client-a") for _ in range(12)] == [True] * 10 + [False, False]


def test_a_key_over_its_limit_does_not_affect_another_key(clock: FakeClock) -> None:
    limiter = KeyedLimiter(3, 60.0, clock=clock)
    assert allowed(limiter, "noisy", 50) == 3
    assert allowed(limiter, "quiet", 3) == 3
    assert not limiter.allow("quiet")


def test_events_are_allowed_again_once_the_window_has_passed(clock: FakeClock) -> None:
    limiter = KeyedLimiter(2, 0.2, clock=clock)
    assert allowed(limiter, "k", 3) == 2
    clock.advance(0.1)
    assert not limiter.allow("k")
    clock.advance(0.101)  # 201 ms after the first two: both have left the window
    assert allowed(limiter, "k", 3) == 2


def test_the_window_slides_rather_than_resetting(clock: FakeClock) -> None:
    limiter = KeyedLimiter(2, 1.0, clock=clock)
    assert limiter.allow("k")
    clock.advance(0.6)
    assert limiter.allow("k")
    clock.advance(0.401)  # the first event has left the window, the second has not
    assert allowed(limiter, "k", 2) == 1


def test_a_weight_counts_as_that_many_events(clock: FakeClock) -> None:
    limiter = KeyedLimiter(5, 60.0, clock=clock)
    assert limiter.allow("bulk", weight=3)
    assert not limiter.allow("bulk", weight=3)
    assert limiter.allow("bulk", weight=2)
    assert not limiter.allow("other", weight=6)


@given(
    limit=st.integers(1, 5),
    window_ms=st.integers(1, 500),
    events=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 300)), max_size=60),
)
def test_the_sliding_window_matches_a_reference_count(
    limit: int, window_ms: int, events: list[tuple[str, int]]
) -> None:
    clock = FakeClock(0.0)
    limiter = KeyedLimiter(limit, window_ms / 1000, clock=clock)
    accepted: dict[str, list[int]] = {}
    now_ms = 0
    for key, step_ms in events:
        now_ms += step_ms
        clock.now = now_ms / 1000
        in_window = [t for t in accepted.get(key, []) if t >= now_ms - window_ms]
        expected = len(in_window) < limit
        assert limiter.allow(key) is expected
        if expected:
            accepted.setdefault(key, []).append(now_ms)


@given(
    limit=st.integers(1, 6),
    window_ms=st.integers(1, 500),
    events=st.lists(
        st.tuples(st.sampled_from("ab"), st.integers(0, 200), st.integers(1, 4), st.booleans()), max_size=60
    ),
)
def test_the_sliding_window_answers_as_pyrates_sliding_window_log(
    limit: int, window_ms: int, events: list[tuple[str, int, int, bool]]
) -> None:
    """pyrate-limiter's InMemoryBucket (SlidingWindowLog) as the reference model: the same
    admissions, weights included, and the same wait for one more event."""
    clock = FakeClock(0.0)
    limiter = KeyedLimiter(limit, window_ms / 1000, clock=clock)
    reference = {key: InMemoryBucket([Rate(limit, window_ms)]) for key in "ab"}
    now_ms = 0
    for key, step_ms, weight, ask_wait in events:
        now_ms += step_ms
        clock.now = now_ms / 1000
        if ask_wait:
            bucket = reference[key]
            if bucket.put(RateItem(key, now_ms, 1)) is True:  # probe, then take it back
                bucket.items.pop()
                expected_wait = 0.0
            else:
                expected_wait = ((bucket.waiting(RateItem(key, now_ms, 1)) or 0) + 1) / 1000
            assert limiter.retry_after(key) == expected_wait
        assert limiter.allow(key, weight) is (reference[key].put(RateItem(key, now_ms, weight)) is True)


# -- token bucket ---------------------------------------------------------------------------------------


def test_a_burst_is_allowed_at_once_then_about_one_per_interval(clock: FakeClock) -> None:
    limiter = KeyedLimiter(1, 1.0, burst=10, clock=clock)
    assert allowed(limiter, "session", 15) == 10
    clock.advance(1.0)
    assert allowed(limiter, "session", 3) == 1
    clock.advance(0.5)
    assert not limiter.allow("session")
    total = 0
    for _ in range(100):  # ten seconds of someone pressing ten times a second
        clock.advance(0.1)
        total += allowed(limiter, "session", 1)
    assert 9 <= total <= 11


def test_a_token_bucket_refills_to_the_full_burst_and_no_further(clock: FakeClock) -> None:
    limiter = KeyedLimiter(1, 1.0, burst=10, clock=clock)
    assert allowed(limiter, "session", 10) == 10
    clock.advance(60.0)
    assert allowed(limiter, "session", 15) == 10
    assert allowed(limiter, "another session", 15) == 10


# -- retry_after, would_allow, reset --------------------------------------------------------------------


@pytest.mark.parametrize("burst", [None, 3])
def test_retry_after_is_zero_when_allowed_and_exactly_enough_when_refused(
    clock: FakeClock, burst: int | None
) -> None:
    limiter = KeyedLimiter(3, 0.3, burst=burst, clock=clock)
    assert limiter.retry_after("never seen") == 0.0
    assert allowed(limiter, "k", 3) == 3
    assert not limiter.allow("k")
    wait = limiter.retry_after("k")
    assert 0.05 < wait <= 0.31
    clock.advance(wait - 0.002)
    assert not limiter.would_allow("k")
    clock.advance(0.002)
    assert limiter.retry_after("k") == 0.0
    assert limiter.allow("k")


def test_retry_after_for_the_login_window_is_the_rest_of_fifteen_minutes(clock: FakeClock) -> None:
    failures = KeyedLimiter(5, 15 * 60, name="login failures", clock=clock)
    for _ in range(5):
        failures.allow("dj@example.com")
        clock.advance(60.0)
    assert failures.retry_after("dj@example.com") == pytest.approx(15 * 60 - 5 * 60, abs=0.01)


@pytest.mark.parametrize("burst", [None, 2])
def test_would_allow_does_not_consume(clock: FakeClock, burst: int | None) -> None:
    limiter = KeyedLimiter(2, 60.0, burst=burst, clock=clock)
    assert all(limiter.would_allow("email") for _ in range(100))
    assert allowed(limiter, "email", 3) == 2
    assert not limiter.would_allow("email")
    assert limiter.would_allow("other email")
    assert len(limiter) == 1  # peeking at a key does not start remembering it


def test_reset_forgets_a_key(clock: FakeClock) -> None:
    limiter = KeyedLimiter(1, 60.0, clock=clock)
    assert limiter.allow("email")
    assert not limiter.allow("email")
    limiter.reset("email")
    limiter.reset("never seen")
    assert limiter.allow("email")


# -- memory ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("burst", "window"), [(None, 0.2), (10, 10.0)])
def test_idle_keys_are_forgotten_after_their_window(
    clock: FakeClock, burst: int | None, window: float
) -> None:
    limiter = KeyedLimiter(1, 0.2 if burst is None else 1.0, burst=burst, clock=clock)
    for n in range(1000):
        limiter.allow(f"client-{n}")
    assert len(limiter) == 1000
    clock.advance(window - 0.01)
    limiter.allow("late")
    assert len(limiter) == 1001  # not idle for a whole window yet: still counted
    clock.advance(0.02)
    limiter.allow("later")
    assert len(limiter) == 2  # "late" and "later"


def test_forgetting_idle_keys_never_forgets_a_limit_still_in_force(clock: FakeClock) -> None:
    limiter = KeyedLimiter(2, 1.0, clock=clock)
    assert allowed(limiter, "k", 2) == 2
    clock.advance(0.999)
    limiter.allow("someone else")
    assert not limiter.allow("k")


def test_a_busy_key_keeps_a_bounded_log(clock: FakeClock) -> None:
    limiter = KeyedLimiter(10, 1.0, clock=clock)
    for _ in range(10_000):
        clock.advance(0.01)
        limiter.allow("busy")
    assert len(limiter._keys["busy"].state) <= 10


# -- never blocking -------------------------------------------------------------------------------------


def test_allow_never_sleeps_even_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError("KeyedLimiter slept")

    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", forbidden)
    monkeypatch.setattr(asyncio, "sleep", forbidden)
    for name, module in list(sys.modules.items()):
        if name.startswith("pyrate_limiter") and getattr(module, "sleep", None) is real_sleep:
            monkeypatch.setattr(module, "sleep", forbidden)

    for limiter in (KeyedLimiter(2, 60.0), KeyedLimiter(1, 60.0, burst=2)):
        assert [limiter.allow("k") for _ in range(5)] == [True, True, False, False, False]
        assert not limiter.allow("k", weight=100)
        assert limiter.retry_after("k") > 0


async def test_refusals_inside_a_trio_task_never_stall_the_loop() -> None:
    limiter = KeyedLimiter(1, 60.0)
    assert limiter.allow("dancer")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            started = time.perf_counter()
            refused = 0
            for n in range(10_000):
                refused += not limiter.allow("dancer")
                if n % 100 == 0:
                    await trio.sleep(0)
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()

    assert refused == 10_000
    assert ticks >= 50
    assert elapsed < 2.0


# -- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((0, 1.0), {}, "limit"),
        ((1.5, 1.0), {}, "limit"),
        ((1, 0.0), {}, "per_seconds"),
        ((1, float("nan")), {}, "per_seconds"),
        ((1, 1.0), {"burst": 0}, "burst"),
    ],
)
def test_a_nonsense_limit_is_refused_at_construction(args: tuple, kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"likes: {field}"):
        KeyedLimiter(*args, name="likes", **kwargs)
