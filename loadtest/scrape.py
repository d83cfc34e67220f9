"""The server's own /metrics around a capacity step: where the step's time went inside it.

Deltas of a few Prometheus series between two scrapes: group-commit batches, their size and
time to commit, statement latency, event-loop lag, garbage-collection pauses, frames held by the
loop guard, room batches on the bus between processes; with several workers, each one's port
summed.
Optional: None when the target serves no /metrics (a port that only speaks WebSocket).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

SERIES = (
    "pika_group_commit_actions",
    "pika_group_commit_seconds",
    "pika_db_query_seconds",
    "pika_loop_lag_seconds",
    "pika_gc_pause_seconds",
)
HELD = "pika_dancer_frames_held_total"
CONNECTIONS = "pika_ws_connections"  # a gauge: read as it is, not as a delta
BUS = "pika_bus_batches_total"  # by direction: kept apart as `<name>:sent`, `<name>:received`
TIMEOUT = 2.0


def parse(text: str) -> dict[str, float]:
    """`<series>_sum` and `<series>_count` of SERIES, HELD and CONNECTIONS, summed over their
    labels; BUS per direction."""
    wanted = {f"{s}_{part}" for s in SERIES for part in ("sum", "count")} | {HELD, CONNECTIONS}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name == BUS:
            direction = name_labels.partition('direction="')[2].partition('"')[0]
            name = f"{BUS}:{direction}"
        elif name not in wanted:
            continue
        out[name] = out.get(name, 0.0) + float(value)
    return out


def scrape(host: str, port: int) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=TIMEOUT) as response:
            return parse(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


def scrape_all(host: str, ports: Sequence[int]) -> list[dict[str, float] | None]:
    """Each worker's scrape, in worker order (None where one did not answer)."""
    return [scrape(host, port) for port in ports]


def total(scrapes: Sequence[Mapping[str, float] | None]) -> dict[str, float] | None:
    """The sum over workers, or None unless every worker answered (a partial sum would pass
    for the whole server)."""
    if not scrapes or any(s is None for s in scrapes):
        return None
    out: dict[str, float] = {}
    for s in scrapes:
        for name, value in (s or {}).items():
            out[name] = out.get(name, 0.0) + value
    return out


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
        "commit_ms_mean": mean("pika_group_commit_seconds", 1000),
        "statement_ms_mean": mean("pika_db_query_seconds", 1000),
        "loop_lag_ms_mean": mean("pika_loop_lag_seconds", 1000),
        "gc_collections": int(d("pika_gc_pause_seconds_count")),
        "gc_pause_s": round(d("pika_gc_pause_seconds_sum"), 3),
        "frames_held": int(d(HELD)),
        "bus_batches_sent": int(d(f"{BUS}:sent")),
        "bus_batches_received": int(d(f"{BUS}:received")),
        "connections": int(after.get(CONNECTIONS, 0.0)),
    }
