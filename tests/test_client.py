"""`python -m pika.client` run as real subprocesses against the real server and PostgreSQL."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import trio

from pika.server import Running, serve
from tests.conftest import rows, test_settings
from tests.wsclient import connect, ws_url_for

CLIENT = [sys.executable, "-m", "pika.client"]


async def run_client(command: str, timeout: float = 20) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m pika.client <command>` (split as a shell would) to completion."""
    with trio.fail_after(timeout):
        return await trio.run_process(
            [*CLIENT, *shlex.split(command)], capture_stdout=True, capture_stderr=True, check=False
        )


def lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


class Listener:
    """A `listen` subprocess whose stdout and stderr are collected as they arrive."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout = b""
        self.stderr = b""
        self._stderr_grew = trio.Event()

    async def _drain_stdout(self) -> None:
        assert self.process.stdout is not None
        async for chunk in self.process.stdout:
            self.stdout += chunk

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.stderr += chunk
            self._stderr_grew.set()
            self._stderr_grew = trio.Event()

    async def wait_for_stderr(self, text: str) -> None:
        while text.encode() not in self.stderr:
            await self._stderr_grew.wait()


@asynccontextmanager
async def listening(options: str) -> AsyncIterator[Listener]:
    """Start `listen <options>`, wait until its subscription is in place, yield; then wait for it to exit."""
    process = await trio.lowlevel.open_process(
        [*CLIENT, "listen", *shlex.split(options)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    listener = Listener(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listener._drain_stdout)
            nursery.start_soon(listener._drain_stderr)
            with trio.fail_after(15):
                await listener.wait_for_stderr("listening to")
            yield listener
            with trio.fail_after(20):
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def test_a_dj_plays_a_set_and_a_listener_sees_it_in_order(server: Running) -> None:
    url = await ws_url_for(server.url)  # the live listener's URL, or the HTTP port's /ws
    async with listening(
        f"--session cli_session_1 --url {url} --type NOW_PLAYING --count 2 --timeout 20"
    ) as listener:
        dj = await run_client(
            f'dj --session cli_session_1 --name "DJ Kool" --url {url} '
            '--track "Michael Jackson - Billie Jean" --track "Prince - Kiss" --end'
        )
    assert dj.returncode == 0, dj.stderr
    assert lines(dj.stdout) == [
        "live: cli_session_1 as DJ Kool",
        "now playing: Michael Jackson - Billie Jean",
        "now playing: Prince - Kiss",
        "ended: cli_session_1",
    ]
    assert listener.process.returncode == 0, listener.stderr
    heard = lines(listener.stdout)
    assert [line.split(" ", 1)[0] for line in heard] == ["NOW_PLAYING", "NOW_PLAYING"]
    frames = [json.loads(line.split(" ", 1)[1]) for line in heard]
    assert [f["track"]["title"] for f in frames] == ["Billie Jean", "Kiss"]
    assert frames[0] == {
        "type": "NOW_PLAYING",
        "sessionId": "cli_session_1",
        "djName": "DJ Kool",
        "track": {"title": "Billie Jean", "artist": "Michael Jackson"},
    }
    with psycopg.connect(server.database_url) as conn:
        played = conn.execute(
            "SELECT artist, title FROM played_tracks WHERE session_id = %s ORDER BY id", ("cli_session_1",)
        ).fetchall()
    assert played == [("Michael Jackson", "Billie Jean"), ("Prince", "Kiss")]


async def test_a_listener_prints_every_frame_as_type_and_compact_json(server: Running) -> None:
    result = await run_client(
        f"listen --session nobody_live --client-id client_cli_test --url {server.url} --count 3 --timeout 15"
    )
    assert result.returncode == 0, result.stderr
    heard = lines(result.stdout)
    assert [line.split(" ", 1)[0] for line in heard] == ["SESSIONS_LIST", "LISTENER_COUNT", "SESSION_ENDED"]
    assert heard[2] == 'SESSION_ENDED {"type":"SESSION_ENDED","sessionId":"nobody_live"}'


async def test_a_listener_stops_quietly_on_ctrl_c(server: Running) -> None:
    async with listening(f"--session cli_session_2 --url {server.url}") as listener:
        listener.process.send_signal(signal.SIGINT)
    assert listener.process.returncode == 0, listener.stderr
    assert b"Traceback" not in listener.stderr


async def test_a_refused_track_is_reported_and_the_set_goes_on_but_exits_1(server: Running) -> None:
    too_long = "x" * 501
    result = await run_client(
        f'dj --session cli_session_3 --url {server.url} --track "Prince - {too_long}" --track "Prince - Kiss"'
    )
    assert result.returncode == 1
    assert lines(result.stdout) == [
        "live: cli_session_3 as DJ",
        "refused: track.title: must be 1-500 characters",
        "now playing: Prince - Kiss",
    ]


async def test_a_track_without_a_dash_exits_2_with_one_clear_line(server: Running) -> None:
    result = await run_client(
        f'dj --session cli_session_4 --url {server.url} --track "Prince - Kiss" --track "Billie Jean"'
    )
    assert result.returncode == 2
    assert result.stdout == b""  # checked before going live: nothing was broadcast
    assert lines(result.stderr) == [
        """pika.client: --track 'Billie Jean': must be "Artist - Title" (with " - " between)"""
    ]
    assert rows(server, "SELECT count(*) FROM sessions") == [(0,)]  # no session went live


async def test_no_server_exits_2_with_cannot_connect_and_no_traceback() -> None:
    with trio.socket.socket() as sock:  # bound, so no stranger can take the port, but not listening
        await sock.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/ws"
        for command in (
            'dj --session cli_session_5 --track "Prince - Kiss"',
            "listen --session cli_session_5",
        ):
            result = await run_client(f"{command} --url {url}")
            assert result.returncode == 2
            assert result.stdout == b""
            err = result.stderr.decode()
            assert err.startswith(f"pika.client: cannot connect to {url}: "), err
            assert len(err.splitlines()) == 1
            assert "Traceback" not in err


async def test_a_busy_server_s_retry_after_is_waited_out_and_the_set_then_plays(
    nursery: trio.Nursery, db_url: str
) -> None:
    settings = test_settings(db_url, ws_open_per_ip=1, ws_connects_window=1.0)
    running = await nursery.start(serve, settings)
    command = [*CLIENT, "dj", "--session", "cli_busy_1", "--track", "Prince - Kiss", "--url", running.url]
    async with connect(running.url):  # holds the address's only slot: the client is told 429
        process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        client = Listener(process)
        nursery.start_soon(client._drain_stdout)
        nursery.start_soon(client._drain_stderr)
        with trio.fail_after(15):
            await client.wait_for_stderr("trying again in")
    with trio.fail_after(20):
        await process.wait()

    assert process.returncode == 0
    assert lines(client.stderr)[0].startswith(
        "pika.client: server busy: the server refused the upgrade (HTTP 429) "
        "Too many connections from this address; trying again in "
    )
    assert lines(client.stdout) == ["live: cli_busy_1 as DJ", "now playing: Prince - Kiss"]
