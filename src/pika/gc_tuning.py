"""Python's cyclic garbage collector, tuned for a server that holds thousands of connections.

Each open WebSocket keeps a few hundred tracked objects alive (hypercorn's protocol objects,
trio tasks and their coroutine frames, our Connection).  With CPython's default thresholds
(700, 10, 10), a full collection runs each time the long-lived population grows by a quarter,
and it scans all of them while every room waits.  Measured on a 10,000-dancer ramp
(`python -m loadtest scale --max 10000 --quiet --spawn`, `pika_gc_pause_seconds` in /metrics):
13 full collections, 6 of them 0.5-2.5 s, 9.9 s in all, each one a NOW_PLAYING that
reached nobody until it ended.

So: what exists once the server is up (modules, the app, the pool) is frozen out of every
scan (`gc.freeze()`), and full collections wait for 1,000 collections of the middle
generation instead of 10; the young generations keep CPython's thresholds, whose pauses are
short (1-15 ms measured).  Tried and dropped: a young threshold of 50,000 (instead of 700)
did the same work in 100 ms pauses.  Almost everything a broadcast allocates is freed by
reference counting anyway; the cycles left to the full collection (tasks, tracebacks of
closed sockets) wait a little longer.
"""

from __future__ import annotations

import gc
import time

from pika import metrics

THRESHOLDS = (700, 10, 1000)  # CPython's (700, 10, 10) but for the full collection

_started = 0.0


def tune() -> None:
    """Raise the thresholds and time every collection into `pika_gc_pause_seconds`."""
    gc.set_threshold(*THRESHOLDS)
    if _time not in gc.callbacks:
        gc.callbacks.append(_time)


def freeze_startup() -> None:
    """Once the server is up: collect, then keep what survived out of every later scan."""
    gc.collect()
    gc.freeze()


def _time(phase: str, info: dict[str, int]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        metrics.GC_PAUSE_SECONDS.labels(str(info["generation"])).observe(time.perf_counter() - _started)
