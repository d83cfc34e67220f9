"""The embedded PostgreSQL after a crash: a real server process killed with SIGKILL leaves it
running; the next start adopts it and says so, or `python -m pika.admin stop-embedded` stops it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import trio

from pika.embedded import ADOPTED
from tests.procs import ServerProcess, free_port

ADMIN = [sys.executable, "-m", "pika.admin"]


def postgres_pid(data_dir: Path) -> int | None:
    """The embedded PostgreSQL's pid while it runs, else None."""
    try:
        pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


async def stop_embedded(data_dir: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PIKA_DATABASE_URL"} | {"PIKA_DATA_DIR": str(data_dir)}
    with trio.fail_after(60):
        done = await trio.run_process(
            [*ADMIN, "stop-embedded"], env=env, capture_stdout=True, capture_stderr=True, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def crashed_server(data_dir: Path, log: Path) -> int:
    """Start a server on its embedded PostgreSQL, kill it with SIGKILL; return PostgreSQL's pid."""
    server = await ServerProcess.start({"PIKA_DATA_DIR": str(data_dir)}, free_port(), log, timeout=60)
    assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
    pid = postgres_pid(data_dir)
    assert pid is not None  # left running: nobody told it to stop
    return pid


async def test_a_start_after_kill_9_adopts_the_running_postgres_and_says_so(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "state", tmp_path / "server.log"
    orphan = await crashed_server(data_dir, log)
    assert ADOPTED not in log.read_text()  # the first start found nothing to adopt

    server = await ServerProcess.start({"PIKA_DATA_DIR": str(data_dir)}, free_port(), log, timeout=60)
    assert await server.stop() == 0

    assert log.read_text().count(ADOPTED) == 1
    assert postgres_pid(data_dir) is None  # adopted, so stopped with its last user
    assert orphan != postgres_pid(data_dir)


async def test_stop_embedded_stops_a_left_running_postgres_and_says_when_there_is_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "state"
    assert await stop_embedded(data_dir) == (
        0,
        f"no embedded PostgreSQL is running in {data_dir / 'pgdata'}: nothing to stop\n",
        "",
    )
    orphan = await crashed_server(data_dir, tmp_path / "server.log")

    assert await stop_embedded(data_dir) == (
        0,
        f"stopped the embedded PostgreSQL in {data_dir / 'pgdata'} (pid {orphan})\n",
        "",
    )
    assert postgres_pid(data_dir) is None
    code, out, _ = await stop_embedded(data_dir)
    assert (code, out) == (
        0,
        f"no embedded PostgreSQL is running in {data_dir / 'pgdata'}: nothing to stop\n",
    )


async def test_stop_embedded_refuses_while_a_server_uses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    server = await ServerProcess.start({"PIKA_DATA_DIR": str(data_dir)}, free_port(), tmp_path / "s.log", 60)
    try:
        code, out, err = await stop_embedded(data_dir)
        assert (code, out) == (1, "")
        assert err == (
            f"pika.admin: the embedded PostgreSQL in {data_dir / 'pgdata'} is in use by process "
            f"{server.proc.pid} (a running server?); stop that process and PostgreSQL stops with it\n"
        )
        assert postgres_pid(data_dir) is not None
    finally:
        assert await server.stop() == 0
    assert postgres_pid(data_dir) is None
