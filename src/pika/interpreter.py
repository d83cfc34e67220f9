"""The interpreter, tuned for a server that holds thousands of connections: the cyclic garbage
collector and the GIL's switch interval.

The garbage collector.

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

The GIL.  The trio loop is CPU-bound under load; database work runs in worker threads that
hold the GIL only briefly, but after each wait on PostgreSQL a thread must get it back, and
CPython makes it wait for the running thread to give it up: up to the switch interval, 5 ms
by default.  A DJ's track change is about ten such waits.  Measured at 5,000 busy dancers
(`python -m loadtest scale --max 5000 --spawn`, the track transaction timed in the handler,
a diagnostic not kept): 5-311 ms with 5 ms, 5-232 ms with 0.5 ms (median 103 -> 75 ms), and
NOW_PLAYING p99 849 -> 736 ms.  A shorter interval costs switches only while threads compete.
"""

from __future__ import annotations

import gc
import sys
import time

from pika import metrics

THRESHOLDS = (700, 10, 1000)  # CPython's (700, 10, 10) but for the full collection
SWITCH_INTERVAL = 0.0005  # s; CPython's default is 0.005

_started = 0.0


def tune() -> None:
    """Raise the thresholds, time every collection into `pika_gc_pause_seconds`, and shorten the
    GIL's switch interval."""
    sys.setswitchinterval(SWITCH_INTERVAL)
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
