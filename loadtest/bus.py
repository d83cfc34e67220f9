"""`python -m loadtest bus`: how many events/s one PostgreSQL carries through LISTEN/NOTIFY.

A sender (this process) publishes room batches with `PgBus.publish` at stepped rates, many rooms'
batches per transaction as a group commit would; a receiver in another process (`--receive`,
started here) runs the real `PgBus` listener and measures each batch from NOTIFY sent to handed
to its subscriber.  Per step: p50/p95/p99, the PostgreSQL processes' CPU µs per event and the
receiver's; the run stops at the first step whose p99 exceeds the limit (50 ms).

    python -m loadtest bus [--rates 1000,2000,...] [--seconds 5] [--rooms 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import psycopg
import trio

from loadtest import procstat
from loadtest.db import database
from pika.bus.postgres import PgBus
from pika.config import SQL_DIR
from pika.db import open_database
from pika.queries import load_queries

RATES = (1_000, 2_000, 4_000, 8_000, 12_000, 16_000, 20_000, 25_000, 30_000, 40_000)
TICK = 0.01  # s between two sender transactions
LIMIT_MS = 50.0
DRAIN = 1.0  # s after a step for its last batches in flight; more is counted lost


class Latencies:
    """The receiver's subscriber: each frame carries its send time (CLOCK_MONOTONIC, system-wide)."""

    def __init__(self) -> None:
        self.ns: list[int] = []
        self.rereads = 0

    def deliver(self, session_id: str, frames: tuple[str, ...]) -> None:
        now = time.monotonic_ns()
        for text in frames:
            self.ns.append(now - int(text[5:-1]))  # {"t":<ns>}

    def reread(self, session_ids: Collection[str] | None) -> None:
        self.rereads += 1


def percentile(values: list[int], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] / 1e6


async def receive(url: str) -> None:
    """The receiver process: listen, and on each line from stdin answer the step's figures."""
    async with open_database(url, load_queries(SQL_DIR / "queries"), 2) as db:
        latencies = Latencies()
        bus = PgBus(url, db, latencies, "loadtest-receiver")
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            stdin = trio.lowlevel.FdStream(os.dup(0))
            print("ready", flush=True)
            buffered = b""
            while chunk := await stdin.receive_some():
                buffered += chunk
                while b"\n" in buffered:
                    _, buffered = buffered.split(b"\n", 1)
                    ns, latencies.ns = latencies.ns, []
                    cpu = procstat.read(os.getpid())
                    figures = {
                        "received": len(ns),
                        "rereads": latencies.rereads,
                        "p50_ms": percentile(ns, 0.50),
                        "p95_ms": percentile(ns, 0.95),
                        "p99_ms": percentile(ns, 0.99),
                        "cpu_s": cpu.cpu_s if cpu else math.nan,
                    }
                    print(json.dumps(figures), flush=True)
            nursery.cancel_scope.cancel()


def postmaster(url: str) -> int:
    """The PostgreSQL server's postmaster pid (the parent of a backend)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()  # benchmark probe, not Pika!'s SQL
    assert row is not None
    parent = _parent(row[0])
    assert parent is not None
    return parent


def postgres_cpu(server: int) -> dict[int, float]:
    """CPU seconds used so far by each of the PostgreSQL server's processes, by pid."""
    used = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (int(entry.name) == server or _parent(int(entry.name)) == server):
            snap = procstat.read(int(entry.name))
            if snap is not None:
                used[int(entry.name)] = snap.cpu_s
    return used


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the processes used between two readings (a process started meanwhile: all of
    its CPU; one that exited meanwhile is not counted: the sender's and receiver's backends stay)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


class Receiver:
    """The receiver process, asked for each step's figures over a pipe."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadtest.bus", "--receive", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the receiver did not start")

    def figures(self) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


async def send(bus: PgBus, rate: int, seconds: float, rooms: int) -> int:
    """Publish `rate` batches/s (one frame each, over `rooms` rooms) for `seconds`; returns how many."""
    sent = 0
    start = trio.current_time()
    while (elapsed := trio.current_time() - start) < seconds:
        due = int(rate * elapsed) - sent
        if due > 0:
            stamp = f'{{"t":{time.monotonic_ns()}}}'
            await bus.publish([(f"room-{(sent + n) % rooms}", [stamp]) for n in range(due)])
            sent += due
        await trio.sleep(TICK)
    return sent


async def run(url: str, rates: list[int], seconds: float, rooms: int) -> list[dict[str, Any]]:
    receiver = Receiver(url)
    steps = []
    try:
        async with open_database(url, load_queries(SQL_DIR / "queries"), 4) as db:
            bus = PgBus(url, db, Latencies(), "loadtest-sender")  # publishes only: no listener
            receiver.figures()  # zero the receiver's counts
            server = postmaster(url)
            for rate in rates:
                pg_before, host_before = postgres_cpu(server), procstat.host_cpu()
                receiver_before = receiver.figures()["cpu_s"]
                began = time.monotonic()
                sent = await send(bus, rate, seconds, rooms)
                await trio.sleep(DRAIN)
                wall = time.monotonic() - began
                got = receiver.figures()
                step = {
                    "rate": rate,
                    "sent_per_s": round(sent / seconds),
                    "received": got["received"],
                    "lost": sent - got["received"],
                    "rereads": got["rereads"],
                    "p50_ms": got["p50_ms"],
                    "p95_ms": got["p95_ms"],
                    "p99_ms": got["p99_ms"],
                    "pg_cpu_us_per_event": 1e6 * cpu_between(pg_before, postgres_cpu(server)) / max(1, sent),
                    "receiver_cpu_us_per_event": 1e6 * (got["cpu_s"] - receiver_before) / max(1, sent),
                    "machine_busy_percent": procstat.busy_percent(host_before, procstat.host_cpu()),
                    "wall_s": round(wall, 2),
                }
                steps.append(step)
                print(_row(step), file=sys.stderr, flush=True)
                if not step["p99_ms"] <= LIMIT_MS or step["sent_per_s"] < 0.9 * rate:
                    break  # past the limit, or the sender itself cannot keep the rate
    finally:
        receiver.close()
    return steps


HEADER = (
    f"{'rate/s':>8} {'sent/s':>8} {'lost':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    f" {'PG µs/ev':>9} {'recv µs/ev':>10} {'busy %':>7}"
)


def _row(s: dict[str, Any]) -> str:
    return (
        f"{s['rate']:>8,} {s['sent_per_s']:>8,} {s['lost']:>5} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f}"
        f" {s['p99_ms']:>8.2f} {s['pg_cpu_us_per_event']:>9.1f} {s['receiver_cpu_us_per_event']:>10.1f}"
        f" {s['machine_busy_percent'] if s['machine_busy_percent'] is not None else '?':>7}"
    )


def best_rate(steps: list[dict[str, Any]]) -> int | None:
    """The highest rate sent in full with p99 within the limit."""
    good = [s["sent_per_s"] for s in steps if s["p99_ms"] <= LIMIT_MS and s["sent_per_s"] >= 0.9 * s["rate"]]
    return max(good) if good else None


def _rates(raw: str) -> list[int]:
    try:
        rates = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("must be whole numbers separated by commas") from None
    if not rates or min(rates) < 1:
        raise argparse.ArgumentTypeError("must be positive rates, e.g. 1000,2000,4000")
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest bus", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", type=_rates, default=list(RATES), help="events/s per step, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per step (default 5)")
    parser.add_argument(
        "--rooms", type=int, default=100, help="rooms the batches are spread over (default 100)"
    )
    parser.add_argument(
        "--database-url", help="a database with the schema; default: a throwaway embedded one"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the steps as JSON")
    parser.add_argument("--receive", metavar="URL", help=argparse.SUPPRESS)  # the receiver process
    args = parser.parse_args(argv)
    if args.receive:
        trio.run(receive, args.receive)
        return 0
    if not 0 < args.seconds <= 600 or args.rooms < 1:
        parser.error("--seconds must be in (0, 600] and --rooms at least 1")
    load = os.getloadavg()
    with database(args.database_url) as (url, description):
        print(
            f"bus: {description}; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True
        )
        print(HEADER, file=sys.stderr, flush=True)
        steps = trio.run(run, url, args.rates, args.seconds, args.rooms)
    print(HEADER)
    for step in steps:
        print(_row(step))
    best = best_rate(steps)
    print(f"highest rate with p99 ≤ {LIMIT_MS:.0f} ms: {f'{best:,} events/s' if best else 'none'}")
    if args.json:
        args.json.write_text(
            json.dumps({"steps": steps, "best_rate": best}, indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
