"""One helper process beside the worker pool: the flooder (`flood`) or the login clients (`logins`).

It is a process of its own so that its work (1,000 frames a second each way, or twenty HTTP
clients) neither runs in a dancer worker, where it would delay the reads being measured, nor in
the DJ's.  The coordinator sends it commands over a pipe and waits for each reply within a
bound; the process exits by itself after `max_seconds` whatever happens.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from loadtest.runner import WorkerFailed

#: the body of a side process: (its arguments, its end of the pipe); it answers commands until told
#: to stop.  Must be a module-level function (the process is spawned).
SideMain = Callable[[dict[str, Any], Connection], None]


def _entry(main: SideMain, args: dict[str, Any], pipe: Connection) -> None:
    try:
        main(args, pipe)
    except Exception:
        with contextlib.suppress(OSError):
            pipe.send(("error", traceback.format_exc()))
    finally:
        pipe.close()


#: what a side process does for one command: its arguments -> (reply name, reply payload)
Handler = Callable[[dict[str, Any]], tuple[str, Any]]


def answer_commands(pipe: Connection, max_seconds: float, handlers: dict[str, Handler]) -> None:
    """A side process's loop: answer each command with its handler until 'stop', a closed pipe or
    `max_seconds`."""
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        if not pipe.poll(0.25):
            continue
        try:
            name, cmd = pipe.recv()
        except EOFError:
            return
        if name == "stop":
            return
        pipe.send(handlers[name](cmd))


class Side:
    """The coordinator's handle on one side process."""

    def __init__(self, name: str, main: SideMain, args: dict[str, Any]) -> None:
        ctx = mp.get_context("spawn")
        self.name = name
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=_entry, args=(main, args, child), name=f"loadtest-{name}")
        self.process.daemon = True
        self.process.start()
        child.close()

    def send(self, name: str, args: dict[str, Any] | None = None) -> None:
        self.pipe.send((name, args or {}))

    def wait(self, reply: str, timeout: float, tick: Callable[[], None] = lambda: None) -> Any:
        """The payload of the next `reply`; anything else, an error, death or silence raises."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerFailed(f"the {self.name} did not answer {reply!r} within {timeout:.0f} s")
            tick()
            if not self.pipe.poll(min(1.0, left)):
                continue
            try:
                name, payload = self.pipe.recv()
            except EOFError:
                raise WorkerFailed(f"the {self.name} died (exit code {self.process.exitcode})") from None
            if name == "error":
                raise WorkerFailed(f"the {self.name} failed:\n{payload}")
            if name != reply:
                raise WorkerFailed(f"the {self.name} answered {name!r} instead of {reply!r}")
            return payload

    def call(
        self,
        name: str,
        args: dict[str, Any],
        reply: str,
        timeout: float,
        tick: Callable[[], None] = lambda: None,
    ) -> Any:
        self.send(name, args)
        return self.wait(reply, timeout, tick)

    def close(self) -> None:
        """Ask it to stop; terminate it after 5 s."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.pipe.send(("stop", {}))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        self.pipe.close()
