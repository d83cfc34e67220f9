"""Worker processes and the pool that drives them: the generator is spread over cores.

One process cannot both host thousands of dancers and stay cheaper than the server it
measures, so dancers live in several worker processes (one `loop.Loop` each) and the DJs in one
more, so that a busy dancer worker never delays a DJ's send or its receipt of LIKE_RECEIVED.
The coordinator (scenarios.py) sends commands over a pipe and waits for each reply; workers
report progress (open sockets, frames, their own CPU) every second.  Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from loadtest.loop import READ, Loop
from loadtest.pacer import Pacer
from loadtest.roles import Dancer, Dj, Shared

PROGRESS_EVERY = 1.0
CONNECT_SLACK = 20.0  # a dancer still not subscribed this long after its turn has failed
ANSWER_SLACK = 20.0
DRAIN = 5.0  # capacity: answers still missing this long after a step's last send count as unanswered


@dataclass(frozen=True)
class WorkerSpec:
    id: int
    role: str  # "dancers" or "djs"
    host: str
    port: int
    run_id: str
    quiet: bool
    seed: int
    max_seconds: float  # the worker exits by itself after this long, whatever happens
    in_flight: int = 64  # handshakes at once per worker: hypercorn's listen backlog is 100


class WorkerFailed(RuntimeError):
    """A worker died, raised, or did not answer in time."""


def nofile_limits() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (inherited by children); return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- inside a worker -------------------------------------------------------------------------


class _Worker:
    """Command handling shared by both roles; `busy()` says whether anything is still in flight."""

    def __init__(self, spec: WorkerSpec, pipe: Connection, loop: Loop) -> None:
        self.spec = spec
        self.pipe = pipe
        self.loop = loop
        self.shared = Shared(loop, spec.host, spec.port, spec.quiet, random.Random(spec.seed))
        self.stopped = False
        self.cpu_samples: list[tuple[float, float]] = []  # (wall-clock time, CPU % of one core)
        self._last_cpu = (time.time(), cpu_seconds())
        loop.add(pipe.fileno(), READ, self._on_pipe)
        loop.call_later(PROGRESS_EVERY, self._progress)

    def reply(self, name: str, payload: Any = None) -> None:
        self.pipe.send((name, payload))

    def _on_pipe(self, events: int) -> None:
        while not self.stopped and self.pipe.poll():
            try:
                name, args = self.pipe.recv()
            except EOFError:  # the coordinator is gone
                self.stopped = True
                return
            getattr(self, "cmd_" + name)(**args)

    def _progress(self) -> None:
        now, cpu = time.time(), cpu_seconds()
        then, cpu_then = self._last_cpu
        percent = 100.0 * (cpu - cpu_then) / max(1e-6, now - then)
        self._last_cpu = (now, cpu)
        self.cpu_samples.append((now, percent))
        self.reply(
            "progress",
            {"id": self.spec.id, "open": self.shared.open, "frames": self.shared.frames, "cpu": percent},
        )
        self.loop.call_later(PROGRESS_EVERY, self._progress)

    def _when(
        self, done: Callable[[], bool], reply: str, deadline: float, payload: Callable[[], Any]
    ) -> None:
        """Reply once `done()` holds (checked every 50 ms) or at `deadline`, whichever comes first."""

        def check() -> None:
            if done() or time.monotonic() >= deadline:
                self.reply(reply, payload())
            else:
                self.loop.call_later(0.05, check)

        check()

    def busy(self) -> bool:
        raise NotImplementedError

    def cmd_settle(self, quiet_for: float, timeout: float) -> None:
        """Answer when nothing is in flight and no frame arrived for `quiet_for` s (or at timeout)."""

        def calm() -> bool:
            return not self.busy() and time.time() - self.shared.last_frame >= quiet_for

        self._when(calm, "settled", time.monotonic() + timeout, lambda: {"calm": calm()})

    def cmd_stop(self) -> None:
        self.stopped = True


class _DancerWorker(_Worker):
    def __init__(self, spec: WorkerSpec, pipe: Connection, loop: Loop) -> None:
        super().__init__(spec, pipe, loop)
        self.dancers: dict[int, Dancer] = {}
        # (t_at, index, session) of dancers not started yet, latest first: started from the end
        self._queue: list[tuple[float, int, str]] = []
        self._in_flight = 0
        self._pump_at: float | None = None
        self._pacer: Pacer | None = None

    def busy(self) -> bool:
        return self.shared.scheduled > 0 or any(d.waiting for d in self.dancers.values())

    def cmd_connect(self, dancers: list[tuple[int, str, float]]) -> None:
        """Open these dancers, each not before its time, at most `in_flight` handshakes at once."""
        batch = []
        for index, session, t_at in dancers:
            dancer = Dancer(self.shared, index, session, self.spec.run_id, self._settled)
            self.dancers[index] = dancer
            batch.append(dancer)
            self._queue.append((t_at, index, session))
        self._queue.sort(reverse=True)
        self._pump()
        last = max((t for _, _, t in dancers), default=time.monotonic())
        deadline = last + CONNECT_SLACK + len(dancers) / 200

        def done() -> bool:
            return all(d.rec.t_subscribed is not None or d.rec.t_closed is not None for d in batch)

        def summary() -> dict[str, int]:
            self._give_up(batch)
            ok = sum(1 for d in batch if d.rec.t_subscribed is not None and d.rec.t_closed is None)
            return {"ok": ok, "failed": len(batch) - ok}

        self._when(done, "connected", deadline, summary)

    def _give_up(self, batch: list[Dancer]) -> None:
        """At the connect deadline: whoever is not subscribed fails now and never joins later."""
        now = time.time()
        late = {d.rec.index for d in batch if d.rec.t_subscribed is None and d.rec.t_closed is None}
        if not late:
            return
        self._queue = [entry for entry in self._queue if entry[1] not in late]
        for index in late:
            started = self.dancers[index].rec.t_start is not None
            reason = (
                "not subscribed when the connect phase ended"
                if started
                else "never started: connect phase over"
            )
            self.dancers[index].give_up(reason, now)

    def cmd_await(self, marker: str, timeout: float) -> None:
        """Answer once every subscribed dancer has received `marker` (or at timeout)."""

        def missing() -> int:
            return sum(1 for d in self.dancers.values() if d.active and marker not in d.rec.received)

        self._when(
            lambda: missing() == 0, "arrived", time.monotonic() + timeout, lambda: {"missing": missing()}
        )

    def _settled(self) -> None:
        self._in_flight -= 1
        self.loop.call_later(0, self._pump)  # not re-entrantly: a failed start settles inside _pump

    def _pump(self) -> None:
        now = time.monotonic()
        queue = self._queue
        while queue and queue[-1][0] <= now and self._in_flight < self.spec.in_flight:
            _, index, _ = queue.pop()
            self._in_flight += 1
            self.dancers[index].start(time.time())
        if queue and self._in_flight < self.spec.in_flight:
            head = queue[-1][0]
            if self._pump_at is None or self._pump_at > head or self._pump_at < now:
                self._pump_at = head
                self.loop.call_at(head, self._pump_timer)

    def _pump_timer(self) -> None:
        self._pump_at = None
        self._pump()

    def cmd_leave(self, dancers: list[tuple[int, float]]) -> None:
        for index, t_at in dancers:
            dancer = self.dancers[index]
            self.loop.call_at(t_at, lambda d=dancer: d.leave(time.time()))
        group = [self.dancers[i] for i, _ in dancers]
        last = max((t for _, t in dancers), default=time.monotonic())

        def done() -> bool:
            return all(d.rec.t_closed is not None for d in group)

        self._when(done, "left", last + 10.0, lambda: {"open": sum(d.rec.t_closed is None for d in group)})

    def cmd_step(self, start_at: float, seconds: float, rate: float, tracks: int) -> None:
        """capacity: `rate` frames/s from the subscribed dancers for `seconds` from `start_at`.
        Replies 'sent' after the last send, then 'stepped' with the figures once every frame is
        answered (or DRAIN s later)."""
        if self._pacer is None:  # the dancers subscribed by the first step send in every step
            self._pacer = Pacer(self.shared, list(self.dancers.values()), tracks)
        pacer = self._pacer
        pacer.start(start_at, seconds, rate)

        def sent() -> dict[str, int]:
            pacer.stop()
            drained = time.monotonic() + DRAIN
            self.loop.call_later(
                0, lambda: self._when(lambda: pacer.unanswered() == 0, "stepped", drained, pacer.collect)
            )
            return {"sent": len(pacer.lateness)}

        self._when(lambda: not pacer.sending, "sent", start_at + 2 * seconds + 10, sent)

    def cmd_results(self) -> None:
        for dancer in self.dancers.values():  # anything still open is closed without ceremony
            if dancer.rec.t_closed is None:
                dancer.leave(time.time())
        self.reply(
            "results",
            {
                "dancers": [d.rec for d in self.dancers.values()],
                "actions": self.shared.actions,
                "cpu": self.cpu_samples,
                "lags": self.shared.lags,
            },
        )
        self.stopped = True


class _DjWorker(_Worker):
    def __init__(self, spec: WorkerSpec, pipe: Connection, loop: Loop) -> None:
        super().__init__(spec, pipe, loop)
        self.djs: dict[str, Dj] = {}
        self._plan_left = 0

    def busy(self) -> bool:
        return self._plan_left > 0 or any(dj.waiting for dj in self.djs.values())

    def cmd_register(self, sessions: list[tuple[str, str]]) -> None:
        waiting = {"n": len(sessions)}

        def registered() -> None:
            waiting["n"] -= 1

        for session, name in sessions:
            dj = Dj(self.shared, session, name, registered)
            self.djs[session] = dj
            dj.start()

        def summary() -> dict[str, Any]:
            failed = {
                s: dj.rec.error or "no answer" for s, dj in self.djs.items() if dj.rec.t_registered is None
            }
            return {"ok": len(self.djs) - len(failed), "failed": failed}

        self._when(lambda: waiting["n"] <= 0, "registered", time.monotonic() + CONNECT_SLACK, summary)

    def cmd_play(self, schedule: list[tuple[float, str, str]]) -> None:
        """`schedule`: (monotonic time, session, action), the action a key of `actions` below."""
        self._plan_left += len(schedule)
        actions = {
            "track": Dj.play_track,
            "poll": Dj.start_poll,
            "end_poll": Dj.end_poll,
            "announce": Dj.announce,
            "push_announce": Dj.push_announce,
        }
        for t_at, session, action in schedule:
            self.loop.call_at(t_at, lambda s=session, a=actions[action]: self._fire(s, a))
        last = max((t for t, _, _ in schedule), default=time.monotonic())
        before = {s: len(dj.rec.events) for s, dj in self.djs.items()}

        def outcome() -> dict[str, Any]:
            sent = {s: list(dj.rec.events)[before[s] :] for s, dj in self.djs.items()}
            refused = {
                m: error for s, dj in self.djs.items() for m in sent[s] if (error := dj.rec.events[m].error)
            }
            return {"busy": self.busy(), "sent": sent, "refused": refused}

        self._when(lambda: not self.busy(), "played", last + ANSWER_SLACK, outcome)

    def _fire(self, session: str, action: Callable[[Dj], None]) -> None:
        self._plan_left -= 1
        action(self.djs[session])

    def cmd_end(self) -> None:
        for dj in self.djs.values():
            dj.end_poll()
            dj.end_session()

        def close_all() -> dict[str, Any]:
            for dj in self.djs.values():
                dj.close()
            return {}

        self._when(lambda: not self.busy(), "ended", time.monotonic() + ANSWER_SLACK, close_all)

    def cmd_results(self) -> None:
        for dj in self.djs.values():
            dj.close()
        self.reply("results", {"djs": [dj.rec for dj in self.djs.values()], "cpu": self.cpu_samples})
        self.stopped = True


def worker_main(spec: WorkerSpec, pipe: Connection) -> None:
    """A worker process: serve commands until told to stop, the pipe closes, or time runs out."""
    try:
        nofile_limits()
        loop = Loop()
        worker: _Worker = (_DjWorker if spec.role == "djs" else _DancerWorker)(spec, pipe, loop)
        worker.reply("ready", {"id": spec.id, "pid": os.getpid()})
        deadline = time.monotonic() + spec.max_seconds
        while not worker.stopped and time.monotonic() < deadline:
            loop.run_once(0.25)
        # give closing handshakes a moment so the server sees clean closes
        loop.run_until(lambda: False, time.monotonic() + 0.3, tick=0.05)
    except Exception:
        pipe.send(("error", traceback.format_exc()))
    finally:
        pipe.close()


# -- the coordinator's side ------------------------------------------------------------------


class Pool:
    """The worker processes; `send` a command to some, `gather` their replies within a timeout."""

    def __init__(self, specs: list[WorkerSpec], on_progress: Callable[[dict[str, Any]], None]) -> None:
        ctx = mp.get_context("spawn")
        self.specs = {spec.id: spec for spec in specs}
        self.pipes: dict[int, Connection] = {}
        self.processes: dict[int, Any] = {}
        self.pids: dict[int, int] = {}
        self._on_progress = on_progress
        self._mail: dict[tuple[int, str], Any] = {}  # replies that arrived while waiting for others
        self._gone: set[int] = set()
        for spec in specs:
            parent, child = ctx.Pipe()
            process = ctx.Process(
                target=worker_main, args=(spec, child), name=f"loadtest-{spec.role}-{spec.id}"
            )
            process.daemon = True
            process.start()
            child.close()
            self.pipes[spec.id] = parent
            self.processes[spec.id] = process

    def ids(self, role: str) -> list[int]:
        return [i for i, spec in self.specs.items() if spec.role == role]

    def send(
        self, ids: list[int], name: str, args: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> None:
        """Send one command; `args` may be a list with one dict per id."""
        for n, i in enumerate(ids):
            one = args[n] if isinstance(args, list) else (args or {})
            self.pipes[i].send((name, one))

    def gather(
        self, ids: list[int], reply: str, timeout: float, tick: Callable[[], None] = lambda: None
    ) -> dict[int, Any]:
        """Wait for `reply` from every worker in `ids`; meanwhile read every pipe (progress must
        never back up and block a worker) and call `tick` about once a second."""
        deadline = time.monotonic() + timeout
        got = {i: self._mail.pop((i, reply)) for i in ids if (i, reply) in self._mail}
        last_tick = 0.0
        while len(got) < len(ids):
            now = time.monotonic()
            if now >= deadline:
                missing = sorted(set(ids) - set(got))
                raise WorkerFailed(f"workers {missing} did not answer {reply!r} within {timeout:.0f} s")
            if now - last_tick >= PROGRESS_EVERY:
                tick()
                last_tick = now
            by_pipe = {id(pipe): i for i, pipe in self.pipes.items() if i not in self._gone}
            ready = wait([self.pipes[i] for i in by_pipe.values()], timeout=min(0.25, deadline - now))
            for pipe in ready:
                i = by_pipe[id(pipe)]
                try:
                    name, payload = pipe.recv()
                except EOFError:
                    self._gone.add(i)
                    if i in ids and i not in got:
                        code = self.processes[i].exitcode
                        raise WorkerFailed(f"worker {i} died (exit code {code})") from None
                    continue
                if name == "progress":
                    self._on_progress(payload)
                elif name == "error":
                    raise WorkerFailed(f"worker {i} failed:\n{payload}")
                elif name == reply and i in ids:
                    got[i] = payload
                else:
                    self._mail[(i, name)] = payload
                if name == "ready":
                    self.pids[i] = payload["pid"]
        return got

    def send_gather(
        self,
        ids: list[int],
        name: str,
        args: dict[str, Any] | list[dict[str, Any]],
        reply: str,
        timeout: float,
        tick: Callable[[], None] = lambda: None,
    ) -> dict[int, Any]:
        self.send(ids, name, args)
        return self.gather(ids, reply, timeout, tick)

    def close(self) -> None:
        """Ask every worker still running to stop, then reap them (terminate after 5 s)."""
        for i, pipe in self.pipes.items():
            if i not in self._gone and self.processes[i].is_alive():
                with contextlib.suppress(OSError):
                    pipe.send(("stop", {}))
        for i, process in self.processes.items():
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            self.pipes[i].close()
