"""The interpreter, tuned for a server that holds thousands of connections: what lives for the
process is frozen out of the garbage collector's scans, young collections wait for more objects
than every connection's frame in flight holds (a young collection costs what is alive in it, not
how many were made), full collections come 100 times rarer (each pause is
timed into `pika_gc_pause_seconds`), and the GIL's switch interval is 0.5 ms so database threads
get it back sooner.  Process-wide, so only `python -m pika serve` applies it;
a program that embeds `serve()`, and the tests, keep their own settings.
"""

from __future__ import annotations

import gc
import sys
import time

from pika import metrics

THRESHOLDS = (100_000, 10, 1000)  # CPython's (700, 10, 10) but for the young and full collections
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
