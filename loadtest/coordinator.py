"""One run against one server: the worker pool, the /proc sampler, the progress line, the records.

Scenarios (scenarios.py) are written as a few phase calls on a `Run` — register the DJs,
connect dancers on a schedule, play a DJ schedule, settle, leave — and each phase waits for
the workers' replies within a bound.  At the end the raw records of every process come back
here, and the database is asked how many likes and votes it stored.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from loadtest.procstat import Sampler
from loadtest.roles import Action, DancerRecord, DjRecord
from loadtest.runner import Pool, WorkerSpec, nofile_limits
from loadtest.spawn import Target

FD_RESERVE = 128  # descriptors a process needs besides its sockets
PROGRESS_PLAIN_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


class DoesNotFit(Exception):
    """The requested size cannot be opened on this machine (descriptors or ports)."""


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers() -> int:
    """One dancer worker per core but one: the server under test needs a core of its own."""
    return max(1, usable_cpus() - 1)


def check_fits(dancers: int, djs: int, workers: int) -> dict[str, int]:
    """Raise the soft open-files limit to the hard one; refuse sizes that cannot fit."""
    soft, hard = nofile_limits()
    per_worker = math.ceil(dancers / workers) + FD_RESERVE
    if per_worker > hard:
        need = math.ceil(dancers / (hard - FD_RESERVE))
        raise DoesNotFit(
            f"{dancers} dancers need {per_worker} open files per worker with {workers} workers; "
            f"RLIMIT_NOFILE hard limit is {hard}: use --workers {need} or more"
        )
    if dancers + djs + FD_RESERVE > hard:
        raise DoesNotFit(
            f"{dancers + djs} connections do not fit: the server holds them all in one process and "
            f"RLIMIT_NOFILE hard limit is {hard} (at most {hard - FD_RESERVE} connections)"
        )
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low, high = map(int, f.read().split())
        ports = high - low + 1
    except (OSError, ValueError):
        ports = 28_000
    if dancers + djs > ports:
        raise DoesNotFit(f"{dancers + djs} connections to one port do not fit in {ports} ephemeral ports")
    return {"soft": soft, "hard": hard, "ephemeral_ports": ports}


@dataclass
class Raw:
    """Everything a run recorded, before any arithmetic."""

    dancers: list[DancerRecord] = field(default_factory=list)
    djs: list[DjRecord] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    worker_cpu: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    db: dict[str, Any] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)  # phase name -> wall-clock time
    lags: list[float] = field(default_factory=list)  # generator: read time - kernel arrival (s)
    rss_kb: dict[str, int] = field(default_factory=dict)  # phase name -> server RSS at its start


class Run:
    """A pool of workers aimed at `target`, with sessions named for this run."""

    def __init__(
        self, target: Target, *, rooms: int, dancers: int, workers: int, quiet: bool, seed: int, budget: float
    ) -> None:
        self.target = target
        self.run_id = secrets.token_hex(3)
        self.sessions = [f"loadtest_{self.run_id}_{k:04d}" for k in range(rooms)]
        self.dancers = dancers
        self.workers = max(1, min(workers, dancers or 1))
        self.quiet = quiet
        self.fits = check_fits(dancers, rooms, self.workers)
        self.server = Sampler(target.pid, tree=target.spawned)  # a supervisor: with its workers
        self.raw = Raw()
        self.phase = "start"
        self.started = time.monotonic()
        self._open: dict[int, int] = {}
        self._frames: dict[int, tuple[float, int, float]] = {}  # id -> (time, frames, rate)
        self._cpu: dict[int, list[tuple[float, float]]] = {}
        self._last_plain = 0.0
        self._tty = sys.stderr.isatty()
        specs = [
            WorkerSpec(i, "dancers", target.host, target.port, self.run_id, quiet, seed + i, budget)
            for i in range(self.workers)
        ]
        specs.append(
            WorkerSpec(self.workers, "djs", target.host, target.port, self.run_id, quiet, seed, budget)
        )
        self.dancer_ids = [s.id for s in specs if s.role == "dancers"]
        self.dj_id = self.workers
        self.pool = Pool(specs, self._progress)
        self.pool.gather([s.id for s in specs], "ready", 60, self.tick)

    # -- phases --------------------------------------------------------------------------------

    def mark(self, name: str) -> float:
        """Enter phase `name`: note the wall-clock time (returned) and the server's RSS."""
        self.phase = name
        now = time.time()
        self.raw.marks[name] = now
        snap = self.server.sample()
        if snap is not None:
            self.raw.rss_kb[name] = snap.rss_kb
        return now

    def register(self) -> None:
        self.mark("register")
        names = [(s, f"Loadtest DJ {k + 1}") for k, s in enumerate(self.sessions)]
        reply = self.pool.send_gather(
            [self.dj_id], "register", {"sessions": names}, "registered", 60, self.tick
        )
        failed = reply[self.dj_id]["failed"]
        if failed:
            first = next(iter(failed.items()))
            raise RuntimeError(f"{len(failed)} DJ(s) could not register, e.g. {first[0]}: {first[1]}")

    def connect(self, plan: list[tuple[int, float]], timeout: float) -> int:
        """Open dancers `plan` = [(index, monotonic time)]; dancer i joins session i mod rooms."""
        per_worker: list[list[tuple[int, str, float]]] = [[] for _ in self.dancer_ids]
        for index, t_at in plan:
            per_worker[index % self.workers].append((index, self.sessions[index % len(self.sessions)], t_at))
        args = [{"dancers": p} for p in per_worker]
        replies = self.pool.send_gather(self.dancer_ids, "connect", args, "connected", timeout, self.tick)
        return sum(r["ok"] for r in replies.values())

    def play(self, schedule: list[tuple[float, str, str]], timeout: float) -> dict[str, list[str]]:
        """Run a DJ schedule; returns the markers each session sent."""
        args = {"schedule": schedule}
        reply = self.pool.send_gather([self.dj_id], "play", args, "played", timeout, self.tick)
        return reply[self.dj_id]["sent"]

    def await_marker(self, marker: str, timeout: float) -> int:
        """Wait until every subscribed dancer has the DJ event `marker`; returns how many lack it."""
        replies = self.pool.send_gather(
            self.dancer_ids,
            "await",
            {"marker": marker, "timeout": timeout},
            "arrived",
            timeout + 10,
            self.tick,
        )
        return sum(r["missing"] for r in replies.values())

    def settle(self, quiet_for: float, timeout: float) -> bool:
        ids = [*self.dancer_ids, self.dj_id]
        args = {"quiet_for": quiet_for, "timeout": timeout}
        replies = self.pool.send_gather(ids, "settle", args, "settled", timeout + 10, self.tick)
        return all(r["calm"] for r in replies.values())

    def leave(self, plan: list[tuple[int, float]], timeout: float) -> None:
        per_worker: list[list[tuple[int, float]]] = [[] for _ in self.dancer_ids]
        for index, t_at in plan:
            per_worker[index % self.workers].append((index, t_at))
        args = [{"dancers": p} for p in per_worker]
        self.pool.send_gather(self.dancer_ids, "leave", args, "left", timeout, self.tick)

    def end_sessions(self) -> None:
        self.mark("end")
        self.pool.send_gather([self.dj_id], "end", {}, "ended", 40, self.tick)

    def finish(self) -> Raw:
        """Collect every worker's records, count the database, stop the pool."""
        self.mark("results")
        try:
            ids = [*self.dancer_ids, self.dj_id]
            replies = self.pool.send_gather(ids, "results", {}, "results", 120, self.tick)
        finally:
            self.pool.close()
            self._clear_line()
        for i, reply in replies.items():
            name = "dj" if i == self.dj_id else f"worker {i}"
            self.raw.worker_cpu[name] = reply["cpu"]
            if i == self.dj_id:
                self.raw.djs = reply["djs"]
            else:
                self.raw.dancers += reply["dancers"]
                self.raw.actions += reply["actions"]
                self.raw.lags += reply["lags"]
        self.raw.dancers.sort(key=lambda d: d.index)
        self.raw.db = count_database(self.target.database_url, self.sessions)
        return self.raw

    def abort(self) -> None:
        self.pool.close()
        self._clear_line()

    def worker_cpu(self, since: float, until: float) -> dict[str, list[float]]:
        """Each worker's one-second CPU samples (% of a core) taken within [since, until]."""
        return {
            "dj" if i == self.dj_id else f"worker {i}": [pct for t, pct in samples if since <= t <= until]
            for i, samples in sorted(self._cpu.items())
        }

    # -- progress --------------------------------------------------------------------------------

    def _progress(self, p: dict[str, Any]) -> None:
        i = p["id"]
        self._open[i] = p["open"]
        self._cpu.setdefault(i, []).append((time.time(), p["cpu"]))
        now = time.monotonic()
        then, frames, _ = self._frames.get(i, (now, p["frames"], 0.0))
        rate = (p["frames"] - frames) / (now - then) if now > then else 0.0
        self._frames[i] = (now, p["frames"], rate)

    def tick(self) -> None:
        """About once a second: sample the server, print the progress line."""
        snap = self.server.sample()
        now = time.monotonic()
        if not self._tty and now - self._last_plain < PROGRESS_PLAIN_EVERY:
            return
        self._last_plain = now
        dancers_open = sum(v for k, v in self._open.items() if k != self.dj_id)
        rate = sum(v[2] for v in self._frames.values())
        cpu = self.server.cpu_percent(since=time.time() - 2.5)
        server = f"server {cpu[-1]:3.0f}% {snap.rss_kb / 1024:6.1f} MB" if snap and cpu else "server  n/a"
        line = (
            f"[{now - self.started:6.1f}s] {self.phase:<9} open {dancers_open:>6}/{self.dancers:<6} "
            f"rx {rate:>8,.0f}/s  {server}"
        )
        if self._tty:
            sys.stderr.write("\r" + line.ljust(100)[:100])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def _clear_line(self) -> None:
        if self._tty:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def count_database(url: str | None, sessions: list[str]) -> dict[str, Any]:
    """Likes and poll votes stored for this run's sessions (None when the database is unknown)."""
    if not url:
        return {"likes": None, "votes": None, "note": "no database URL (give --database-url)"}
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            likes = conn.execute(
                "SELECT count(*) FROM likes WHERE session_id = ANY(%s)", (sessions,)
            ).fetchone()
            votes = conn.execute(
                "SELECT count(*) FROM poll_votes v JOIN polls p ON p.id = v.poll_id"
                " WHERE p.session_id = ANY(%s)",
                (sessions,),
            ).fetchone()
        return {"likes": likes[0] if likes else None, "votes": votes[0] if votes else None}
    except Exception as exc:  # the figures are optional; the run is not
        return {"likes": None, "votes": None, "note": f"database not counted: {type(exc).__name__}: {exc}"}
