"""The server's own /metrics around a capacity step: where the step's time went inside it.

Deltas of a few Prometheus series between two scrapes: group-commit batches and their size,
statement latency, event-loop lag, garbage-collection pauses, frames held by the loop guard.
Optional: None when the target serves no /metrics (a port that only speaks WebSocket).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from typing import Any

SERIES = (
    "pika_group_commit_actions",
    "pika_db_query_seconds",
    "pika_loop_lag_seconds",
    "pika_gc_pause_seconds",
)
HELD = "pika_dancer_frames_held_total"
TIMEOUT = 2.0


def parse(text: str) -> dict[str, float]:
    """`<series>_sum` and `<series>_count` of SERIES and HELD, summed over their labels."""
    wanted = {f"{s}_{part}" for s in SERIES for part in ("sum", "count")} | {HELD}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name in wanted:
            out[name] = out.get(name, 0.0) + float(value)
    return out


def scrape(host: str, port: int) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=TIMEOUT) as response:
            return parse(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


def delta(before: Mapping[str, float] | None, after: Mapping[str, float] | None) -> dict[str, Any] | None:
    """What happened inside the server between two scrapes (None when either is missing)."""
    if before is None or after is None:
        return None

    def d(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    def mean(series: str, scale: float = 1.0) -> float | None:
        n = d(f"{series}_count")
        return round(scale * d(f"{series}_sum") / n, 3) if n > 0 else None

    return {
        "commit_batches": int(d("pika_group_commit_actions_count")),
        "actions_per_batch": mean("pika_group_commit_actions"),
        "statement_ms_mean": mean("pika_db_query_seconds", 1000),
        "loop_lag_ms_mean": mean("pika_loop_lag_seconds", 1000),
        "gc_collections": int(d("pika_gc_pause_seconds_count")),
        "gc_pause_s": round(d("pika_gc_pause_seconds_sum"), 3),
        "frames_held": int(d(HELD)),
    }
