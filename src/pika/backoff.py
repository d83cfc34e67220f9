"""How a client waits before it connects again: never sooner than the server's `Retry-After`,
else exponential backoff, and always with jitter so a venue's phones do not return in step.

Pure functions (no I/O, no clock of their own) for every Python client: `python -m pika.client`,
the DJ agent, the tests.  The dancer page (static/common.js) follows the same rule in JavaScript.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from email.utils import parsedate_to_datetime

__all__ = ["BASE_SECONDS", "CAP_SECONDS", "JITTER", "parse_retry_after", "reconnect_delay"]

BASE_SECONDS = 0.5  # the first wait after a failure
CAP_SECONDS = 8.0  # backoff grows no further (a server's Retry-After may ask for more)
JITTER = 0.5  # a wait is stretched by up to this share of itself, at random


def parse_retry_after(value: str | bytes | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds, or an HTTP-date (RFC 9110
    §10.2.3) measured from `now` (Unix seconds; needed for a date).  None when absent or unreadable."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isdigit():
        return float(text)
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def reconnect_delay(
    failures: int, retry_after: float | None = None, *, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after `failures` failed attempts in a row (1 for the first failure).

    The floor is `BASE_SECONDS * 2**(failures - 1)` capped at `CAP_SECONDS`, raised to the server's
    `retry_after` when it gave one; the wait is the floor plus up to `JITTER` of it, at random.
    """
    floor = min(CAP_SECONDS, BASE_SECONDS * 2 ** min(max(0, failures - 1), 32))
    if retry_after is not None:
        floor = max(floor, retry_after)
    return floor * (1 + JITTER * rand())
