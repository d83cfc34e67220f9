"""`capacity`: how many dancer frames a second one live room answers with ACK p99 <= 200 ms.

The DJ plays the tracks the dancers will like before anyone joins (so no fan-out is measured),
then `dancers` dancers subscribe and send the seed's mix of likes, tempo votes and thank-yous
at a fixed aggregate rate, stepped up until a step fails (steps.py).  Per step: ACK latency,
the server process's CPU from /proc (so CPU µs per frame), what its /metrics saw (group-commit
batches, loop lag, GC pauses), the generator's own health.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from loadtest import procstat, scrape, stats, steps
from loadtest.coordinator import Run
from loadtest.pacer import KINDS, WEIGHTS
from loadtest.runner import DRAIN
from loadtest.scenarios import CONNECT_RATE, Options, leave_all, spread
from loadtest.spawn import Target

#: --spawn: the per-client limits out of the way, so that refusals do not stand in for capacity
#: (the per-IP ones spawn.py already raises; its PIKA_TRACK_BURST covers steps.MAX_TRACKS).
SPAWN_ENV = {
    "PIKA_LIKES_PER_MINUTE": str(10**6),
    "PIKA_TEMPO_PER_MINUTE": str(10**6),
    "PIKA_REACTIONS_PER_WINDOW": str(10**6),
}
START_DELAY = 0.3  # s between telling the workers a step and its first frame
QUIET_BEFORE = 2.0  # s of an idle room measured before the first step (the server's idle CPU)


@dataclass(frozen=True)
class Plan:
    """What the command line asked for."""

    dancers: int
    first: int
    step: int
    max_rate: int
    seconds: float

    @property
    def rates(self) -> list[int]:
        return steps.rates(self.first, self.step, self.max_rate)


def run_capacity(target: Target, plan: Plan, opts: Options) -> dict[str, Any]:
    n = plan.dancers
    rates = plan.rates
    tracks = steps.tracks_needed(rates, plan.seconds, n)
    budget = n / CONNECT_RATE + len(rates) * (plan.seconds * 2 + DRAIN + 60) + tracks + 300
    run = Run(target, rooms=1, dancers=n, workers=opts.workers, quiet=True, seed=opts.seed, budget=budget)
    session = run.sessions[0]
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    try:
        run.register()
        _play_tracks(run, session, tracks)
        run.mark("connect")
        joined = run.connect(
            spread(range(n), time.monotonic() + 0.2, n / CONNECT_RATE), n / CONNECT_RATE + 120
        )
        run.settle(quiet_for=0.5, timeout=20)
        idle = _idle_cpu(run)
        shares = _dancers_per_worker(run, joined)
        for rate in rates:
            step = _step(run, rate, plan.seconds, shares, tracks)
            step.update(steps.judge(step))
            results.append(step)
            if step["verdict"] != steps.PASS:
                break
        leave_all(run, n)
        raw = run.finish()
    except BaseException:
        run.abort()
        raise
    acked_likes = sum(s["acked_by_kind"].get("SEND_LIKE", 0) for s in results)
    return {
        **steps.outcome(results, plan.max_rate),
        "capacity": True,
        "steps": results,
        "settings": {
            "scenario": "capacity",
            "dancers": n,
            "rates": rates,
            "step_seconds": plan.seconds,
            "drain_seconds": DRAIN,
            "pre_played_tracks": tracks,
            "mix": dict(zip(KINDS, WEIGHTS, strict=True)),
            "per_client_limits": ("raised (spawned)" if target.spawned else "as configured on the server"),
        },
        "target": {
            "name": target.name,
            "address": f"{target.host}:{target.port}",
            "pid": target.pid,
            "spawned": target.spawned,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": [round(x, 2) for x in load_before],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
        "server_idle_cpu_percent": idle,
        "workers": run.workers,
        "connections": stats.account_connections(raw.dancers),
        "likes": {
            "acked": acked_likes,
            "at_dj": sum(len(dj.likes) for dj in raw.djs),
            "in_database": raw.db.get("likes"),
        },
        "verdict": {"judged": False},
    }


def _play_tracks(run: Run, session: str, tracks: int) -> None:
    """The DJ plays T1 … T`tracks` before any dancer joins; every one must be accepted."""
    run.mark("tracks")
    now = time.monotonic() + 0.05
    schedule = [(now + k * 0.002, session, "track") for k in range(tracks)]
    reply = run.pool.send_gather([run.dj_id], "play", {"schedule": schedule}, "played", tracks + 60, run.tick)
    refused = reply[run.dj_id]["refused"]
    if refused or reply[run.dj_id]["busy"]:
        example = next(iter(refused.values()), "no answer")
        raise RuntimeError(
            f"the DJ could not play the {tracks} tracks the dancers like ({len(refused)} refused: "
            f"{example}); with --url the server needs PIKA_TRACK_BURST >= {tracks}"
        )


def _idle_cpu(run: Run) -> float | None:
    """The server's CPU % while the subscribed room is quiet (pings, timers, housekeeping)."""
    first = run.server.sample()
    time.sleep(QUIET_BEFORE)
    last = run.server.sample()
    if first is None or last is None:
        return None
    return round(100 * (last.cpu_s - first.cpu_s) / (last.t - first.t), 1)


def _dancers_per_worker(run: Run, joined: int) -> list[int]:
    """Subscribed dancers per worker (dancer i lives in worker i mod workers)."""
    if joined == 0:
        raise RuntimeError("no dancer could subscribe")
    return [len(range(w, run.dancers, run.workers)) for w in range(run.workers)]


def _step(run: Run, rate: int, seconds: float, shares: list[int], tracks: int) -> dict[str, Any]:
    run.mark(f"{rate}/s")
    start_at = time.monotonic() + START_DELAY
    args = [
        {"start_at": start_at, "seconds": seconds, "rate": r, "tracks": tracks}
        for r in steps.split(rate, shares)
    ]
    run.pool.send(run.dancer_ids, "step", args)
    inside = scrape.scrape(run.target.host, run.target.http)
    time.sleep(max(0.0, start_at - time.monotonic()))
    before, host = run.server.sample(), procstat.host_cpu()
    run.pool.gather(run.dancer_ids, "sent", 2 * seconds + 30, run.tick)
    host_busy = procstat.busy_percent(host, procstat.host_cpu())
    replies = run.pool.gather(run.dancer_ids, "stepped", DRAIN + 30, run.tick)
    after = run.server.sample()
    cpu_s, wall = _cpu_between(before, after)
    since = before.t if before else time.time() - seconds
    generator = run.worker_cpu(since + 0.5, time.time())
    step = steps.figures(rate, seconds, list(replies.values()), cpu_s, wall or seconds, generator)
    step["host_busy_percent"] = host_busy  # every process on the machine while the frames went out
    step["load_average"] = round(os.getloadavg()[0], 2)
    step["inside_server"] = scrape.delta(inside, scrape.scrape(run.target.host, run.target.http))
    return step


def _cpu_between(
    before: procstat.Snapshot | None, after: procstat.Snapshot | None
) -> tuple[float | None, float | None]:
    if before is None or after is None:
        return None, None
    return after.cpu_s - before.cpu_s, after.t - before.t
