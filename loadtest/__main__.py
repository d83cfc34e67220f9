"""`python -m loadtest SCENARIO`: the capacity suite's command line.

    python -m loadtest standard|big|stress [--quick] [--quiet] (--spawn | --url URL [--server-pid PID])
    python -m loadtest scale [--max 10000] [--tracks 10] [--interval 2] ...
    python -m loadtest rooms --rooms R --per-room N ...
    python -m loadtest compare scale [--max N]      # Pika! and the yardstick, both spawned
    python -m loadtest flood [--dancers 200] [--rate 1000] [--seconds 5] ...   # one client floods likes
    python -m loadtest logins [--dancers 200] [--clients 20] ...               # concurrent HTTP logins
    python -m loadtest bus [--rates 1000,2000,...] [--seconds 5]  # LISTEN/NOTIFY events/s (loadtest/bus.py)
    python -m loadtest capacity [--dancers 3000] [--step 1000] [--max 10000] [--seconds 20] [--quick] ...
    python -m loadtest capacity --spawn --server-workers 1,2,1,2 --step 2000 --max 2000 --seconds 30
                                 # the bus's cost: CPU per frame with 1 and 2 server processes

The table goes to stdout, progress to stderr, and `--json FILE` keeps everything for machines.
Exit status: 0, or 1 when a judged scenario fails, 2 when the size does not fit this machine;
130 when stopped by Ctrl-C or SIGTERM, after its worker processes and spawned server are stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loadtest import capacity, report, scenarios, spawn
from loadtest.coordinator import DoesNotFit, check_fits, default_workers
from loadtest.runner import WorkerFailed
from loadtest.scenarios import Options


def _common(parser: argparse.ArgumentParser, *, target: bool = True, quiet: bool = True) -> None:
    if target:
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--spawn", action="store_true", help="start `python -m pika serve` for this run")
        where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:3001 (loopback only)")
        parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for RSS and CPU")
        parser.add_argument(
            "--database-url", help="with --url: its PostgreSQL, to count stored likes and votes"
        )
        if quiet:
            parser.add_argument(
                "--quiet", action="store_true", help="dancers only listen: no likes, votes, reactions"
            )
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="dancer worker processes (default: CPUs - 1)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed for the dancers' choices")
    parser.add_argument(
        "--transport",
        choices=("live", "asgi"),
        default="live",
        help="spawned server: clients open the live listener's /ws (default) or the plain ASGI one",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the full report as JSON")


def _scale_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max", type=int, default=10_000, help="dancers in the last step (default 10,000)")
    parser.add_argument("--tracks", type=int, default=10, help="tracks per step (default 10)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between tracks (default 2)")


def _rooms_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=10, help="sessions at once (default 10)")
    parser.add_argument("--per-room", type=int, default=100, help="dancers per session (default 100)")
    parser.add_argument("--tracks", type=int, default=10, help="tracks per room (default 10)")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between a room's tracks (default 2)"
    )


def _disturbance_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dancers", type=int, default=200, help="quiet dancers in the room (default 200)")
    parser.add_argument("--tracks", type=int, default=20, help="tracks the DJ broadcasts (default 20)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between tracks (default 0.5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for name, seed in scenarios.SEEDS.items():
        minutes = "/".join(f"{x / 60:g}" for x in (seed.full.ramp, seed.full.hold, seed.full.down))
        p = sub.add_parser(
            name, help=f"ramp to {seed.dancers} dancers; {minutes} min ramp/hold/down (--quick: ~70 s)"
        )
        p.add_argument("--quick", action="store_true", help="15 s ramp, 45 s hold, 10 s down")
        _common(p)
    _scale_args(scale := sub.add_parser("scale", help="one room grown step by step to --max dancers"))
    _common(scale)
    _rooms_args(rooms := sub.add_parser("rooms", help="many rooms at once"))
    _common(rooms)
    flood = sub.add_parser(
        "flood",
        help="one dancer floods SEND_LIKE mid-run: others' fan-out during vs before, its answers",
        description="Quiet dancers in one room while a DJ broadcasts tracks; mid-run one more dancer "
        "(its own clientId) floods SEND_LIKE.  Reports the others' NOW_PLAYING fan-out before and "
        "during the flood and what the flooder was answered.  With --spawn the likes limit keeps its "
        "default (10/min per client); with --url the server's own limits apply.",
    )
    _disturbance_args(flood)
    flood.add_argument("--rate", type=float, default=1000.0, help="flood likes per second (default 1000)")
    flood.add_argument("--seconds", type=float, default=5.0, help="flood duration in seconds (default 5)")
    _common(flood, quiet=False)  # dancers are always quiet: only the disturbance acts
    logins = sub.add_parser(
        "logins",
        help="concurrent HTTP logins mid-run: fan-out p99 during vs before, login latency and rate",
        description="Quiet dancers in one room while a DJ broadcasts tracks; accounts are registered "
        "first, then in the second half of the tracks --clients clients log in concurrently, each in a "
        "loop.  With --spawn the per-IP login and registration limits are raised; with --url the "
        "server needs PIKA_LOGIN_ATTEMPTS_PER_IP and PIKA_REGISTER_PER_IP raised.",
    )
    _disturbance_args(logins)
    logins.add_argument("--clients", type=int, default=20, help="concurrent login clients (default 20)")
    _common(logins, quiet=False)
    push = sub.add_parser(
        "push",
        help="a push: true announcement to --subscriptions Web Push subscribers mid-run: fan-out vs before",
        description="Quiet dancers in one room while a DJ broadcasts tracks; --subscriptions Web Push "
        "subscriptions of the room point at a push service on 127.0.0.1 (answering 201), and mid-run the "
        "DJ sends one announcement with push: true.  With --spawn the server accepts http:// endpoints "
        "and gets a VAPID key; with --url it needs PIKA_PUSH_ALLOW_HTTP=true and a key.",
    )
    _disturbance_args(push)
    push.add_argument(
        "--subscriptions", type=int, default=2000, help="Web Push subscriptions of the room (default 2,000)"
    )
    _common(push, quiet=False)
    sub.add_parser(
        "bus",
        help="events/s through PostgreSQL LISTEN/NOTIFY (python -m loadtest bus --help)",
        add_help=False,
    )
    cap = sub.add_parser(
        "capacity",
        help="dancer frames at a stepped fixed rate: the highest rate with ACK p99 <= 200 ms, CPU per frame",
        description="--dancers dancers subscribe to one room and send likes, tempo votes and thank-yous "
        "(the seed's mix, each with a messageId) at a fixed aggregate rate: --step, 2 x --step, … up to "
        "--max frames/s, --seconds each.  It stops at the first step whose ACK p99 exceeds 200 ms, or "
        "in which the generator could not hold the rate (said so: not the server's limit).  With "
        "--spawn the per-client limits are raised; with --url the server needs PIKA_LIKES_PER_MINUTE, "
        "PIKA_TEMPO_PER_MINUTE and PIKA_REACTIONS_PER_WINDOW raised (NACKs are counted apart and "
        "stop the climb) and PIKA_TRACK_BURST at least the tracks it pre-plays.",
    )
    cap.add_argument("--dancers", type=int, help="dancers in the room (default 3,000)")
    cap.add_argument("--step", type=int, help="frames/s of the first step and between steps (default 1,000)")
    cap.add_argument("--max", type=int, help="frames/s of the last step (default 10,000)")
    cap.add_argument("--seconds", type=float, help="seconds per step (default 20; --quick 5)")
    cap.add_argument("--quick", action="store_true", help="5 s steps: done in under 2 minutes")
    cap.add_argument(
        "--server-workers",
        type=_worker_counts,
        default=[1],
        metavar="N[,N...]",
        help="with --spawn: `serve --workers N`, CPU summed over its processes; several counts (e.g.\n"
        "1,2,1,2) run one after another, each against a fresh server, and compare CPU per frame",
    )
    _common(cap, quiet=False)  # dancers always act: that is what is measured
    compare = sub.add_parser(
        "compare",
        help="the same scenario against Pika! and the yardstick, both spawned; dancers quiet "
        "(the yardstick only fans out tracks)",
    )
    what = compare.add_subparsers(dest="compared", required=True, metavar="SCENARIO")
    _scale_args(c_scale := what.add_parser("scale", help="compare scale [--max N]"))
    _common(c_scale, target=False)
    _rooms_args(c_rooms := what.add_parser("rooms", help="compare rooms --rooms R --per-room N"))
    _common(c_rooms, target=False)
    return parser


def _worker_counts(raw: str) -> list[int]:
    try:
        counts = [int(x) for x in raw.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: worker counts, e.g. 2 or 1,2,1,2") from None
    if not all(1 <= n <= 64 for n in counts):
        raise argparse.ArgumentTypeError(f"{raw!r}: each worker count must be 1-64")
    return counts


@contextlib.contextmanager
def _target(args: argparse.Namespace, rooms: int, server_workers: int = 1) -> Iterator[spawn.Target]:
    if args.spawn:
        env = {**scenarios.SPAWN_ENV, "capacity": capacity.SPAWN_ENV}.get(args.scenario)
        with spawn.pika_server(
            max_sessions=rooms, extra_env=env, transport=args.transport, workers=server_workers
        ) as target:
            yield target
        return
    host, port = spawn.parse_url(args.url)
    yield spawn.Target("pika", host, port, args.server_pid, args.database_url)


Scenario = Callable[[spawn.Target, Options], dict[str, Any]]


def _runner(args: argparse.Namespace) -> tuple[int, int, Scenario]:
    """(rooms, dancers, how to run the scenario against a target)."""
    name = args.compared if args.scenario == "compare" else args.scenario
    if name in scenarios.SEEDS:
        seed = scenarios.SEEDS[name]
        return 1, seed.dancers, lambda t, o: scenarios.run_seed(t, seed, args.quick, o)
    if name == "scale":
        return 1, args.max, lambda t, o: scenarios.run_scale(t, args.max, args.tracks, args.interval, o)
    if name == "capacity":
        plan = capacity_plan(args)
        return 1, plan.dancers, lambda t, o: capacity.run_capacity(t, plan, o)
    if name == "flood":
        return (
            1,
            args.dancers + 1,
            lambda t, o: scenarios.run_flood(
                t, args.dancers, args.tracks, args.interval, args.seconds, args.rate, o
            ),
        )
    if name == "push":
        return (
            1,
            args.dancers,
            lambda t, o: scenarios.run_push(
                t, args.dancers, args.tracks, args.interval, args.subscriptions, o
            ),
        )
    if name == "logins":
        return (
            1,
            args.dancers,
            lambda t, o: scenarios.run_logins(t, args.dancers, args.tracks, args.interval, args.clients, o),
        )

    def rooms(t: spawn.Target, o: Options) -> dict[str, Any]:
        return scenarios.run_rooms(t, args.rooms, args.per_room, args.tracks, args.interval, o)

    return args.rooms, args.rooms * args.per_room, rooms


CAPACITY = {"dancers": 3_000, "step": 1_000, "max": 10_000, "seconds": 20.0}
CAPACITY_QUICK = {**CAPACITY, "seconds": 5.0}


def capacity_plan(args: argparse.Namespace) -> capacity.Plan:
    """The command line's capacity plan, defaults (or --quick's) where nothing was given."""
    defaults = CAPACITY_QUICK if args.quick else CAPACITY
    value = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in defaults.items()}
    return capacity.Plan(value["dancers"], value["step"], value["step"], value["max"], value["seconds"])


def _jsonable(value: Any) -> Any:
    """NaN is not JSON: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _check(args: argparse.Namespace) -> str | None:
    if args.workers < 1:
        return "--workers must be at least 1"
    for name in ("max", "rooms", "per_room", "tracks", "dancers"):
        value = getattr(args, name, 1)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if getattr(args, "interval", 1.0) <= 0:
        return "--interval must be > 0"
    if args.scenario in ("flood", "logins") and not 2 <= args.tracks <= 1000:
        return "--tracks must be 2-1000 (a baseline window and a disturbed one)"
    if args.scenario == "flood" and not 0 < args.seconds <= 120:
        return "--seconds must be > 0 and at most 120"
    if not 0 < getattr(args, "rate", 1.0) <= 20_000:
        return "--rate must be > 0 and at most 20,000 per second"
    if not 1 <= getattr(args, "clients", 1) <= 200:
        return "--clients must be 1-200"
    if args.scenario == "capacity":
        plan = capacity_plan(args)
        if plan.step < 1 or plan.max_rate < plan.step:
            return "--step must be at least 1 and --max at least --step"
        if plan.max_rate > 100_000:
            return "--max must be at most 100,000 frames per second"
        if not 1 <= plan.seconds <= 600:
            return "--seconds must be 1-600"
        if args.server_workers != [1] and not args.spawn:
            return "--server-workers needs --spawn (with --url, give --server-pid the supervisor's pid)"
    if getattr(args, "url", None):
        try:
            spawn.parse_url(args.url)
        except ValueError as exc:
            return str(exc)
    return None


def _compare_workers(args: argparse.Namespace, run: Scenario) -> tuple[dict[str, Any], int]:
    """`capacity --server-workers 1,2,…`: one run per count, in the order given (alternate them
    to spread the shared machine's moods), each against a fresh server, then side by side."""
    options = Options(quiet=False, workers=args.workers, seed=args.seed)
    runs = []
    for k, count in enumerate(args.server_workers):
        print(f"loadtest: run {k + 1}/{len(args.server_workers)}: serve --workers {count}", file=sys.stderr)
        with _target(args, 1, count) as target:
            runs.append(run(target, options))
        print(report.render_any(runs[-1]) + "\n", flush=True)
    comparison = capacity.compare_workers(runs)
    print("\n".join(capacity.render_compare_workers(comparison)))
    return {"runs": runs, "compare_workers": comparison}, 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bus"]:
        from loadtest.bus import main as bus_main

        return bus_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _check(args)
    if problem:
        parser.error(problem)
    rooms, dancers, run = _runner(args)
    try:
        check_fits(dancers, rooms, min(args.workers, dancers))  # before a server is started for nothing
        if args.scenario == "compare":
            options = Options(quiet=True, workers=args.workers, seed=args.seed)  # the yardstick only fans out
            with spawn.pika_server(max_sessions=rooms, transport=args.transport) as target:
                pika = run(target, options)
            print(report.render(pika), flush=True)
            with spawn.yardstick_server() as target:
                yard = run(target, options)
            print("\n" + report.render(yard))
            comparison = report.compare(pika, yard)
            print("\n" + report.render_compare(comparison))
            result: dict[str, Any] = {"pika": pika, "yardstick": yard, "compare": comparison}
            status = 0
        elif args.scenario == "capacity" and len(args.server_workers) > 1:
            result, status = _compare_workers(args, run)
        else:
            options = Options(quiet=getattr(args, "quiet", True), workers=args.workers, seed=args.seed)
            counts = getattr(args, "server_workers", [1])
            with _target(args, rooms, counts[0]) as target:
                result = run(target, options)
            print(report.render_any(result))
            verdict = result["verdict"]
            status = 1 if verdict["judged"] and not verdict["pass"] else 0
    except DoesNotFit as exc:
        print(f"loadtest: does not fit: {exc}", file=sys.stderr)
        return 2
    except (WorkerFailed, RuntimeError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    if args.json:
        args.json.write_text(json.dumps(_jsonable(result), indent=2) + "\n", encoding="utf-8")
    return status


def _unwind_on_sigterm() -> None:
    """SIGTERM (`kill`, a CI job's timeout) stops the run as Ctrl-C does: KeyboardInterrupt in the
    main thread, where every scenario runs, so the Run aborts its worker processes and `spawn`'s
    context managers stop the server and remove its data.  A second SIGTERM ends at once."""

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    _unwind_on_sigterm()
    sys.exit(main())
