"""The scenarios: the seed's three (standard, big, stress), `scale` and `rooms`.

The seed scenarios are an evening in miniature: dancers arrive over the ramp, stay through the
hold while the DJ changes tracks, runs polls and makes announcements, and leave over the
ramp-down; they pass or fail on the seed's thresholds.  `scale` grows one room step by step and
`rooms` runs many rooms at once; both measure track fan-out and pass no judgement.

`flood` and `logins` measure one disturbance each while a DJ broadcasts tracks to one room of
quiet dancers: one dancer flooding SEND_LIKE far over its limit, or concurrent HTTP logins
(argon2id verifications).  Tracks are split by send time into before / during / after the
disturbance (windows.py), and the fan-out of each window is reported side by side.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from loadtest import report, windows
from loadtest.coordinator import Raw, Run
from loadtest.flooder import DRAIN_TIMEOUT, SUBSCRIBE_TIMEOUT, FloodRecord, flood_main
from loadtest.logins import HTTP_TIMEOUT, logins_main
from loadtest.pushes import pushes_main
from loadtest.roles import SentEvent, track_info
from loadtest.side import Side
from loadtest.spawn import Target
from pika.config import Settings
from pika.push.keys import new_keys, private_key_of

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


POLL_PHASE = 0.4  # of a track interval: polls and announcements fall between track changes
ANNOUNCE_PHASE = 0.7


def dj_schedule(sessions: list[str], start: float, end: float, p: Phases) -> list[tuple[float, str, str]]:
    """Tracks from `start`, polls (each ended after `poll_open`) and announcements, all before `end`.

    Polls and announcements are placed off the track grid: a DJ's frames are handled in order,
    so a track sent in the same millisecond as an announcement and a poll would wait for both
    commits and be measured as a slow fan-out.  (With the seed's cadences the first offsets,
    poll_every / 2 and announce_every / 3, were multiples of track_every, so that happened on
    every other track.)
    """
    plan: list[tuple[float, str, str]] = []
    for k, session in enumerate(sessions):
        offset = p.track_every * k / len(sessions)  # rooms do not all change tracks at once
        t = start + offset
        while t < end:
            plan.append((t, session, "track"))
            t += p.track_every
        t = start + offset + p.poll_every / 2 + POLL_PHASE * p.track_every
        while t < end:
            plan.append((t, session, "poll"))
            plan.append((min(t + p.poll_open, end), session, "end_poll"))
            t += p.poll_every
        t = start + offset + p.announce_every / 3 + ANNOUNCE_PHASE * p.track_every
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


# -- disturbances: flood and logins ----------------------------------------------------------------

DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}
#: `flood` measures the per-client like limit as shipped: spawn.RAISED_LIMITS lifts it for the
#: seed scenarios, this puts the default back (10 likes per minute per client).
FLOOD_ENV = {"PIKA_LIKES_PER_MINUTE": str(DEFAULTS["likes_per_minute"])}
#: `logins` needs the per-IP login and registration limits out of the way (every client is
#: 127.0.0.1); the per-email failure limit keeps its default (the right password never fails).
LOGINS_ENV = {"PIKA_LOGIN_ATTEMPTS_PER_IP": str(10**6), "PIKA_REGISTER_PER_IP": str(10**6)}
PUSH_ENV = {"PIKA_PUSH_ALLOW_HTTP": "true", "PIKA_VAPID_PRIVATE_KEY": private_key_of(new_keys())}
SPAWN_ENV = {"flood": FLOOD_ENV, "logins": LOGINS_ENV, "push": PUSH_ENV}


def centred_offset(tracks: int, interval: float, seconds: float) -> float:
    """When (s after the first track) a `seconds`-long disturbance starts to sit in the middle of
    `tracks` broadcasts `interval` apart — never before half an interval, so that at least the
    first track goes out before it (the flooder likes tracks already played)."""
    span = (tracks - 1) * interval
    return max(interval / 2, (span - seconds) / 2)


def _wall(mono: float) -> float:
    """A monotonic moment on the wall clock of the records."""
    return time.time() + (mono - time.monotonic())


def _warm_up(run: Run, session: str) -> set[str]:
    """One track played and delivered before anything is measured, its marker returned: a fresh
    session's first broadcast runs colder paths than the rest and would skew the baseline."""
    run.mark("warm-up")
    sent = run.play([(time.monotonic() + 0.05, session, "track")], timeout=60)
    markers = set(sent.get(session, []))
    for marker in markers:
        run.await_marker(marker, timeout=30)
    run.settle(quiet_for=0.5, timeout=10)
    return markers


def _measured(raw: Raw, warm: set[str]) -> list[SentEvent]:
    """The DJ's events but the warm-up."""
    return [e for dj in raw.djs for e in dj.events.values() if e.marker not in warm]


def _connect_quiet(run: Run, n: int) -> None:
    run.mark("connect")
    plan = spread(range(n), time.monotonic() + 0.2, n / CONNECT_RATE)
    run.connect(plan, timeout=n / CONNECT_RATE + 90)
    run.settle(quiet_for=0.5, timeout=10)


def leave_all(run: Run, n: int) -> None:
    run.mark("down")
    run.leave(spread(range(n), time.monotonic() + 0.2, min(10.0, n / 1000)), timeout=60)
    run.end_sessions()


def run_flood(
    target: Target, dancers: int, tracks: int, interval: float, seconds: float, rate: float, opts: Options
) -> dict[str, Any]:
    """`dancers` quiet dancers in one room, `tracks` tracks `interval` s apart; in the middle, one
    more dancer floods SEND_LIKE at `rate`/s for `seconds` s, alternating between the tracks
    already played.  Reports the others' NOW_PLAYING fan-out before / during / after the flood,
    what the flooder was answered, and whether its connection stayed open."""
    n = dancers
    budget = n / CONNECT_RATE + tracks * interval + seconds + 400
    run = Run(target, rooms=1, dancers=n, workers=opts.workers, quiet=True, seed=opts.seed, budget=budget)
    session = run.sessions[0]
    flooder: Side | None = None
    try:
        run.register()
        _connect_quiet(run, n)
        run.mark("flooder")
        client_id = f"lt-{run.run_id}-flooder"
        args = {"host": target.host, "port": target.port, "session": session, "client_id": client_id}
        flooder = Side("flooder", flood_main, {**args, "max_seconds": budget})
        ready = flooder.wait("ready", SUBSCRIBE_TIMEOUT + 30, run.tick)
        if not ready["subscribed"]:
            raise RuntimeError(f"the flooder could not subscribe: {ready['error'] or 'no answer'}")
        warm = _warm_up(run, session)
        run.mark("play")
        t0 = time.monotonic() + 0.5
        offset = centred_offset(tracks, interval, seconds)
        first = len(warm) + 1  # the DJ numbers its tracks T1, T2, … in order, the warm-up first
        liked = [track_info(f"T{first + k}") for k in range(tracks) if k * interval < offset]
        flood_at = t0 + offset
        planned = (_wall(flood_at), _wall(flood_at + seconds))
        flooder.send("flood", {"start_at": flood_at, "seconds": seconds, "rate": rate, "tracks": liked})
        run.play([(t0 + k * interval, session, "track") for k in range(tracks)], tracks * interval + 120)
        left = max(0.0, flood_at + seconds - time.monotonic())
        flooder.wait("flooded", left + DRAIN_TIMEOUT + 30, run.tick)
        run.mark("drain")
        run.settle(quiet_for=1.0, timeout=20)
        side = flooder.call("results", {}, "results", 30, run.tick)
        leave_all(run, n)
        raw = run.finish()
    except BaseException:
        run.abort()
        raise
    finally:
        if flooder is not None:
            flooder.close()
    rec: FloodRecord = side["record"]
    # The flood lasts from its first send until the server answered its last like (it may work
    # through a backlog long after the last send), or until the last send if answers are missing.
    rows = rec.answer_rows()
    answered = [t for _, t, _ in rows if t is not None]
    if rec.t_first is not None and rec.t_last is not None:
        start, end = rec.t_first, max([rec.t_last, *answered])
    else:
        start, end = planned
    events = _measured(raw, warm)
    fanout = windows.fanout_by_window(events, raw.dancers, start, end)
    for window in fanout.values():
        window["server_cpu_percent"] = report.server_cpu(run, window.get("window_s"))
    answers = windows.tally_answers(rows)
    answers["send_rate_per_s"] = windows.send_rate(rec.sends)
    settings = {
        "scenario": "flood",
        "dancers": n,
        "tracks": tracks,
        "track_interval_s": interval,
        "flood_seconds": seconds,
        "flood_rate_per_s": rate,
        "flood_offset_s": offset,
        "warm_up_tracks": len(warm),
        "liked_tracks": [t["title"] for t in liked],
        "likes_per_minute": (
            f"{DEFAULTS['likes_per_minute']} (server default, spawned)"
            if target.spawned
            else "as configured on the server"
        ),
        "quiet": True,
    }
    result = report.summarize(
        run, raw, settings, rss_window={"before": "connect", "after": "play", "connections": n}, steps=[]
    )
    result["flood"] = {
        "window_s": [start, end],
        "sending_s": None if rec.t_first is None else round((rec.t_last or rec.t_first) - rec.t_first, 3),
        "window_length_s": round(end - start, 3),
        "planned_window_s": list(planned),
        "fanout": fanout,
        "p99_during_minus_before_ms": windows.p99_difference(fanout),
        "per_track": windows.per_event(events, raw.dancers),
        "flooder": {
            "client_id": rec.client_id,
            "likes": answers,
            "now_playing_received": rec.now_playing,
            "error_frames": rec.errors,
            "open_at_end": side["open_at_end"],
            "close_code": rec.close_code,
            "closed_by_server": rec.closed_by_server,
            "closed_after_flood_start_s": (
                round(rec.t_closed - start, 3) if rec.t_closed is not None and start else None
            ),
            "close_error": rec.close_error,
        },
    }
    return result


def login_accounts(run_id: str, clients: int) -> list[dict[str, str]]:
    """Accounts for the login clients, unique to this run (emails and slugs)."""
    return [
        {
            "email": f"lt-{run_id}-{k:03d}@loadtest.example",
            "password": f"loadtest-{run_id}-pw-{k:03d}",
            "displayName": f"Loadtest {run_id} {k:03d}",
        }
        for k in range(clients)
    ]


def run_logins(
    target: Target, dancers: int, tracks: int, interval: float, clients: int, opts: Options
) -> dict[str, Any]:
    """`dancers` quiet dancers in one room, `tracks` tracks `interval` s apart: the first half
    without logins (baseline), the second half while `clients` clients log in concurrently, each
    in a loop with the right password.  The accounts are registered before anything is measured."""
    n = dancers
    budget = n / CONNECT_RATE + tracks * interval + clients + 400
    run = Run(target, rooms=1, dancers=n, workers=opts.workers, quiet=True, seed=opts.seed, budget=budget)
    session = run.sessions[0]
    side: Side | None = None
    try:
        side = Side(
            "login clients", logins_main, {"host": target.host, "port": target.http, "max_seconds": budget}
        )
        run.register()
        _connect_quiet(run, n)
        run.mark("accounts")
        accounts = login_accounts(run.run_id, clients)
        registered = side.call("register", {"accounts": accounts}, "registered", 60 + clients, run.tick)
        failed = [
            (a["email"], r) for a, r in zip(accounts, registered["results"], strict=True) if r[0] != 201
        ]
        if failed:
            email, (status, error) = failed[0]
            raise RuntimeError(
                f"{len(failed)} of {clients} accounts could not be registered, e.g. {email}: HTTP {status} "
                f"{error} (with --url, the server needs PIKA_REGISTER_PER_IP and PIKA_LOGIN_ATTEMPTS_PER_IP "
                "raised)"
            )
        run.settle(quiet_for=0.5, timeout=10)
        warm = _warm_up(run, session)
        run.mark("play")
        t0 = time.monotonic() + 0.5
        half = tracks // 2
        login_at = t0 + half * interval - interval / 2
        login_end = t0 + (tracks - 1) * interval + interval / 2
        planned = (_wall(login_at), _wall(login_end))
        side.send("logins", {"start_at": login_at, "end_at": login_end})
        run.play([(t0 + k * interval, session, "track") for k in range(tracks)], tracks * interval + 120)
        left = max(0.0, login_end - time.monotonic())
        attempts = side.wait("logged_in", left + HTTP_TIMEOUT + 30, run.tick)["attempts"]
        run.mark("drain")
        run.settle(quiet_for=1.0, timeout=20)
        leave_all(run, n)
        raw = run.finish()
    except BaseException:
        run.abort()
        raise
    finally:
        if side is not None:
            side.close()
    if attempts:
        start, end = min(a[0] for a in attempts), max(a[1] for a in attempts)
    else:
        start, end = planned
    events = _measured(raw, warm)
    fanout = windows.fanout_by_window(events, raw.dancers, start, end)
    for window in fanout.values():
        window["server_cpu_percent"] = report.server_cpu(run, window.get("window_s"))
    settings = {
        "scenario": "logins",
        "dancers": n,
        "tracks": tracks,
        "track_interval_s": interval,
        "login_clients": clients,
        "warm_up_tracks": len(warm),
        "login_limits": (
            "per-IP login and registration limits raised, per-email failures default (spawned)"
            if target.spawned
            else "as configured on the server"
        ),
        "quiet": True,
    }
    result = report.summarize(
        run, raw, settings, rss_window={"before": "connect", "after": "play", "connections": n}, steps=[]
    )
    difference = windows.p99_difference(fanout)
    result["logins"] = {
        "window_s": [start, end],
        "planned_window_s": list(planned),
        "fanout": fanout,
        "p99_during_minus_before_ms": difference,
        "per_track": windows.per_event(events, raw.dancers),
        "acceptance_ms": 50.0,
        "acceptance_met": None if difference is None else difference <= 50.0,
        "registered": clients,
        "logins": windows.tally_logins(attempts),
    }
    return result


def run_push(
    target: Target, dancers: int, tracks: int, interval: float, subscriptions: int, opts: Options
) -> dict[str, Any]:
    """`dancers` quiet dancers in one room, `tracks` tracks `interval` s apart; `subscriptions` Web
    Push subscriptions of the room (a local push service, tests' kind), and mid-run one announcement
    with `push: true`.  Reports the NOW_PLAYING fan-out before / while the pushes go out / after."""
    n = dancers
    budget = n / CONNECT_RATE + tracks * interval + subscriptions / 20 + 400
    run = Run(target, rooms=1, dancers=n, workers=opts.workers, quiet=True, seed=opts.seed, budget=budget)
    session = run.sessions[0]
    side: Side | None = None
    try:
        side = Side(
            "push service", pushes_main, {"host": target.host, "port": target.http, "max_seconds": budget}
        )
        run.register()
        _connect_quiet(run, n)
        run.mark("subscriptions")
        subscribed = side.call(
            "subscribe",
            {"session": session, "count": subscriptions},
            "subscribed",
            60 + subscriptions / 5,
            run.tick,
        )
        if subscribed["n_failed"]:
            raise RuntimeError(
                f"{subscribed['n_failed']} of {subscriptions} subscriptions refused, "
                f"e.g. {subscribed['failed'][0]} "
                "(with --url, the server needs PIKA_PUSH_ALLOW_HTTP=true and a VAPID key)"
            )
        run.settle(quiet_for=0.5, timeout=10)
        warm = _warm_up(run, session)
        run.mark("play")
        t0 = time.monotonic() + 0.5
        push_at = t0 + (tracks // 2) * interval - interval / 2
        schedule = [(t0 + k * interval, session, "track") for k in range(tracks)]
        run.play([*schedule, (push_at, session, "push_announce")], tracks * interval + 120)
        times = side.call("collect", {"expected": subscriptions, "timeout": 60}, "pushed", 90, run.tick)[
            "times"
        ]
        run.mark("drain")
        run.settle(quiet_for=1.0, timeout=20)
        leave_all(run, n)
        raw = run.finish()
    except BaseException:
        run.abort()
        raise
    finally:
        if side is not None:
            side.close()
    start = _wall(push_at)
    end = max([start, *times])
    events = _measured(raw, warm)
    fanout = windows.fanout_by_window(events, raw.dancers, start, end)
    for window in fanout.values():
        window["server_cpu_percent"] = report.server_cpu(run, window.get("window_s"))
    settings = {
        "scenario": "push",
        "dancers": n,
        "tracks": tracks,
        "track_interval_s": interval,
        "subscriptions": subscriptions,
        "warm_up_tracks": len(warm),
        "quiet": True,
    }
    result = report.summarize(
        run, raw, settings, rss_window={"before": "connect", "after": "play", "connections": n}, steps=[]
    )
    result["push"] = {
        "window_s": [start, end],
        "fanout": fanout,
        "p99_during_minus_before_ms": windows.p99_difference(fanout),
        "per_track": windows.per_event(events, raw.dancers),
        "pushes_received": len(times),
        "push_span_s": end - start,
    }
    return result
