"""The reconnect rule every Python client shares: Retry-After first, else backoff, always jitter."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pika.backoff import BASE_SECONDS, CAP_SECONDS, JITTER, parse_retry_after, reconnect_delay

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(b" 12 ") == 12.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 23:59:00 GMT", NOW) == 0.0  # already past
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT") is None  # a date needs `now`
    assert [parse_retry_after(v, NOW) for v in (None, "", "soon", "-3", "1.5")] == [None] * 5


def test_backoff_doubles_from_half_a_second_up_to_its_cap() -> None:
    floors = [reconnect_delay(n, rand=lambda: 0.0) for n in range(1, 8)]
    assert floors == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert reconnect_delay(10**6, rand=lambda: 0.0) == CAP_SECONDS  # no overflow after a long night


@given(
    failures=st.integers(0, 1000),
    retry_after=st.none() | st.floats(0, 3600),
    rand=st.floats(0, 1, exclude_max=True),
)
def test_a_wait_is_never_shorter_than_retry_after_and_jitter_stays_within_half(
    failures: int, retry_after: float | None, rand: float
) -> None:
    delay = reconnect_delay(failures, retry_after, rand=lambda: rand)
    floor = max(min(CAP_SECONDS, BASE_SECONDS * 2 ** max(0, min(failures - 1, 32))), retry_after or 0.0)

    assert floor <= delay <= floor * (1 + JITTER)
