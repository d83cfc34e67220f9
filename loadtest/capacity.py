"""`capacity`: how many dancer frames a second one live room answers with ACK p99 <= 200 ms.

The DJ plays the tracks the dancers will like before anyone joins (so no fan-out is measured),
then `dancers` dancers subscribe and send the seed's mix of likes, tempo votes and thank-yous
at a fixed aggregate rate, stepped up until a step fails (steps.py).  Per step: ACK latency,
the server's CPU from /proc (every process of `serve --workers N`, so CPU µs per frame) and its
embedded PostgreSQL's apart, what its /metrics saw (group-commit batches, loop lag, GC pauses,
bus batches), the generator's own health.  `compare_workers` sets runs with 1 and N workers
side by side: what relaying over the bus costs per frame.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest import procstat, scrape, stats, steps
from loadtest.coordinator import Run
from loadtest.pacer import KINDS, WEIGHTS
from loadtest.procstat import Sampler
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
#: compare_workers: a frame's server, PostgreSQL and summed CPU, as each step names them
PER_FRAME = ("cpu_us_per_frame", "postgres_us_per_frame", "total_us_per_frame")
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
    postgres = Sampler(target.postgres_pid, tree=True)
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
        idle, idle_postgres = _idle_cpu(run, postgres)
        shares = _dancers_per_worker(run, joined)
        for rate in rates:
            step = _step(run, postgres, rate, plan.seconds, shares, tracks)
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
            "server_workers": target.server_workers,
            "supervisor": target.spawned and target.server_workers > 1,
            "postgres_pid": target.postgres_pid,
            # what the CPU figures cover: the server's processes; PostgreSQL's apart, when known
            "server_cpu_covers": (
                "the server process and its descendants (supervisor and workers)"
                if target.spawned
                else "the --server-pid process only"
            ),
            "postgres_cpu": "measured apart" if target.postgres_pid else "not measured (not spawned)",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": [round(x, 2) for x in load_before],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
        "server_idle_cpu_percent": idle,
        "postgres_idle_cpu_percent": idle_postgres,
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


def _idle_cpu(run: Run, postgres: Sampler) -> tuple[float | None, float | None]:
    """The server's and PostgreSQL's CPU % while the subscribed room is quiet (pings, timers,
    housekeeping, the bus's polls)."""
    first, pg_first = run.server.sample(), postgres.sample()
    time.sleep(QUIET_BEFORE)
    last, pg_last = run.server.sample(), postgres.sample()
    return _percent(first, last), _percent(pg_first, pg_last)


def _percent(first: procstat.Snapshot | None, last: procstat.Snapshot | None) -> float | None:
    if first is None or last is None or last.t <= first.t:
        return None
    return round(100 * (last.cpu_s - first.cpu_s) / (last.t - first.t), 1)


def _dancers_per_worker(run: Run, joined: int) -> list[int]:
    """Subscribed dancers per worker (dancer i lives in worker i mod workers)."""
    if joined == 0:
        raise RuntimeError("no dancer could subscribe")
    return [len(range(w, run.dancers, run.workers)) for w in range(run.workers)]


def _step(
    run: Run, postgres: Sampler, rate: int, seconds: float, shares: list[int], tracks: int
) -> dict[str, Any]:
    run.mark(f"{rate}/s")
    start_at = time.monotonic() + START_DELAY
    args = [
        {"start_at": start_at, "seconds": seconds, "rate": r, "tracks": tracks}
        for r in steps.split(rate, shares)
    ]
    run.pool.send(run.dancer_ids, "step", args)
    inside = scrape.scrape_all(run.target.host, run.target.scraped)
    supervisor = run.target.pid if run.target.server_workers > 1 else None
    time.sleep(max(0.0, start_at - time.monotonic()))
    each_before = procstat.workers(supervisor) if supervisor else {}
    before, pg_before, host = run.server.sample(), postgres.sample(), procstat.host_cpu()
    run.pool.gather(run.dancer_ids, "sent", 2 * seconds + 30, run.tick)
    host_busy = procstat.busy_percent(host, procstat.host_cpu())
    replies = run.pool.gather(run.dancer_ids, "stepped", DRAIN + 30, run.tick)
    after, pg_after = run.server.sample(), postgres.sample()
    each_after = procstat.workers(supervisor) if supervisor else {}
    cpu_s, wall = _cpu_between(before, after)
    since = before.t if before else time.time() - seconds
    generator = run.worker_cpu(since + 0.5, time.time())
    step = steps.figures(rate, seconds, list(replies.values()), cpu_s, wall or seconds, generator)
    step["host_busy_percent"] = host_busy  # every process on the machine while the frames went out
    step["load_average"] = round(os.getloadavg()[0], 2)
    step.update(_postgres_figures(step, *_cpu_between(pg_before, pg_after)))
    outside = scrape.scrape_all(run.target.host, run.target.scraped)
    step["inside_server"] = scrape.delta(scrape.total(inside), scrape.total(outside))
    if len(outside) > 1:  # each worker's own: where the dancers landed, what crossed the bus
        step["per_worker"] = [scrape.delta(b, a) for b, a in zip(inside, outside, strict=True)]
        for k, worker in enumerate(step["per_worker"]):
            cpu_s, wall = _cpu_between(each_before.get(k), each_after.get(k))
            if worker is not None:  # the owner's share shows what one room costs its process
                worker["cpu_percent"] = None if cpu_s is None or not wall else round(100 * cpu_s / wall, 1)
    return step


def _postgres_figures(step: dict[str, Any], cpu_s: float | None, wall: float | None) -> dict[str, Any]:
    """PostgreSQL's CPU over the step (every backend, the WAL writer, checkpoints: the commits
    and the bus's NOTIFYs), per frame, and the server's and its summed."""
    sent, server = step["sent"], step["cpu_us_per_frame"]
    if cpu_s is None or not wall or not sent:
        return {"postgres_cpu_percent": None, "postgres_us_per_frame": None, "total_us_per_frame": None}
    pg = round(1e6 * cpu_s / sent, 1)
    return {
        "postgres_cpu_percent": round(100 * cpu_s / wall, 1),
        "postgres_us_per_frame": pg,
        "total_us_per_frame": None if server is None else round(server + pg, 1),
    }


def _cpu_between(
    before: procstat.Snapshot | None, after: procstat.Snapshot | None
) -> tuple[float | None, float | None]:
    if before is None or after is None:
        return None, None
    return after.cpu_s - before.cpu_s, after.t - before.t


def compare_workers(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Runs against `serve --workers N` for several N, side by side at each rate every run stepped
    through: per worker count the mean server, PostgreSQL and summed CPU µs per frame, and their
    ratio to the first count given (with 1 first: what relaying over the bus costs a frame).
    `per_process` sets N processes at a rate against the first count at the rate each of them
    carried (1 process at R/N): a process's cost per frame falls as its own rate grows (fuller
    batches, more frames per loop turn), so this ratio is the bus's part of the first one."""
    counts = list(dict.fromkeys(r["target"]["server_workers"] for r in runs))
    stepped = [{s["target_per_s"] for s in r["steps"]} for r in runs]
    rates = sorted(set.intersection(*stepped)) if stepped else []
    reached: dict[int, set[int]] = {n: set() for n in counts}  # the rates any run of a count stepped through
    for r, its_rates in zip(runs, stepped, strict=True):
        reached[r["target"]["server_workers"]] |= its_rates
    out = []
    for rate in rates:
        by_count = {str(n): _at(runs, n, rate) for n in counts}
        first = by_count[str(counts[0])]
        ratios = {
            str(n): {key: _ratio(by_count[str(n)][key], first[key]) for key in PER_FRAME} for n in counts[1:]
        }
        out.append({"rate": rate, "by_workers": by_count, "ratio_to_first": ratios})
    return {
        "workers": counts,
        "baseline_workers": counts[0] if counts else None,
        "rates": out,
        "per_process": _per_process(runs, counts, reached),
    }


def _at(runs: Sequence[Mapping[str, Any]], n: int, rate: int) -> dict[str, Any]:
    """The steps at `rate` of the runs with `n` workers: means, and each run's figures."""
    at = [
        s for r in runs if r["target"]["server_workers"] == n for s in r["steps"] if s["target_per_s"] == rate
    ]
    return {
        "runs": len(at),
        **{key: _mean(at, key) for key in PER_FRAME},
        "server_us_per_frame_each": [s["cpu_us_per_frame"] for s in at],
        "total_us_per_frame_each": [s.get("total_us_per_frame") for s in at],
        "ack_p99_ms": [s["ack_ms"]["p99"] for s in at],
        "bus_batches_per_s": [_bus_rate(s) for s in at],
        "load_average": [s.get("load_average") for s in at],
        "verdicts": [s["verdict"] for s in at],
    }


def _per_process(
    runs: Sequence[Mapping[str, Any]], counts: Sequence[int], reached: Mapping[int, set[int]]
) -> list[dict[str, Any]]:
    """Each later count at each rate it stepped through, against the first count at the rate
    each of its processes carried, when the first count's runs stepped through that rate."""
    if not counts:
        return []
    base = counts[0]
    out = []
    for n in counts[1:]:
        for rate in sorted(reached[n]):
            share = rate * base / n
            if share != int(share) or int(share) not in reached[base]:
                continue
            split, whole = _at(runs, n, rate), _at(runs, base, int(share))
            out.append(
                {
                    "workers": n,
                    "rate": rate,
                    "baseline_rate": int(share),
                    "runs": [split["runs"], whole["runs"]],
                    "us_per_frame": {key: [split[key], whole[key]] for key in PER_FRAME},
                    "ratio": {key: _ratio(split[key], whole[key]) for key in PER_FRAME},
                }
            )
    return out


def _mean(at: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [s.get(key) for s in at]
    if not values or any(v is None for v in values):
        return None
    return round(sum(values) / len(values), 1)


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else round(value / base, 2)


def _bus_rate(step: Mapping[str, Any]) -> float | None:
    inside = step.get("inside_server")
    return None if inside is None else round(inside["bus_batches_sent"] / step["seconds"], 1)


def render_compare_workers(c: Mapping[str, Any]) -> list[str]:
    base = c["baseline_workers"]
    lines = [
        f"server processes compared (CPU µs per dancer frame: every server process summed, PostgreSQL "
        f"apart; mean over runs, each run in brackets; ratio to {base} worker(s))",
        f"  {'frames/s':>9}{'workers':>8}{'runs':>5}{'server µs':>10}{'PG µs':>8}{'sum µs':>8}"
        f"{'ratio srv':>10}{'ratio sum':>10}{'NOTIFY/s':>9}  ACK p99 ms; verdicts; load",
    ]
    if not c["rates"]:
        lines.append("  (no rate that every run stepped through)")
    for row in c["rates"]:
        for n, w in row["by_workers"].items():
            ratio = row["ratio_to_first"].get(n, {"cpu_us_per_frame": 1.0, "total_us_per_frame": 1.0})
            each = ", ".join(steps.num(v, 0) for v in w["server_us_per_frame_each"])
            srv, both = (steps.num(ratio[k], 2) for k in ("cpu_us_per_frame", "total_us_per_frame"))
            bus = [b for b in w["bus_batches_per_s"] if b is not None]
            lines.append(
                f"  {row['rate']:>9,}{n:>8}{w['runs']:>5}{steps.num(w['cpu_us_per_frame'], 0):>10}"
                f"{steps.num(w['postgres_us_per_frame'], 0):>8}{steps.num(w['total_us_per_frame'], 0):>8}"
                f"{srv:>10}{both:>10}"
                f"{steps.num(sum(bus) / len(bus) if bus else None, 0):>9}"
                f"  [{each}]; {', '.join(steps.num(p) for p in w['ack_p99_ms'])}; "
                f"{', '.join(w['verdicts'])}; {', '.join(steps.num(x, 2) for x in w['load_average'])}"
            )
    if c["per_process"]:
        lines += [
            f"the same load per process (N processes at a rate against {base} at the rate each of them "
            "carried: what the bus adds, apart from the batching a split load loses)",
            f"  {'frames/s':>9}{'workers':>8}{'against':>9}{'runs':>7}{'server µs':>10}{'base µs':>9}"
            f"{'ratio srv':>10}{'ratio sum':>10}",
        ]
    for p in c["per_process"]:
        split, whole = p["us_per_frame"]["cpu_us_per_frame"]
        srv, both = (steps.num(p["ratio"][k], 2) for k in ("cpu_us_per_frame", "total_us_per_frame"))
        lines.append(
            f"  {p['rate']:>9,}{p['workers']:>8}{p['baseline_rate']:>9,}{'/'.join(map(str, p['runs'])):>7}"
            f"{steps.num(split, 0):>10}{steps.num(whole, 0):>9}{srv:>10}{both:>10}"
        )
    return lines
