"""Real processes for tests: `python -m pika serve` run the way ops do (waiting until it is
healthy), and PostgreSQL's process tree, to stall it with SIGSTOP as a hung database would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One server process on a fixed port; `stop()` sends a signal and waits for the exit code."""

    def __init__(self, env: dict[str, str], port: int, log: Path, args: tuple[str, ...] = ()) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pika", "serve", *args],
            env={
                "PIKA_LIVE_PORT": "0",
                **os.environ,
                **env,
                "PIKA_PORT": str(port),
                "PIKA_LOG_LEVEL": "INFO",
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @classmethod
    async def start(
        cls, env: dict[str, str], port: int, log: Path, timeout: float = 30.0, args: tuple[str, ...] = ()
    ) -> ServerProcess:
        server = cls(env, port, log, args)
        await server.wait_healthy(timeout)
        return server

    async def wait_healthy(self, timeout: float) -> None:
        with trio.fail_after(timeout):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode} before it was healthy")
                if await trio.to_thread.run_sync(self._healthy):
                    return
                await trio.sleep(0.1)

    def _healthy(self) -> bool:
        return self.health() is not None

    def health(self) -> dict[str, Any] | None:
        """/health's answer when the server is healthy (from whichever worker took the request)."""
        return self.health_at(self.url)

    @staticmethod
    def health_at(url: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                return json.loads(response.read()) if response.status == 200 else None
        except OSError:
            return None

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        self.proc.send_signal(sig)
        with trio.fail_after(timeout):
            while self.proc.poll() is None:
                await trio.sleep(0.05)
        self._log.close()
        return self.proc.returncode


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a running process from /proc; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state == "Z" else (state, int(ppid))


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))):
            parents[int(entry.name)] = stat[1]
    tree = [pid]
    for member in tree:
        tree.extend(child for child, parent in parents.items() if parent == member)
    return tree


@contextlib.contextmanager
def stalled(postmaster: int) -> Iterator[None]:
    """PostgreSQL frozen (postmaster and backends stopped): nothing answers, nothing fails.
    Resumed on exit, whatever happens (a test suite shares one cluster)."""
    frozen = process_tree(postmaster)
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def postmaster_pid(pgdata: Path) -> int:
    """The postmaster's pid, from the data directory's postmaster.pid."""
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
