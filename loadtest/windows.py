"""Before, during and after a disturbance: fan-out split by when each track was sent.

`flood` and `logins` disturb the server for a window (one client flooding likes, twenty
clients logging in) while a DJ keeps broadcasting.  Each track is put in the window in which its
DJ sent it, and every window's NOW_PLAYING fan-out is accounted as usual (stats.py), so the
figures compare like with like: the same dancers, the same room, the same DJ.  Pure, so that it
can be tested on known data; times are wall-clock seconds, summaries milliseconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from loadtest import stats
from loadtest.roles import DancerRecord, SentEvent

WINDOWS = ("before", "during", "after")
RATE_LIMITED = "Rate limit exceeded"  # the server's NACK for a client over its limit

#: one answered (or not) request of a side client: (t_send, t_answer or None, error or None)
Answer = tuple[float, float | None, str | None]


def window_of(t: float, start: float, end: float) -> str:
    """'before' `start`, 'during' [start, end], 'after' `end`."""
    if t < start:
        return "before"
    return "during" if t <= end else "after"


def split_events(events: Iterable[SentEvent], start: float, end: float) -> dict[str, list[SentEvent]]:
    """The events of each window, by the DJ's send time; every window present, maybe empty."""
    out: dict[str, list[SentEvent]] = {w: [] for w in WINDOWS}
    for event in events:
        out[window_of(event.t_send, start, end)].append(event)
    return out


def fanout_by_window(
    events: Iterable[SentEvent],
    dancers: Sequence[DancerRecord],
    start: float,
    end: float,
    kind: str = "NOW_PLAYING",
) -> dict[str, dict[str, Any]]:
    """Per window (and 'all'): the fan-out of `kind` to `dancers` as Delivery.to_json()."""
    chosen = [e for e in events if e.kind == kind]
    parts: dict[str, list[SentEvent]] = {**split_events(chosen, start, end), "all": chosen}
    out = {}
    for name, part in parts.items():
        delivery = stats.account_delivery(part, dancers).get(kind, stats.Delivery(kind))
        out[name] = delivery.to_json()
        out[name]["sent"] = len(part)
        out[name]["window_s"] = _span(part)
    return out


def per_event(
    events: Iterable[SentEvent], dancers: Sequence[DancerRecord], kind: str = "NOW_PLAYING"
) -> list[dict[str, Any]]:
    """One row per ACKed event of `kind`, in send order: marker, send time, receipts, p50/p99/max (ms)."""
    rows = []
    for event in sorted((e for e in events if e.kind == kind and e.acked), key=lambda e: e.t_send):
        delivery = stats.account_delivery([event], dancers).get(kind, stats.Delivery(kind))
        lat = stats.summary_ms(delivery.latencies)
        rows.append(
            {
                "marker": event.marker,
                "t_send": event.t_send,
                "delivered": delivery.delivered,
                "expected": delivery.expected,
                **{k: lat[k] for k in ("p50", "p99", "max")},
            }
        )
    return rows


def _span(events: Sequence[SentEvent]) -> list[float] | None:
    if not events:
        return None
    times = [e.t_send for e in events]
    return [min(times), max(times)]


def p99_difference(windows: dict[str, dict[str, Any]], a: str = "during", b: str = "before") -> float | None:
    """p99 of window `a` minus that of window `b` (ms), None when either has no sample."""
    pa = windows.get(a, {}).get("latency_ms", {}).get("p99")
    pb = windows.get(b, {}).get("latency_ms", {}).get("p99")
    if pa is None or pb is None:
        return None
    return round(pa - pb, 2)


def tally_answers(answers: Iterable[Answer]) -> dict[str, Any]:
    """Requests of one side client: sent, ACKed, NACKed (rate-limited apart), unanswered, latency."""
    sent = acked = unanswered = 0
    nacks: Counter[str] = Counter()
    latencies: list[float] = []
    for t_send, t_answer, error in answers:
        sent += 1
        if t_answer is None:
            unanswered += 1
            continue
        latencies.append(t_answer - t_send)
        if error is None:
            acked += 1
        else:
            nacks[error] += 1
    return {
        "sent": sent,
        "acked": acked,
        "nacked": sum(nacks.values()),
        "rate_limited": nacks[RATE_LIMITED],
        "other_nacks": sum(n for e, n in nacks.items() if e != RATE_LIMITED),
        "unanswered": unanswered,
        "nack_errors": dict(nacks.most_common()),
        "answer_ms": stats.summary_ms(latencies),
    }


def send_rate(times: Sequence[float]) -> float | None:
    """Messages per second between the first and the last of `times` (None for fewer than two)."""
    if len(times) < 2:
        return None
    first, last = min(times), max(times)
    return (len(times) - 1) / (last - first) if last > first else math.inf


def tally_logins(records: Iterable[tuple[float, float, int | None, str | None]]) -> dict[str, Any]:
    """Login attempts (t_start, t_end, HTTP status or None, error): outcomes, latency, rate.

    The rate is successful logins (200) per second over the span from the first start to the
    last end; the latency is that of every answered attempt, the successful ones apart too.
    """
    rows = list(records)
    statuses: Counter[str] = Counter()
    ok_latency: list[float] = []
    answered: list[float] = []
    for t_start, t_end, status, error in rows:
        statuses[str(status) if status is not None else f"error: {error}"] += 1
        if status is not None:
            answered.append(t_end - t_start)
            if status == 200:
                ok_latency.append(t_end - t_start)
    span = (max(r[1] for r in rows) - min(r[0] for r in rows)) if rows else 0.0
    ok = statuses.get("200", 0)
    return {
        "attempts": len(rows),
        "ok": ok,
        "statuses": dict(statuses.most_common()),
        "span_s": round(span, 3),
        "per_second": round(ok / span, 2) if span > 0 else None,
        "latency_ms": stats.summary_ms(ok_latency),
        "answered_latency_ms": stats.summary_ms(answered),
    }
