"""The arithmetic of `capacity`, pure: the stepped rates, each step's figures and verdict, the result.

A step passes when the generator offered its rate and the ACK p99 (frames never answered count
as slower than any) is at most 200 ms, with almost nothing refused (NACKed) and nobody dropped.
A slow step that the generator's late sends or busy CPU could account for is the generator's
failure, never read as the server's limit.  Times in replies are seconds; figures milliseconds."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from loadtest import stats
from loadtest.pacer import WEIGHTS

P99_LIMIT_MS = 200.0  # a step passes with ACK p99 at or below this
LATE_LIMIT_MS = 50.0  # sends later than this (p99) may account for a slow step
MIN_HELD = 0.95  # the generator offered the rate: it sent at least this share of it
GENERATOR_CPU_LIMIT = stats.SATURATED_PERCENT  # a generator process averaging more may account for it
REFUSED_LIMIT = 0.01  # more NACKs than this share of the frames: limits, not capacity, answered
LIKE_SHARE = WEIGHTS[0] / sum(WEIGHTS)
MAX_TRACKS = 500  # pre-played tracks at most (a few seconds of the DJ's commits)

PASS, GENERATOR, DROPPED, REFUSED, LATENCY = "pass", "generator", "dropped", "refused", "latency"


def rates(first: int, step: int, max_rate: int) -> list[int]:
    """first, first + step, … while below `max_rate`, then `max_rate` itself."""
    out = list(range(first, max_rate, step)) if step > 0 else []
    return [*out, max_rate]


def tracks_needed(plan: Sequence[int], seconds: float, dancers: int) -> int:
    """Tracks to play before the steps so that no dancer runs out of tracks to like: every
    dancer sends an even share of every step's frames, a quarter of them likes (with margin).
    At most MAX_TRACKS: a dancer who liked them all sends tempo votes instead (pacer.py)."""
    frames = sum(plan) * seconds / max(1, dancers)
    return min(MAX_TRACKS, math.ceil(frames * LIKE_SHARE * 1.5) + 5)


def split(rate: float, dancers: Sequence[int]) -> list[float]:
    """A step's rate shared among workers in proportion to their subscribed dancers."""
    total = sum(dancers)
    return [rate * n / total if total else 0.0 for n in dancers]


def ack_p99_ms(latencies: Sequence[float], unanswered: int) -> float:
    """The 99th percentile of ACK latency (ms) with every unanswered frame counted as slower than
    any answered one: infinite once they are more than 1 % of the frames."""
    n = len(latencies) + unanswered
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(0.99 * n))
    if rank > len(latencies):
        return math.inf
    return sorted(latencies)[rank - 1] * 1000


def figures(
    rate: float,
    seconds: float,
    replies: Sequence[Mapping[str, Any]],
    server_cpu_s: float | None,
    wall_s: float,
    generator_cpu: Mapping[str, Sequence[float]],
) -> dict[str, Any]:
    """One step from the workers' replies (pacer.collect), the server's CPU seconds over `wall_s`
    seconds of the step, and each generator process's one-second CPU samples (% of a core)."""
    latencies = [x for r in replies for x in r["latencies"]]
    sent = sum(r["sent"] for r in replies)
    unanswered = sum(r["unanswered"] for r in replies)
    nacks: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    acked: Counter[str] = Counter()
    for r in replies:
        nacks.update(r["nacks"])
        kinds.update(r["kinds"])
        acked.update(r["acked"])
    firsts = [r["first"] for r in replies if r["sent"]]
    lasts = [r["last"] for r in replies if r["sent"]]
    span = max(lasts) - min(firsts) if firsts else 0.0
    held = (sent - 1) / span if sent > 1 and span > 0 else None
    late = [r["lateness_ms"]["p99"] for r in replies if r["lateness_ms"]["p99"] is not None]
    p99 = ack_p99_ms(latencies, unanswered)
    cpu = {name: stats_of(samples) for name, samples in generator_cpu.items()}
    return {
        "target_per_s": rate,
        "seconds": seconds,
        "sent": sent,
        "planned": sum(r["planned"] for r in replies),
        "sent_per_s": None if held is None else round(held, 1),
        "kinds": dict(kinds),
        "acked": sum(acked.values()),
        "acked_by_kind": dict(acked),
        "nacked": sum(nacks.values()),
        "nack_errors": dict(nacks.most_common(stats.EXAMPLES)),
        "unanswered": unanswered,
        "ack_ms": {
            **stats.summary_ms(latencies),
            "p99": None if math.isinf(p99) or math.isnan(p99) else round(p99, 2),
            "p99_unanswered": math.isinf(p99),  # unanswered frames reach the 99th percentile
        },
        "dancers": sum(r["dancers"] for r in replies),
        "dancers_gone": sum(r["dancers_gone"] for r in replies),
        "server_cpu_percent": None if server_cpu_s is None else round(100 * server_cpu_s / wall_s, 1),
        "cpu_us_per_frame": None if server_cpu_s is None or not sent else round(1e6 * server_cpu_s / sent, 1),
        "send_late_p99_ms": max(late, default=None),
        "generator_gc_pause_s": max((r["gc_pause_s"] for r in replies), default=0.0),
        "generator_cpu_percent": cpu,
    }


def stats_of(samples: Sequence[float]) -> dict[str, float | None]:
    if not samples:
        return {"mean": None, "max": None}
    return {"mean": round(sum(samples) / len(samples), 1), "max": round(max(samples), 1)}


def judge(step: Mapping[str, Any]) -> dict[str, str]:
    """The step's verdict and why.  Refusals come first (the server's limits answered, whatever
    else happened).  A rate the generator did not offer is its failure.  A slow step is the
    server's only if the generator cannot account for it: it was not CPU-bound, and its sends
    were on time or the ACK p99 is over the limit even less their lateness (a burst of sends
    L ms late adds at most about L ms to any answer of a server that keeps up)."""
    target = step["target_per_s"]
    if step["sent"] and step["nacked"] > REFUSED_LIMIT * step["sent"]:
        top = next(iter(step["nack_errors"]), "")
        return _v(REFUSED, f"{step['nacked']:,} of {step['sent']:,} frames NACKed ({top})")
    held = step["sent_per_s"]
    if step["sent"] < step["planned"] or (held is not None and held < MIN_HELD * target):
        return _v(GENERATOR, f"the generator sent {_rate(held)}/s of {target:,.0f}/s")
    busy = [
        f"generator {name} averaged {cpu['mean']:.0f} % CPU"
        for name, cpu in step["generator_cpu_percent"].items()
        if cpu["mean"] is not None and cpu["mean"] > GENERATOR_CPU_LIMIT
    ]
    if step["dancers_gone"]:  # one too slow to read is dropped as a slow consumer
        gone = f"{step['dancers_gone']:,} dancers lost their connection"
        return _v(GENERATOR, f"{gone}, but {busy[0]}") if busy else _v(DROPPED, gone)
    ack = step["ack_ms"]
    p99 = math.inf if ack["p99_unanswered"] else ack["p99"]
    if p99 is not None and p99 <= P99_LIMIT_MS:
        return _v(PASS, f"ACK p99 {p99:,.1f} ms <= {P99_LIMIT_MS:g} ms")
    if p99 is None:
        slow = "no frame was answered"
    elif math.isinf(p99):
        slow = f"{step['unanswered']:,} frames unanswered: ACK p99 beyond the drain"
    else:
        slow = f"ACK p99 {p99:,.1f} ms > {P99_LIMIT_MS:g} ms"
    if busy:
        return _v(GENERATOR, f"{slow}, but {busy[0]}")
    late = step["send_late_p99_ms"]
    if late is None or late <= LATE_LIMIT_MS:
        return _v(LATENCY, slow)
    lateness = (
        f"the generator sent late (p99 {late:.0f} ms; its GC paused {step['generator_gc_pause_s']:.2f} s)"
    )
    if p99 is not None and p99 - late > P99_LIMIT_MS:
        return _v(LATENCY, f"{slow}; {lateness}, too little to account for it")
    return _v(GENERATOR, f"{slow}, but {lateness}")


def _v(verdict: str, reason: str) -> dict[str, str]:
    return {"verdict": verdict, "reason": reason}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def outcome(steps: Sequence[Mapping[str, Any]], max_rate: float) -> dict[str, Any]:
    """The highest sustained rate (the last passing step before the first that failed), its CPU
    per frame, and what ended the climb.  `server_limit_found` is False unless the server
    itself failed a step: a climb ended by the generator or by --max is only a lower bound."""
    best: Mapping[str, Any] | None = None
    ended = None
    for step in steps:
        if step["verdict"] != PASS:
            ended = step
            break
        best = step
    if ended is None:
        limited_by, why = "max_rate", f"every step passed, up to --max {max_rate:,.0f}/s"
    else:
        limited_by = ended["verdict"]
        why = f"{ended['target_per_s']:,.0f}/s failed: {ended['reason']}"
    return {
        "sustained_frames_per_s": None if best is None else best["target_per_s"],
        "cpu_us_per_frame": None if best is None else best["cpu_us_per_frame"],
        "limited_by": limited_by,
        "server_limit_found": limited_by in (LATENCY, DROPPED),
        "stopped": why,
    }


# -- rendering ---------------------------------------------------------------------------------


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_steps(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    head = (
        f"  {'target/s':>9}{'sent/s':>9}{'ACKed':>9}{'NACK':>6}{'unans.':>7}{'p50':>9}{'p95':>9}{'p99':>9}"
        f"{'max':>9}{'srv CPU':>8}{'µs/frame':>9}{'gen CPU':>8}{'late p99':>9}{'host':>6}{'load':>6}  verdict"
    )
    lines = [
        "capacity steps (ACK latency: send -> kernel receipt of the ACK, ms; host: the whole machine's "
        "busy CPU, load: its 1-minute load average)",
        head,
    ]
    for s in steps:
        ack = s["ack_ms"]
        p99 = ">drain" if ack["p99_unanswered"] else num(ack["p99"])
        gen = max((c["max"] or 0.0 for c in s["generator_cpu_percent"].values()), default=0.0)
        cpu = "-" if s["server_cpu_percent"] is None else f"{s['server_cpu_percent']:.0f}%"
        lines.append(
            f"  {s['target_per_s']:>9,.0f}{_rate(s['sent_per_s']):>9}{s['acked']:>9,}{s['nacked']:>6,}"
            f"{s['unanswered']:>7,}{num(ack['p50']):>9}{num(ack['p95']):>9}{p99:>9}{num(ack['max']):>9}"
            f"{cpu:>8}{num(s['cpu_us_per_frame'], 0):>9}{gen:>7.0f}%{num(s['send_late_p99_ms']):>9}"
            f"{num(s.get('host_busy_percent'), 0):>5}%{num(s.get('load_average')):>6}"
            f"  {s['verdict']}: {s['reason']}"
        )
    for s in steps:
        lines.append(f"  inside the server at {s['target_per_s']:,.0f}/s: {_inside(s.get('inside_server'))}")
        for k, w in enumerate(s.get("per_worker") or []):
            lines.append(f"    worker {k}: {_worker(w)}")
        if s.get("postgres_us_per_frame") is not None:
            lines.append(
                f"  PostgreSQL at {s['target_per_s']:,.0f}/s: {num(s['postgres_cpu_percent'], 0)} % CPU, "
                f"{num(s['postgres_us_per_frame'], 0)} µs per frame; server + PostgreSQL "
                f"{num(s['total_us_per_frame'], 0)} µs per frame"
            )
    return lines


def _worker(m: Mapping[str, Any] | None) -> str:
    if m is None:
        return "no /metrics"
    return (
        f"{num(m.get('cpu_percent'), 0)} % CPU, {m['connections']:,} connections, "
        f"{m['commit_batches']:,} group commits, bus batches "
        f"{m['bus_batches_sent']:,} sent / {m['bus_batches_received']:,} received"
    )


def _inside(m: Mapping[str, Any] | None) -> str:
    if m is None:
        return "no /metrics"
    return (
        f"{m['commit_batches']:,} group commits ({num(m['actions_per_batch'])} actions each, "
        f"{num(m['commit_ms_mean'])} ms to commit on average), "
        f"statements {num(m['statement_ms_mean'])} ms mean, loop lag {num(m['loop_lag_ms_mean'])} ms "
        f"mean, {m['frames_held']:,} frames held by the loop guard, GC {m['gc_collections']:,} "
        f"collections pausing {m['gc_pause_s']:.2f} s, {m['bus_batches_sent']:,} bus batches sent"
    )


def render_result(result: Mapping[str, Any]) -> list[str]:
    rate, us = result["sustained_frames_per_s"], result["cpu_us_per_frame"]
    if rate is None:
        head = "no step was sustained"
    else:
        bound = "" if result["server_limit_found"] else "at least "
        head = f"sustained: {bound}{rate:,.0f} frames/s with ACK p99 <= {P99_LIMIT_MS:g} ms"
        head += f"; server CPU {num(us, 0)} µs per frame at that rate"
    lines = [head, f"stopped: {result['stopped']}"]
    if result["limited_by"] == GENERATOR:
        lines.append(
            "!!! the GENERATOR could not hold the rate: this is not the server's limit "
            "(use more --workers, or a quieter machine)"
        )
    elif result["limited_by"] == REFUSED:
        lines.append(
            "!!! the server REFUSED frames: its per-client limits answered, not its capacity (with --url, "
            "raise PIKA_LIKES_PER_MINUTE, PIKA_TEMPO_PER_MINUTE, PIKA_REACTIONS_PER_WINDOW)"
        )
    return lines
