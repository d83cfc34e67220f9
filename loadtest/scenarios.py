"""The scenarios: the seed's three (standard, big, stress), `scale` and `rooms`.

The seed scenarios are an evening in miniature: dancers arrive over the ramp, stay through the
hold while the DJ changes tracks, runs polls and makes announcements, and leave over the
ramp-down; they pass or fail on the seed's thresholds.  `scale` grows one room step by step and
`rooms` runs many rooms at once; both measure track fan-out and pass no judgement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from loadtest import report
from loadtest.coordinator import Run
from loadtest.spawn import Target

SCALE_STEPS = (300, 1_000, 3_000, 10_000, 30_000)
CONNECT_RATE = 400.0  # new dancers per second in scale/rooms: below hypercorn's ~850 upgrades/s
TRACK_DEADLINE = 60.0  # scale: a track that has not reached every dancer by then is given up on
MIN_CONNECTED = 0.9  # scale: no bigger step once fewer than this share of dancers could join


@dataclass(frozen=True)
class Phases:
    """Durations (s) and the DJ's cadence for one form (full or --quick) of a seed scenario."""

    ramp: float
    hold: float
    down: float
    track_every: float
    poll_every: float
    poll_open: float
    announce_every: float

    @property
    def total(self) -> float:
        return self.ramp + self.hold + self.down


FULL_CADENCE = {"track_every": 30.0, "poll_every": 120.0, "poll_open": 45.0, "announce_every": 90.0}
QUICK_CADENCE = {"track_every": 5.0, "poll_every": 20.0, "poll_open": 10.0, "announce_every": 15.0}
QUICK = Phases(ramp=15, hold=45, down=10, **QUICK_CADENCE)  # ~70 s: the whole command under 2 min


@dataclass(frozen=True)
class Seed:
    name: str
    dancers: int
    full: Phases
    p95_ms: float | None  # fan-out p95 must stay below this (None: not judged)
    min_success: float  # share of dancer operations that must succeed


SEEDS = {
    "standard": Seed("standard", 100, Phases(120, 480, 60, **FULL_CADENCE), 500.0, 0.99),
    "big": Seed("big", 300, Phases(300, 900, 120, **FULL_CADENCE), 1000.0, 0.95),
    "stress": Seed("stress", 500, Phases(300, 600, 120, **FULL_CADENCE), None, 0.90),
}


@dataclass(frozen=True)
class Options:
    """What every scenario takes from the command line."""

    quiet: bool
    workers: int
    seed: int


def dj_schedule(sessions: list[str], start: float, end: float, p: Phases) -> list[tuple[float, str, str]]:
    """Tracks from `start`, polls (each ended after `poll_open`) and announcements, all before `end`."""
    plan: list[tuple[float, str, str]] = []
    for k, session in enumerate(sessions):
        offset = p.track_every * k / len(sessions)  # rooms do not all change tracks at once
        t = start + offset
        while t < end:
            plan.append((t, session, "track"))
            t += p.track_every
        t = start + offset + p.poll_every / 2
        while t < end:
            plan.append((t, session, "poll"))
            plan.append((min(t + p.poll_open, end), session, "end_poll"))
            t += p.poll_every
        t = start + offset + p.announce_every / 3
        while t < end:
            plan.append((t, session, "announce"))
            t += p.announce_every
    return sorted(plan)


def spread(indices: range, start: float, seconds: float) -> list[tuple[int, float]]:
    """Evenly spaced moments for `indices` over `seconds` from `start`."""
    n = max(1, len(indices))
    return [(i, start + seconds * k / n) for k, i in enumerate(indices)]


def run_seed(target: Target, seed: Seed, quick: bool, opts: Options) -> dict[str, Any]:
    p = QUICK if quick else seed.full
    n = seed.dancers
    run = Run(
        target,
        rooms=1,
        dancers=n,
        workers=opts.workers,
        quiet=opts.quiet,
        seed=opts.seed,
        budget=p.total + 600,
    )
    try:
        run.register()
        run.mark("ramp")
        t0 = time.monotonic() + 1.0  # schedules are monotonic; records are wall clock
        end = t0 + p.ramp + p.hold
        run.pool.send([run.dj_id], "play", {"schedule": dj_schedule(run.sessions, t0, end, p)})
        run.connect(spread(range(n), t0, p.ramp), timeout=p.ramp + 90)
        run.mark("hold")
        run.pool.gather([run.dj_id], "played", max(0.0, end - time.monotonic()) + 90, run.tick)
        run.mark("drain")
        run.settle(quiet_for=1.0, timeout=15)
        run.mark("down")
        run.leave(spread(range(n), time.monotonic() + 0.2, p.down), timeout=p.down + 30)
        run.end_sessions()
        raw = run.finish()
    except BaseException:
        run.abort()
        raise
    settings = {
        "scenario": seed.name,
        "form": "quick" if quick else "full",
        "dancers": n,
        "phases_s": {"ramp": p.ramp, "hold": p.hold, "down": p.down},
        "cadence_s": {
            "track": p.track_every,
            "poll": p.poll_every,
            "poll_open": p.poll_open,
            "announcement": p.announce_every,
        },
        "quiet": opts.quiet,
        "thresholds": {"fanout_p95_ms": seed.p95_ms, "min_success": seed.min_success},
    }
    rss = {"before": "ramp", "after": "hold", "connections": n}
    return report.summarize(run, raw, settings, rss_window=rss, steps=[])


def run_scale(target: Target, max_n: int, tracks: int, interval: float, opts: Options) -> dict[str, Any]:
    """One room grown through the steps (300, 1,000, 3,000, 10,000, … up to `max_n`).

    Each step measures `tracks` broadcasts one at a time: the next track goes out `interval` s
    after the previous one reached every dancer (or after TRACK_DEADLINE), so a slow server is
    measured per broadcast instead of drowning in a backlog of its own making.  Growth stops
    after a step in which fewer than MIN_CONNECTED of the dancers could join.
    """
    steps = [s for s in SCALE_STEPS if s < max_n] + [max_n]
    budget = sum(steps) / CONNECT_RATE + len(steps) * (tracks * (interval + TRACK_DEADLINE) + 150) + 300
    run = Run(
        target, rooms=1, dancers=max_n, workers=opts.workers, quiet=opts.quiet, seed=opts.seed, budget=budget
    )
    session = run.sessions[0]
    step_marks: list[dict[str, Any]] = []
    stopped = None
    try:
        run.register()
        run.mark("connect")
        joined = previous = 0
        for size in steps:
            run.mark(f"connect {size}")
            new, previous = range(previous, size), size
            plan = spread(new, time.monotonic() + 0.2, len(new) / CONNECT_RATE)
            joined += run.connect(plan, timeout=len(new) / CONNECT_RATE + 120)
            run.settle(quiet_for=0.5, timeout=10)
            first = run.mark(f"play {size}")
            markers: list[str] = []
            for _ in range(tracks):
                sent = run.play([(time.monotonic() + 0.05, session, "track")], timeout=TRACK_DEADLINE + 30)
                markers += sent.get(session, [])
                if sent.get(session):
                    run.await_marker(sent[session][-1], timeout=TRACK_DEADLINE)
                time.sleep(interval)
            run.settle(quiet_for=1.0, timeout=20)
            step_marks.append(
                {
                    "dancers": size,
                    "markers": markers,
                    "rss_before": "connect",
                    "rss_after": f"play {size}",
                    "window": (first, time.time()),
                }
            )
            if joined < MIN_CONNECTED * size:
                stopped = f"stopped after {size:,}: only {joined:,} dancers could join"
                break
        run.mark("down")
        everyone = range(step_marks[-1]["dancers"])
        run.leave(spread(everyone, time.monotonic() + 0.2, min(10.0, len(everyone) / 1000)), timeout=60)
        run.end_sessions()
        raw = run.finish()
    except BaseException:
        run.abort()
        raise
    settings = {
        "scenario": "scale",
        "max": max_n,
        "steps": steps,
        "stopped_early": stopped,
        "tracks_per_step": tracks,
        "gap_after_delivery_s": interval,
        "connect_rate_per_s": CONNECT_RATE,
        "quiet": opts.quiet,
    }
    last = step_marks[-1]
    rss = {"before": last["rss_before"], "after": last["rss_after"], "connections": last["dancers"]}
    return report.summarize(run, raw, settings, rss_window=rss, steps=step_marks)


def run_rooms(
    target: Target, rooms: int, per_room: int, tracks: int, interval: float, opts: Options
) -> dict[str, Any]:
    """`rooms` sessions at once, `per_room` dancers each; every DJ plays `tracks` tracks, staggered."""
    n = rooms * per_room
    budget = n / CONNECT_RATE + tracks * interval + 400
    run = Run(
        target, rooms=rooms, dancers=n, workers=opts.workers, quiet=opts.quiet, seed=opts.seed, budget=budget
    )
    try:
        run.register()
        run.mark("connect")
        run.connect(spread(range(n), time.monotonic() + 0.2, n / CONNECT_RATE), timeout=n / CONNECT_RATE + 90)
        run.settle(quiet_for=0.5, timeout=10)
        run.mark("play")
        first = time.monotonic() + 0.3
        schedule = [
            (first + j * interval + interval * k / rooms, session, "track")
            for k, session in enumerate(run.sessions)
            for j in range(tracks)
        ]
        run.play(sorted(schedule), timeout=tracks * interval + 120)
        run.settle(quiet_for=1.0, timeout=20)
        run.mark("down")
        run.leave(spread(range(n), time.monotonic() + 0.2, min(10.0, n / 1000)), timeout=60)
        run.end_sessions()
        raw = run.finish()
    except BaseException:
        run.abort()
        raise
    settings = {
        "scenario": "rooms",
        "rooms": rooms,
        "per_room": per_room,
        "dancers": n,
        "tracks_per_room": tracks,
        "track_interval_s": interval,
        "connect_rate_per_s": CONNECT_RATE,
        "quiet": opts.quiet,
    }
    return report.summarize(
        run, raw, settings, rss_window={"before": "connect", "after": "play", "connections": n}, steps=[]
    )
