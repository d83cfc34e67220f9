"""`python -m pika serve --workers N`: one supervisor and N worker processes on one host.

The supervisor starts the embedded PostgreSQL (when no URL is set) and applies migrations once,
binds the ports (pika/sockets.py), then runs N `python -m pika serve --worker I` children, each
with its own trio loop and its own slice of the connections.  A worker that dies is started
again after a backoff; SIGTERM or SIGINT stops them all (each closes its sockets with 1012).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import trio

from pika.backoff import reconnect_delay
from pika.config import Settings
from pika.server import database_url, migrate_database
from pika.sockets import REUSE_PORT, Listeners

log = logging.getLogger("pika.supervisor")

STEADY_SECONDS = 30.0  # a worker that ran this long starts its backoff afresh when it dies
STOP_SECONDS = 20.0  # after SIGTERM, a worker still running by then is killed


class Supervisor:
    def __init__(self, settings: Settings, *, migrate: bool) -> None:
        self.settings = settings
        self.migrate = migrate
        self.reuse_port = settings.reuse_port and REUSE_PORT
        self.stopping = False
        self.workers: dict[int, trio.Process] = {}

    async def run(self) -> None:
        s = self.settings
        async with database_url(s) as url:
            await migrate_database(url, s, apply=self.migrate)
            # With SO_REUSEPORT these sockets only hold the ports (free ports resolved once, for
            # every worker); without it they are the listeners every worker inherits.
            held = Listeners.bind(
                s.host, s.port, s.live_port, reuse_port=self.reuse_port, listen=not self.reuse_port
            )
            try:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async with trio.open_nursery() as nursery:
                        for index in range(s.workers):
                            nursery.start_soon(self._keep_running, index, url, held)
                        async for signum in signals:
                            log.info(
                                "stopping workers", extra={"fields": {"signal": signal.Signals(signum).name}}
                            )
                            break
                        await self._stop_all()
                        nursery.cancel_scope.cancel()
            finally:
                held.close()

    async def _keep_running(self, index: int, url: str, held: Listeners) -> None:
        failures = 0
        while not self.stopping:
            started = trio.current_time()
            proc = await trio.lowlevel.open_process(
                self._command(index, held),
                env=self._environment(index, url),
                pass_fds=() if self.reuse_port else held.fds(),
            )
            self.workers[index] = proc
            log.info("worker started", extra={"fields": {"worker": index, "pid": proc.pid}})
            code = await proc.wait()
            if self.stopping:
                return
            failures = 1 if trio.current_time() - started >= STEADY_SECONDS else failures + 1
            delay = reconnect_delay(failures)
            log.warning(
                "worker exited, starting it again",
                extra={
                    "fields": {"worker": index, "pid": proc.pid, "code": code, "in_seconds": round(delay, 2)}
                },
            )
            await trio.sleep(delay)

    def _command(self, index: int, held: Listeners) -> list[str]:
        http_port, live_port = held.ports
        command = [sys.executable, "-m", "pika", "serve", "--worker", str(index)]
        command += ["--host", self.settings.host, "--port", str(http_port), "--live-port", str(live_port)]
        if not self.reuse_port:
            http_fd, live_fd = held.fds()
            command += ["--http-fd", str(http_fd), "--live-fd", str(live_fd)]
        return command

    def _environment(self, index: int, url: str) -> dict[str, str]:
        """The supervisor's environment (the workers read the same settings), with the database
        it resolved and, when PIKA_PROCESS_NAME is set, a name per worker."""
        env = {**os.environ, "PIKA_DATABASE_URL": url}
        if self.settings.process_name:
            env["PIKA_PROCESS_NAME"] = f"{self.settings.process_name}/{index}"
        return env

    async def _stop_all(self) -> None:
        self.stopping = True
        running = [proc for proc in self.workers.values() if proc.returncode is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_SECONDS):
            for proc in running:
                await proc.wait()
        for proc in running:
            if proc.returncode is None:
                log.warning("worker did not stop in time: killed", extra={"fields": {"pid": proc.pid}})
                proc.kill()
                await proc.wait()


def worker_listeners(settings: Settings, http_fd: int | None, live_fd: int | None) -> Listeners:
    """A worker's sockets: inherited from the supervisor, else its own with SO_REUSEPORT."""
    if http_fd is not None and live_fd is not None:
        return Listeners.inherited(http_fd, live_fd)
    return Listeners.bind(settings.host, settings.port, settings.live_port, reuse_port=True)
