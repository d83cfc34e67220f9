"""The arithmetic of a run, kept pure so it can be tested on known data: percentiles, who should
have received what, what was answered, what reached the DJ, and whether the generator saturated.

Times in records are wall-clock seconds (`time.time()`); summaries are milliseconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.roles import Action, DancerRecord, DjRecord, SentEvent

SATURATED_PERCENT = 90.0
UNSUPPORTED = "is not available on this server yet"  # the server's NACK for a message it lacks
EXAMPLES = 5


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ascending data (no interpolation: every figure happened)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(seconds: Iterable[float]) -> dict[str, Any]:
    """n, p50, p95, p99, max in milliseconds (None when there is no sample)."""
    data = sorted(seconds)
    if not data:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "n": len(data),
        "p50": round(percentile(data, 0.50) * 1000, 2),
        "p95": round(percentile(data, 0.95) * 1000, 2),
        "p99": round(percentile(data, 0.99) * 1000, 2),
        "max": round(data[-1] * 1000, 2),
    }


# -- fan-out delivery --------------------------------------------------------------------------


@dataclass
class Delivery:
    """One kind of fan-out event: how many receipts were owed, made, missing; and their latencies."""

    kind: str
    events: int = 0  # events of this kind the server ACKed to the DJ
    expected: int = 0
    delivered: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, DJ send -> dancer receipt
    missing_examples: list[tuple[int, str]] = field(default_factory=list)  # (dancer, marker)

    @property
    def missing(self) -> int:
        return self.expected - self.delivered

    @property
    def ratio(self) -> float:
        return self.delivered / self.expected if self.expected else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "expected": self.expected,
            "delivered": self.delivered,
            "missing": self.missing,
            "ratio": None if math.isnan(self.ratio) else round(self.ratio, 6),
            "latency_ms": summary_ms(self.latencies),
            "missing_examples": [f"dancer {d}: {m}" for d, m in self.missing_examples],
        }


def account_delivery(events: Iterable[SentEvent], dancers: Iterable[DancerRecord]) -> dict[str, Delivery]:
    """Every dancer owes a receipt for every ACKed event of its session sent while it was subscribed.

    Owed: the DJ's send began after the dancer's SUBSCRIBE was ACKed (the server had it in the
    audience before the event) and before the dancer started to leave.  A dancer the server
    closed owes until it left on purpose, so a server-side drop counts as missing deliveries.
    """
    by_session: dict[str, list[SentEvent]] = {}
    result: dict[str, Delivery] = {}
    for event in events:
        if event.acked:
            by_session.setdefault(event.session, []).append(event)
            result.setdefault(event.kind, Delivery(event.kind)).events += 1
    for dancer in dancers:
        if dancer.t_subscribed is None:
            continue
        until = dancer.t_leave if dancer.t_leave is not None else math.inf
        for event in by_session.get(dancer.session, ()):
            if not dancer.t_subscribed < event.t_send < until:
                continue
            delivery = result[event.kind]
            delivery.expected += 1
            got = dancer.received.get(event.marker)
            if got is None:
                if len(delivery.missing_examples) < EXAMPLES:
                    delivery.missing_examples.append((dancer.index, event.marker))
            else:
                delivery.delivered += 1
                delivery.latencies.append(got - event.t_send)
    return result


# -- dancer actions ------------------------------------------------------------------------------


@dataclass
class ActionTally:
    kind: str
    sent: int = 0
    acked: int = 0
    unsupported: int = 0  # NACKed because the server does not implement the message yet
    unanswered: int = 0
    nacks: Counter[str] = field(default_factory=Counter)  # other NACK texts
    ack_latencies: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.sent - self.acked - self.unsupported

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "acked": self.acked,
            "unsupported": self.unsupported,
            "nacked": sum(self.nacks.values()),
            "unanswered": self.unanswered,
            "nack_errors": dict(self.nacks.most_common(EXAMPLES)),
            "ack_ms": summary_ms(self.ack_latencies),
        }


def account_actions(actions: Iterable[Action]) -> dict[str, ActionTally]:
    tallies: dict[str, ActionTally] = {}
    for kind, _session, _key, t_send, t_answer, error in actions:
        tally = tallies.setdefault(kind, ActionTally(kind))
        tally.sent += 1
        if t_answer is None:
            tally.unanswered += 1
        elif error is None:
            tally.acked += 1
            tally.ack_latencies.append(t_answer - t_send)
        elif UNSUPPORTED in error:
            tally.unsupported += 1
        else:
            tally.nacks[error] += 1
    return tallies


# -- what reached the DJ ---------------------------------------------------------------------


def paired_latencies(sent: Sequence[float], received: Sequence[float]) -> list[float]:
    """Latencies when arrivals cannot be told apart: the k-th earliest send with the k-th earliest
    receipt.  Exact when the server keeps order; a close estimate otherwise."""
    return [r - s for s, r in zip(sorted(sent), sorted(received), strict=False)]


def reached_dj(actions: Sequence[Action], djs: Sequence[DjRecord], db: Mapping[str, Any]) -> dict[str, Any]:
    """ACKed likes, votes and reactions against what the DJ was told (and what the database holds).

    Likes: LIKE_RECEIVED carries no client id, so per (session, track) sends and receipts are
    paired in time order.  Votes: POLL_UPDATE is coalesced; the k-th ACKed vote of a poll (in ACK
    order) reached the DJ at the first update whose totalVotes >= k, window included.
    """
    acked = [a for a in actions if a[4] is not None and a[5] is None]
    likes_sent: dict[tuple[str, str], list[float]] = {}
    for kind, session, key, t_send, _, _ in acked:
        if kind == "SEND_LIKE":
            likes_sent.setdefault((session, key), []).append(t_send)
    likes_got: dict[tuple[str, str], list[float]] = {}
    for dj in djs:
        for t, marker in dj.likes:
            likes_got.setdefault((dj.session, marker), []).append(t)
    like_latency: list[float] = []
    for key, sends in likes_sent.items():
        like_latency += paired_latencies(sends, likes_got.get(key, []))

    votes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for kind, session, key, t_send, t_answer, _ in acked:
        if kind == "VOTE_ON_POLL":
            votes.setdefault((session, key), []).append((t_answer or 0.0, t_send))
    vote_latency: list[float] = []
    votes_seen = 0
    for dj in djs:
        for poll_id, totals in dj.poll_totals.items():
            ordered = sorted(votes.get((dj.session, str(poll_id)), []))
            votes_seen += max((total for _, total in totals), default=0)
            updates = sorted(totals)
            for k, (_, t_send) in enumerate(ordered, start=1):
                seen = next((t for t, total in updates if total >= k), None)
                if seen is not None:
                    vote_latency.append(seen - t_send)

    def count(kind: str) -> int:
        return sum(1 for a in acked if a[0] == kind)

    return {
        "likes": {
            "acked": count("SEND_LIKE"),
            "at_dj": sum(len(dj.likes) for dj in djs),
            "in_database": db.get("likes"),
            "dj_latency_ms": summary_ms(like_latency),
        },
        "votes": {
            "acked": count("VOTE_ON_POLL"),
            "at_dj": votes_seen,
            "in_database": db.get("votes"),
            "dj_latency_ms": summary_ms(vote_latency),
        },
        "reactions": {"acked": count("SEND_REACTION"), "at_dj": sum(len(dj.reactions) for dj in djs)},
        "tempo": {
            "acked": count("SEND_TEMPO_REQUEST"),
            "feedback_at_dj": sum(dj.tempo_feedback for dj in djs),
        },
    }


# -- connections ---------------------------------------------------------------------------------


def account_connections(dancers: Sequence[DancerRecord]) -> dict[str, Any]:
    """Connect (TCP + upgrade) and connect+subscribe times, failures and close codes."""
    connect = [d.t_open - d.t_start for d in dancers if d.t_open is not None and d.t_start is not None]
    subscribed = [
        d.t_subscribed - d.t_start for d in dancers if d.t_subscribed is not None and d.t_start is not None
    ]
    errors = Counter(d.error for d in dancers if d.error)
    closes: Counter[str] = Counter()
    for d in dancers:
        if d.close_code is not None:
            closes[
                f"{d.close_code} {'server' if d.closed_by_server and d.t_leave is None else 'client'}"
            ] += 1
    return {
        "dancers": len(dancers),
        "subscribed": len(subscribed),
        "failed": len(dancers) - len(subscribed),
        "connect_ms": summary_ms(connect),
        "connect_subscribe_ms": summary_ms(subscribed),
        "errors": dict(errors.most_common(EXAMPLES)),
        "close_codes": dict(sorted(closes.items())),
        "dropped_by_server": sum(1 for d in dancers if d.closed_by_server and d.t_leave is None),
    }


# -- the generator's own health -----------------------------------------------------------------


def saturation(cpu: Mapping[str, Sequence[float]], threshold: float = SATURATED_PERCENT) -> dict[str, Any]:
    """Per worker: peak and mean CPU % of one core; saturated when any one-second sample exceeds
    `threshold` — then the generator, not the server, may be what the latencies measure."""
    workers = {}
    hot = []
    for name, samples in cpu.items():
        peak = max(samples, default=0.0)
        workers[name] = {
            "max": round(peak, 1),
            "mean": round(sum(samples) / len(samples), 1) if samples else 0.0,
            "seconds_over": sum(1 for s in samples if s > threshold),
        }
        if peak > threshold:
            hot.append(name)
    return {"threshold": threshold, "saturated": bool(hot), "hot_workers": hot, "workers": workers}


def success_rate(
    connections: Mapping[str, Any], deliveries: Mapping[str, Delivery], actions: Mapping[str, ActionTally]
) -> dict[str, Any]:
    """What dancers tried that worked: subscribing, each owed receipt, each answered action.

    Actions the server refuses as not implemented are left out (and reported) rather than
    counted as failures: the suite measures capacity, the feature list is tracked elsewhere.
    """
    attempts = connections["dancers"] + sum(d.expected for d in deliveries.values())
    good = connections["subscribed"] + sum(d.delivered for d in deliveries.values())
    for tally in actions.values():
        attempts += tally.sent - tally.unsupported
        good += tally.acked
    return {"attempts": attempts, "succeeded": good, "ratio": good / attempts if attempts else math.nan}
