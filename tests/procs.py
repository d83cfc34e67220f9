"""Run `python -m pika serve` as a real process, the way ops do, and wait until it is healthy."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import trio


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One server process on a fixed port; `stop()` sends a signal and waits for the exit code."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pika", "serve"],
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
    async def start(cls, env: dict[str, str], port: int, log: Path, timeout: float = 30.0) -> ServerProcess:
        server = cls(env, port, log)
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
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        self.proc.send_signal(sig)
        with trio.fail_after(timeout):
            while self.proc.poll() is None:
                await trio.sleep(0.05)
        self._log.close()
        return self.proc.returncode
