"""`python -m pika serve --workers 2`: two real worker processes behind one HTTP and one live port,
with SO_REUSEPORT and with the inherited-socket fallback; a killed worker is started again."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.request import urlopen

import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.procs import ServerProcess, free_port, proc_stat
from tests.test_admin import admin
from tests.wsclient import Peer, connect, go_live, until


async def pids_answering(server: ServerProcess, want: int, without: frozenset[int] = frozenset()) -> set[int]:
    """Ask /health over new connections until `want` different worker pids (not in `without`) answered."""
    seen: set[int] = set()

    async def enough() -> bool:
        health = await trio.to_thread.run_sync(server.health)
        if health is not None:
            assert health["process"].endswith(f":{health['pid']}")  # hostname:pid by default
            seen.add(health["pid"])
        return len(seen - without) >= want

    await until(enough, 30)
    return seen - without


def ports() -> tuple[int, int, int]:
    """Free ports for HTTP, live, and the first of two free metrics ports in a row (one per worker)."""
    http, live = free_port(), free_port()
    while True:
        first = free_port()
        if {first, first + 1}.isdisjoint({http, live}):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", first + 1))
                except OSError:
                    continue
            return http, live, first


async def pong(peer: Peer) -> None:
    await peer.send("PING")
    await peer.recv_type("PONG")


@pytest.mark.parametrize("reuse_port", ["1", "0"], ids=["so_reuseport", "inherited_socket"])
async def test_two_workers_share_the_ports_and_a_killed_one_is_replaced(
    db_url: str, tmp_path: Path, reuse_port: str
) -> None:
    http_port, live_port, metrics_port = ports()  # worker 0 adds metrics_port, worker 1 the next one
    env = {
        "PIKA_DATABASE_URL": db_url,
        "PIKA_LIVE_PORT": str(live_port),
        "PIKA_REUSE_PORT": reuse_port,
        "PIKA_METRICS_PORT": str(metrics_port),
    }
    server = await ServerProcess.start(env, http_port, tmp_path / "server.log", args=("--workers", "2"))
    try:
        workers = [await worker_health(metrics_port, n) for n in (0, 1)]  # each on its own port too
        first, second = workers[0]["pid"], workers[1]["pid"]
        assert first != second
        for pid in (first, second):
            assert proc_stat(pid)[1] == server.proc.pid  # both are the supervisor's children
        if reuse_port == "1":  # the kernel spreads new connections over both sockets
            assert await pids_answering(server, 2) == {first, second}
        scrape = await trio.to_thread.run_sync(lambda: urlopen(server.url + "/metrics", timeout=5).read())
        answered = re.search(rb'pika_process_info\{pid="(\d+)",process="[^"]+:(\d+)"\} 1', scrape)
        assert answered and answered[1] == answered[2] and int(answered[1]) in (first, second)

        async with AsyncExitStack() as stack:
            dancers: list[Peer] = [await stack.enter_async_context(connect(server.url)) for _ in range(12)]
            for dancer in dancers:
                await pong(dancer)
            on_first = (await worker_health(metrics_port, 0))["connections"]
            assert on_first + (await worker_health(metrics_port, 1))["connections"] == 12
            os.kill(first, signal.SIGKILL)
            replacement = await worker_health(metrics_port, 0, not_pid=first)
            assert proc_stat(replacement["pid"])[1] == server.proc.pid

            # The killed worker's clients were dropped; they reconnect, and are served.
            dropped = 0
            for dancer in dancers:
                try:
                    await pong(dancer)
                except ConnectionClosed:
                    dropped += 1
                    async with connect(server.url) as again:
                        await pong(again)
            assert dropped == on_first  # exactly the killed worker's
    finally:
        code = await server.stop(signal.SIGTERM)
    assert code == 0
    await until(lambda: proc_stat(second) is None)  # the workers stop with their supervisor


async def test_a_bad_worker_count_is_one_line(tmp_path: Path) -> None:
    result = await trio.run_process(
        [sys.executable, "-m", "pika", "serve", "--workers", "many"], capture_stderr=True, check=False
    )
    assert result.returncode == 2
    assert b"--workers" in result.stderr and b"not a whole number" in result.stderr


async def worker_health(metrics_port: int, index: int, not_pid: int | None = None) -> dict:
    """Worker `index`'s /health on its own port, once it answers (from a pid other than `not_pid`)."""
    answered: list[dict] = []

    async def answers() -> bool:
        health = await trio.to_thread.run_sync(
            ServerProcess.health_at, f"http://127.0.0.1:{metrics_port + index}"
        )
        if health is not None and health["pid"] != not_pid:
            answered.append(health)
        return bool(answered)

    await until(answers, 30)
    return answered[0]


async def test_a_restarted_worker_takes_up_only_the_live_rooms_no_running_worker_owns(
    db_url: str, tmp_path: Path
) -> None:
    http_port, live_port, metrics_port = ports()
    env = {
        "PIKA_DATABASE_URL": db_url,
        "PIKA_LIVE_PORT": str(live_port),
        "PIKA_METRICS_PORT": str(metrics_port),
    }
    server = await ServerProcess.start(env, http_port, tmp_path / "server.log", args=("--workers", "2"))
    try:
        for n in (0, 1):
            await worker_health(metrics_port, n)  # both listen
        async with connect(server.url) as dj:
            await go_live(dj, "friday_milonga")
            workers = [await worker_health(metrics_port, n) for n in (0, 1)]
            owner = [h["activeSessions"] for h in workers].index(1)
            other = 1 - owner

            os.kill(workers[other]["pid"], signal.SIGKILL)
            restarted = await worker_health(metrics_port, other, not_pid=workers[other]["pid"])
            assert restarted["activeSessions"] == 0  # the room is the owner's: not restored here
            assert (await worker_health(metrics_port, owner))["activeSessions"] == 1
            await pong(dj)  # the DJ's session goes on, on its worker

            os.kill(workers[owner]["pid"], signal.SIGKILL)
            await worker_health(metrics_port, owner, not_pid=workers[owner]["pid"])
            # its lock died with it: one worker takes the room up, the new one at start, or
            # whichever asks first once PostgreSQL has noticed the killed connection

            async def served_once() -> bool:
                counts = [(await worker_health(metrics_port, n))["activeSessions"] for n in (0, 1)]
                return sorted(counts) == [0, 1]

            await until(served_once, 30)
    finally:
        assert await server.stop(signal.SIGTERM) == 0


async def test_an_admin_end_session_reaches_the_connections_of_every_worker(
    db_url: str, tmp_path: Path
) -> None:
    http_port, live_port, metrics_port = ports()
    env = {
        "PIKA_DATABASE_URL": db_url,
        "PIKA_LIVE_PORT": str(live_port),
        "PIKA_METRICS_PORT": str(metrics_port),
    }
    server = await ServerProcess.start(env, http_port, tmp_path / "server.log", args=("--workers", "2"))
    try:
        for n in (0, 1):
            await worker_health(metrics_port, n)  # both listen
        async with AsyncExitStack() as stack:
            dj = await stack.enter_async_context(connect(server.url))
            await go_live(dj, "admin_live_01")
            dancers = [await stack.enter_async_context(connect(server.url)) for _ in range(12)]
            for dancer in dancers:
                await pong(dancer)  # connected and served
            counts = [(await worker_health(metrics_port, n))["connections"] for n in (0, 1)]
            assert min(counts) > 0 and sum(counts) == 13  # both workers hold some of them

            result = await admin(db_url, "end-session", "admin_live_01")

            assert result.code == 0, result.err
            for peer in (dj, *dancers):
                assert (await peer.recv_type("SESSION_ENDED"))["sessionId"] == "admin_live_01"
    finally:
        assert await server.stop(signal.SIGTERM) == 0


async def test_workers_stop_when_their_supervisor_is_killed(db_url: str, tmp_path: Path) -> None:
    http_port, live_port, _ = ports()
    env = {"PIKA_DATABASE_URL": db_url, "PIKA_LIVE_PORT": str(live_port)}
    server = await ServerProcess.start(env, http_port, tmp_path / "server.log", args=("--workers", "2"))
    workers = await pids_answering(server, 2)
    assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
    await until(lambda: all(proc_stat(pid) is None for pid in workers), 20)  # not serving on, orphaned
    assert await trio.to_thread.run_sync(server.health) is None
