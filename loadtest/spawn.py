"""Start the server under test as a subprocess, so that one command runs a whole scenario.

`python -m pika serve` (or `serve --workers N`, each worker's /metrics on a port of its own) gets
a throwaway PIKA_DATA_DIR (its embedded PostgreSQL lives there), free loopback ports (HTTP and
the live listener, whose /ws the clients open unless told `--transport asgi`), and per-IP and
per-client limits raised: every simulated dancer connects from 127.0.0.1, where a real venue's
phones would share one public IP only in part.  The yardstick (`python -m loadtest.yardstick`)
is started the same way for `compare`.  Each child is asked (Linux's PR_SET_PDEATHSIG) to get
SIGTERM, its own orderly stop, should the load test die without stopping it (SIGKILL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
#: Limits that would refuse a load test from one IP, raised (names from pika.config.Settings).
#: Per-IP limits go out of the way (every dancer is 127.0.0.1); per-client ones only far enough
#: that the --quick cadence (a track every 5 s) cannot trip them, so their cost is still paid.
RAISED_LIMITS = {
    "PIKA_WS_CONNECTS_PER_IP": str(10**7),
    "PIKA_WS_OPEN_PER_IP": str(10**7),
    "PIKA_TRACK_BURST": "1000",
    "PIKA_TRACK_RATE": "1000",
    "PIKA_LIKES_PER_MINUTE": "10000",
    "PIKA_BULK_LIKES_PER_MINUTE": "10000",
    "PIKA_TEMPO_PER_MINUTE": "10000",
    "PIKA_REACTIONS_PER_WINDOW": "10000",
}


@dataclass
class Target:
    """The server a run talks to: where it listens, which process to watch, where its data is."""

    name: str  # "pika" or "yardstick"
    host: str
    port: int  # where dancers and DJs open /ws
    pid: int | None = None
    database_url: str | None = None
    spawned: bool = False
    log: Path | None = None
    http_port: int | None = None  # HTTP (logins), when not `port`
    server_workers: int = 1  # processes serving the ports (`serve --workers N`: N, the supervisor aside)
    metrics_ports: tuple[int, ...] = ()  # each worker's own /metrics, when there are several
    postgres_pid: int | None = None  # the spawned server's embedded PostgreSQL (its postmaster)

    @property
    def http(self) -> int:
        return self.http_port or self.port

    @property
    def scraped(self) -> tuple[int, ...]:
        """Where every serving process's /metrics is read: one port per worker, or the HTTP port."""
        return self.metrics_ports or (self.http,)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> int:
    """The first of `n` consecutive free loopback ports (PIKA_METRICS_PORT: worker I takes port + I)."""
    for _ in range(50):
        first = free_port()
        if first + n <= 65536 and all(_free(first + k) for k in range(1, n)):
            return first
    raise RuntimeError(f"found no {n} consecutive free ports on {HOST}")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def parse_url(url: str) -> tuple[str, int]:
    """`http://127.0.0.1:3001`, or a `ws://…/ws` (the live port or the HTTP port) → (host, port);
    only loopback is allowed."""
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise ValueError(f"--url {url!r}: the load test only targets 127.0.0.1:<port>")
    return "127.0.0.1", int(port)


@contextlib.contextmanager
def pika_server(
    max_sessions: int, extra_env: dict[str, str] | None = None, transport: str = "live", workers: int = 1
) -> Iterator[Target]:
    """`python -m pika serve` on free ports with a fresh embedded PostgreSQL; stopped on exit.
    Clients open the live listener's /ws, or with `transport="asgi"` the plain one on the HTTP port.
    `workers` > 1: `serve --workers N`, ready once every worker's /health answers."""
    tmp = Path(tempfile.mkdtemp(prefix="pika-loadtest-"))
    port, live_port = free_port(), free_port()
    metrics = free_ports(workers) if workers > 1 else None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIKA_")}
    env.update(RAISED_LIMITS)
    env.update(
        {
            "PIKA_DATA_DIR": str(tmp / "data"),
            "PIKA_HOST": HOST,
            "PIKA_PORT": str(port),
            "PIKA_LIVE_PORT": str(live_port),
            "PIKA_LOG_LEVEL": "WARNING",
            "PIKA_MAX_SESSIONS": str(max(1000, max_sessions + 10)),
        }
    )
    env.update(extra_env or {})
    argv = [sys.executable, "-m", "pika", "serve"]
    ports: tuple[int, ...] = ()
    if metrics is not None:
        env["PIKA_METRICS_PORT"] = str(metrics)
        argv += ["--workers", str(workers)]
        ports = tuple(metrics + k for k in range(workers))
    log = tmp / "server.log"
    try:
        with _process(argv, env, log) as proc:
            for p in ports or (port,):
                _wait_http(f"http://{HOST}:{p}/health", proc, log)
            pgdata = tmp / "data" / "pgdata"
            yield Target(
                "pika",
                HOST,
                live_port if transport == "live" else port,
                proc.pid,
                _database_url(pgdata),
                spawned=True,
                log=log,
                http_port=port,
                server_workers=workers,
                metrics_ports=ports,
                postgres_pid=_postmaster(pgdata),
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def yardstick_server() -> Iterator[Target]:
    """`python -m loadtest.yardstick` on a free port; stopped on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="pika-yardstick-"))
    port = free_port()
    log = tmp / "yardstick.log"
    try:
        with _process(
            [sys.executable, "-m", "loadtest.yardstick", "--port", str(port)], dict(os.environ), log
        ) as proc:
            _wait_tcp(port, proc, log)
            yield Target("yardstick", HOST, port, proc.pid, None, spawned=True, log=log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    cwd = Path(__file__).resolve().parents[1]  # the checkout: `loadtest` importable in the child
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH", "")]))}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, preexec_fn=_die_with_parent()
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # graceful: closes sockets 1012, stops PostgreSQL
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """For `preexec_fn`: the child gets SIGTERM when this process dies, however it dies (strictly,
    when the thread that started it ends: `python -m loadtest` starts servers from its main thread).

    The kernel's own guarantee, needing nothing of the child: `pika serve` stops as on any SIGTERM
    (closes its sockets, stops its embedded PostgreSQL).  Only the temporary directory is left
    behind then.  `prctl` is looked up here, before the fork, so that the child only calls it.
    Elsewhere than Linux: None (the orderly stop on SIGTERM/Ctrl-C still applies)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def request() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return request


def _failed(what: str, proc: subprocess.Popen[bytes], log: Path) -> RuntimeError:
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    return RuntimeError(f"{what} (exit code {proc.poll()}); its output ends:\n{tail}")


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _failed("the spawned server exited", proc, log)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise _failed(f"the spawned server did not answer {url} within {START_TIMEOUT:.0f} s", proc, log)


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _failed("the yardstick exited", proc, log)
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise _failed(f"the yardstick did not listen on {port} within {START_TIMEOUT:.0f} s", proc, log)


def _database_url(pgdata: Path) -> str | None:
    """The embedded PostgreSQL's URL, from the socket directory its postmaster.pid names."""
    lines = _postmaster_lines(pgdata)
    if len(lines) < 5 or not lines[4].strip():
        return None
    return f"postgresql://postgres:@/postgres?host={lines[4].strip()}"


def _postmaster(pgdata: Path) -> int | None:
    """The embedded PostgreSQL's postmaster pid (the first line of its postmaster.pid)."""
    lines = _postmaster_lines(pgdata)
    return int(lines[0]) if lines and lines[0].strip().isdigit() else None


def _postmaster_lines(pgdata: Path) -> list[str]:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return []
