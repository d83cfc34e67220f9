"""`python -m pika.dj live` as a real process against the real server: history files written as the
DJ software writes them, dancers subscribed over real sockets, and the faults a gig brings (server
restart, agent killed, Wi-Fi gone for a minute)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from pika.dj.sources import SOURCES
from pika.server import Running, serve
from tests.conftest import PgCluster, rows, test_settings
from tests.procs import ServerProcess, free_port
from tests.test_dj_sources import (
    SESSION_HEAD,
    Mixxx,
    append,
    append_bytes,
    oent,
    rewrite,
    traktor_nml,
    vdj_play,
)
from tests.test_owned_sessions import signed_up
from tests.wsclient import Peer, connect, go_live

AGENT = [sys.executable, "-m", "pika.dj", "live"]


class AgentProcess:
    """One agent process; its stdout and stderr are collected as they arrive."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.out = {"stdout": "", "stderr": ""}
        self._grew = trio.Event()

    async def _drain(self, name: str) -> None:
        stream = getattr(self.process, name)
        async for chunk in stream:
            self.out[name] += chunk.decode()
            self._grew.set()
            self._grew = trio.Event()

    async def wait_for(self, text: str, stream: str = "stdout", timeout: float = 30) -> None:
        with trio.fail_after(timeout):
            while text not in self.out[stream]:
                if self.process.returncode is not None:
                    raise AssertionError(f"agent exited {self.process.returncode}: {self.out}")
                await self._grew.wait()

    async def type(self, line: str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(line.encode() + b"\n")

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        with trio.fail_after(timeout):
            return await self.process.wait()


@asynccontextmanager
async def agent(
    url: str, *args: str, token: str | None = None, home: Path | None = None
) -> AsyncIterator[AgentProcess]:
    env = {k: v for k, v in os.environ.items() if k != "PIKA_DJ_TOKEN"}
    if token:
        env["PIKA_DJ_TOKEN"] = token
    if home is not None:  # the DJ software's usual folders are found under it
        env["HOME"] = str(home)
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(
            [*AGENT, "--url", url, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        running = AgentProcess(process)
        nursery.start_soon(running._drain, "stdout")
        nursery.start_soon(running._drain, "stderr")
        try:
            yield running
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


@asynccontextmanager
async def live_with_dancer(
    server: Running, session_id: str, tmp_path: Path, *source: str, home: Path | None = None
) -> AsyncIterator[tuple[AgentProcess, Peer]]:
    """An agent live on `session_id` with `source` args, following it, and a dancer subscribed."""
    args = ["--session", session_id, *source, "--queue", str(tmp_path / "q.sqlite")]
    async with connect(server.url) as dancer, agent(server.url, *args, home=home) as dj:
        await dj.wait_for("following ")
        await dj.wait_for(f"live: {session_id}")
        await dancer.request("SUBSCRIBE", sessionId=session_id, clientId=f"client_{session_id}")
        yield dj, dancer


async def now_playing(dancer: Peer, timeout: float = 30) -> str:
    frame = await dancer.recv_type("NOW_PLAYING", timeout)
    return f"{frame['track']['artist']} - {frame['track']['title']}"


def titles(database_url: str, session_id: str) -> list[str]:
    """The session's plays as stored (what the history and the recap show), in play order."""
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            "SELECT title FROM played_tracks WHERE session_id = %s ORDER BY id", (session_id,)
        ).fetchall()
    return [row[0] for row in found]


def m3u_entry(artist: str, title: str) -> str:
    return f"#EXTINF:200,{artist} - {title}\n/music/{title}.mp3\n"


# -- each new play reaches the dancers ------------------------------------------------------------


async def test_each_m3u_play_reaches_a_dancer_once_in_order(server: Running, tmp_path: Path) -> None:
    playlist = tmp_path / "set.m3u8"
    append(playlist, "#EXTM3U\n" + m3u_entry("Old", "Before The Set"))
    source = ("--source", "m3u", "--path", str(playlist))
    async with live_with_dancer(server, "agent_m3u01", tmp_path, *source) as (dj, dancer):
        append(playlist, m3u_entry("Gotan Project", "Santa Maria"))
        assert await now_playing(dancer) == "Gotan Project - Santa Maria"
        append(playlist, m3u_entry("Gotan Project", "Santa Maria"))  # reported twice in a row
        append(playlist, m3u_entry("Carlos Di Sarli", "Bahia Blanca"))
        assert await now_playing(dancer) == "Carlos Di Sarli - Bahia Blanca"
        append(playlist, m3u_entry("Gotan Project", "Santa Maria"))  # really played again
        assert await now_playing(dancer) == "Gotan Project - Santa Maria"
        assert await dj.stop() == 0
    assert titles(server.database_url, "agent_m3u01") == ["Santa Maria", "Bahia Blanca", "Santa Maria"]
    assert "stays live for the grace period" in dj.out["stdout"]
    assert server.hub.rooms["agent_m3u01"].current is not None  # Ctrl-C/SIGTERM did not end it


async def test_a_now_playing_text_file_reaches_a_dancer_with_catch_up(
    server: Running, tmp_path: Path
) -> None:
    now = tmp_path / "nowplaying.txt"
    rewrite(now, "Osvaldo Pugliese - La Yumba\n")
    args = ["--session", "agent_text01", "--source", "text", "--path", str(now), "--catch-up"]
    async with (
        connect(server.url) as dancer,
        agent(server.url, *args, "--queue", str(tmp_path / "q.sqlite")) as dj,
    ):
        await dj.wait_for("sent: Osvaldo Pugliese - La Yumba")
        await dancer.request("SUBSCRIBE", sessionId="agent_text01", clientId="client_agent_02")
        rewrite(now, "Juan D'Arienzo - La Cumparsita\n")
        assert await now_playing(dancer) == "Juan D'Arienzo - La Cumparsita"
    assert titles(server.database_url, "agent_text01") == ["La Yumba", "La Cumparsita"]


class DjSoftware:
    """Writes one program's history in its usual folder under `home`, the way the program does
    (the writers of test_dj_sources), so the agent finds it without --path."""

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.home = home
        self.played: list[tuple[str, str, float, int]] = []  # traktor's whole history so far
        if name == "virtualdj":
            self.folder = home / "Documents" / "VirtualDJ" / "History"
            self.folder.mkdir(parents=True)
        elif name == "traktor":
            self.folder = home / "Documents" / "Native Instruments" / "Traktor 3.11.1" / "History"
            self.folder.mkdir(parents=True)
            self._traktor()
        elif name == "serato":
            self.folder = home / "Music" / "_Serato_" / "History" / "Sessions"
            self.folder.mkdir(parents=True)
            (self.folder / "41.session").write_bytes(SESSION_HEAD)
        else:
            self.mixxx = Mixxx(home / ".mixxx" / "mixxxdb.sqlite")

    def play(self, row: int, artist: str, title: str, *, played: bool = True) -> None:
        at = math.ceil(time.time())  # these programs log whole seconds
        if self.name == "virtualdj":
            vdj_play(self.folder, time.strftime("%Y-%m-%d", time.localtime(at)), artist, title, at)
        elif self.name == "traktor":
            self.played.append((artist, title, at, 1))
            self._traktor()
        elif self.name == "serato":
            append_bytes(
                self.folder / "41.session", oent(row, artist, title, start=at, played=played, bpm=118)
            )
        else:
            self.mixxx.play(self.mixxx.track(artist, title, 116.5, "Am"), at)

    def _traktor(self) -> None:
        (self.folder / "history_2026y12m01d_21h00m00s.nml").write_text(
            traktor_nml(self.played), encoding="utf-8"
        )


@pytest.mark.parametrize("software", ["virtualdj", "traktor", "serato", "mixxx"])
async def test_each_dj_softwares_new_plays_reach_a_dancer(
    server: Running, tmp_path: Path, software: str
) -> None:
    dj_software = DjSoftware(software, tmp_path)
    session = f"agent_{software}"
    async with live_with_dancer(server, session, tmp_path, "--source", software, home=tmp_path) as (
        dj,
        dancer,
    ):
        dj_software.play(1, "Carlos Di Sarli", "Bahia Blanca")
        assert await now_playing(dancer) == "Carlos Di Sarli - Bahia Blanca"
        if software == "serato":
            dj_software.play(2, "Loaded", "Never Played", played=False)  # on a deck, never out loud
        dj_software.play(3, "Osvaldo Pugliese", "La Yumba")
        assert await now_playing(dancer) == "Osvaldo Pugliese - La Yumba"
        assert await dj.stop() == 0
    assert titles(server.database_url, f"agent_{software}") == ["Bahia Blanca", "La Yumba"]
    assert "Never Played" not in dj.out["stdout"]


# -- the DJ's terminal ----------------------------------------------------------------------------


async def test_typed_commands_run_the_crowd_and_end_posts_the_set(server: Running, tmp_path: Path) -> None:
    token = await signed_up(server, "agent@example.com", "DJ Agent")
    now = tmp_path / "nowplaying.txt"
    rewrite(now, "Prince - Kiss\n")
    args = ["--session", "agent_cmd01", "--source", "text", "--path", str(now), "--catch-up"]
    queue = ["--queue", str(tmp_path / "q.sqlite")]
    async with connect(server.url) as dancer, agent(server.url, *args, *queue, token=token) as dj:
        await dj.wait_for("sent: Prince - Kiss")
        assert "live: agent_cmd01 as DJ Agent" in dj.out["stdout"]
        await dancer.request("SUBSCRIBE", sessionId="agent_cmd01", clientId="client_agent_03")
        await dj.type("poll 60 Next style? | Salsa | Bachata")
        poll = await dancer.recv_type("POLL_STARTED")
        assert (poll["question"], poll["options"]) == ("Next style?", ["Salsa", "Bachata"])
        await dj.type("say 60 Last dance in 5 minutes")
        assert (await dancer.recv_type("ANNOUNCEMENT_RECEIVED"))["message"] == "Last dance in 5 minutes"
        await dj.type("dance now")
        await dj.wait_for("pika.dj: unknown command 'dance'; type help for the list\n", "stderr")
        await dj.type("endpoll")
        assert (await dancer.recv_type("POLL_ENDED"))["pollId"] == poll["pollId"]
        await dj.type("end")
        assert (await dancer.recv_type("SESSION_ENDED"))["sessionId"] == "agent_cmd01"
        with trio.fail_after(30):
            assert await dj.process.wait() == 0, dj.out
    assert "recap: BPM and keys of 0 of 1 track(s) synced" in dj.out["stdout"]
    assert rows(server, "SELECT ended_at IS NOT NULL FROM sessions WHERE id = 'agent_cmd01'") == [(True,)]


# -- bad input: one line, and the agent keeps watching ----------------------------------------------


async def test_an_unknown_source_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = await trio.run_process(
        [*AGENT, "--session", "agent_bad01", "--source", "winamp", "--queue", str(tmp_path / "q.sqlite")],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2
    choices = ", ".join(SOURCES)
    assert result.stderr.decode() == f"pika.dj: unknown source 'winamp'; choose one of {choices}\n"


async def test_a_bad_token_an_ended_session_or_no_server_is_one_line_and_plays_are_still_queued(
    server: Running, tmp_path: Path
) -> None:
    now = tmp_path / "nowplaying.txt"
    rewrite(now, "")
    nobody = f"http://127.0.0.1:{free_port()}"
    async with connect(server.url) as earlier:  # a set that has already ended under that id
        await go_live(earlier, "agent_bad12")
        await earlier.request("END_SESSION", sessionId="agent_bad12")
    cases = [
        (server.url, "pk_dj_" + "0" * 32, "Invalid token (check PIKA_DJ_TOKEN: get a token at /dj/login)"),
        (nobody, None, "offline: cannot reach the server: "),
        (server.url, None, "Session not available (it has ended, or belongs to another DJ: choose another"),
    ]
    for n, (url, token, said) in enumerate(cases):
        args = ["--session", f"agent_bad1{n}", "--source", "text", "--path", str(now)]
        async with agent(url, *args, "--queue", str(tmp_path / f"q{n}.sqlite"), token=token) as dj:
            await dj.wait_for("following text")
            await dj.wait_for(said, "stderr")
            rewrite(now, f"Still - Watching {n}\n")
            await dj.wait_for(f"queued: Still - Watching {n}")
            assert await dj.stop() == 0
        problems = dj.out["stderr"].splitlines()
        assert problems and all(line.startswith("pika.dj: ") for line in problems), problems
        assert "Traceback" not in dj.out["stderr"]
        assert "1 queued track(s) kept for the next start" in dj.out["stdout"]


# -- faults: nothing played is lost, nothing is doubled ----------------------------------------------


async def test_tracks_played_while_the_server_is_down_arrive_after_it_returns_in_order_once(
    db_url: str, tmp_path: Path
) -> None:
    env = {"PIKA_DATABASE_URL": db_url, "PIKA_DJ_GRACE_SECONDS": "120"}
    port = free_port()
    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    playlist = tmp_path / "set.m3u"
    append(playlist, "#EXTM3U\n")
    args = ["--session", "agent_down01", "--source", "m3u", "--path", str(playlist)]
    async with agent(server.url, *args, "--queue", str(tmp_path / "q.sqlite")) as dj:
        await dj.wait_for("following m3u")
        await dj.wait_for("live: agent_down01")
        append(playlist, m3u_entry("Artist", "First"))
        await dj.wait_for("sent: Artist - First")
        assert await server.stop() == 0  # a restart: the agent's socket is closed with 1012
        await dj.wait_for("offline: ", "stderr")
        append(playlist, m3u_entry("Artist", "Second"))
        append(playlist, m3u_entry("Artist", "Third"))
        await dj.wait_for("queued: Artist - Third")
        await trio.sleep(10)  # the outage itself: the server stays down for 10 s
        server = await ServerProcess.start(env, port, tmp_path / "server.log")
        try:
            async with connect(server.url) as dancer:
                await dancer.request("SUBSCRIBE", sessionId="agent_down01", clientId="client_agent_04")
                await dj.wait_for("sent: Artist - Third", timeout=60)
        finally:
            await server.stop()
    assert titles(db_url, "agent_down01") == ["First", "Second", "Third"]
    assert dj.out["stdout"].index("sent: Artist - Second") < dj.out["stdout"].index("sent: Artist - Third")


async def test_an_agent_killed_with_a_track_queued_sends_it_once_when_started_again(
    db_url: str, tmp_path: Path
) -> None:
    env = {"PIKA_DATABASE_URL": db_url}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    now = tmp_path / "nowplaying.txt"
    rewrite(now, "")
    args = [
        "--session",
        "agent_kill01",
        "--source",
        "text",
        "--path",
        str(now),
        "--queue",
        str(tmp_path / "q.sqlite"),
    ]
    async with agent(url, *args) as dj:  # no server yet: the play can only be queued
        await dj.wait_for("following text")
        rewrite(now, "Queued - Before The Crash\n")
        await dj.wait_for("queued: Queued - Before The Crash")
        await dj.stop(signal.SIGKILL)
    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    try:
        async with connect(server.url) as dancer, agent(url, *args) as dj:
            await dj.wait_for("1 waiting")
            await dancer.request("SUBSCRIBE", sessionId="agent_kill01", clientId="client_agent_05")
            await dj.wait_for("sent: Queued - Before The Crash")
            assert await dj.stop() == 0
    finally:
        await server.stop()
    assert titles(db_url, "agent_kill01") == ["Before The Crash"]


class Blackhole:
    """A TCP relay between the agent and the server that can drop every byte both ways, as a dead
    Wi-Fi does: connections stay open, nothing gets through (not even a close), nobody is told."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.restored = trio.Event()
        self.restored.set()

    def cut(self) -> None:
        self.restored = trio.Event()

    def restore(self) -> None:
        self.restored.set()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client:
            if not self.restored.is_set():  # a connection made during the cut goes nowhere
                await self._pump(client, None, trio.CancelScope())
                return
            upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream | None, done: trio.CancelScope
    ) -> None:
        try:
            async for chunk in source:
                if sink is not None and self.restored.is_set():
                    await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self.restored.wait()  # a close during the cut does not get through either
        done.cancel()


async def test_a_minute_without_network_ends_nothing_and_the_tracks_played_meanwhile_arrive(
    nursery: trio.Nursery, db_url: str, tmp_path: Path
) -> None:
    server = await nursery.start(serve, test_settings(db_url, dj_grace_seconds=120.0))  # the default grace
    wifi = Blackhole(int(server.url.rsplit(":", 1)[1]))
    await nursery.start(wifi.serve)
    playlist = tmp_path / "set.m3u"
    append(playlist, "#EXTM3U\n")
    args = ["--session", "agent_wifi01", "--source", "m3u", "--path", str(playlist)]
    seen: list[dict[str, Any]] = []
    async with (
        connect(server.url) as dancer,
        agent(f"http://127.0.0.1:{wifi.port}", *args, "--queue", str(tmp_path / "q.sqlite")) as dj,
    ):
        await dj.wait_for("following m3u")
        await dj.wait_for("live: agent_wifi01")
        append(playlist, m3u_entry("Artist", "Before"))
        await dj.wait_for("sent: Artist - Before")
        await dancer.request("SUBSCRIBE", sessionId="agent_wifi01", clientId="client_agent_06")
        wifi.cut()
        append(playlist, m3u_entry("Artist", "During"))
        await dj.wait_for("queued: Artist - During")
        await trio.sleep(60)  # the outage itself: a minute without network, inside the 120 s grace
        wifi.restore()
        with trio.fail_after(90):
            while not any(f["type"] == "NOW_PLAYING" and f["track"]["title"] == "During" for f in seen):
                seen.append(await dancer.recv(timeout=90))
        await dj.wait_for("sent: Artist - During")
    assert "SESSION_ENDED" not in [f["type"] for f in seen]
    assert titles(server.database_url, "agent_wifi01") == ["Before", "During"]
    assert server.hub.rooms["agent_wifi01"].current.track.title == "During"


async def test_a_restarted_agent_resumes_the_session_and_end_on_exit_ends_it(
    server: Running, tmp_path: Path
) -> None:
    playlist = tmp_path / "set.m3u"
    append(playlist, "#EXTM3U\n")
    args = ["--session", "agent_again1", "--source", "m3u", "--path", str(playlist)]
    args += ["--queue", str(tmp_path / "q.sqlite")]
    async with connect(server.url) as dancer:
        async with agent(server.url, *args) as first:
            await first.wait_for("following m3u")
            await first.wait_for("live: agent_again1")
            await dancer.request("SUBSCRIBE", sessionId="agent_again1", clientId="client_agent_07")
            append(playlist, m3u_entry("Artist", "One"))
            assert await now_playing(dancer) == "Artist - One"
            assert await first.stop(signal.SIGINT) == 0  # Ctrl-C: the session stays live
        async with agent(server.url, *args, "--end-on-exit") as second:
            await second.wait_for("following m3u")
            await second.wait_for("live: agent_again1")
            append(playlist, m3u_entry("Artist", "Two"))
            frames = [await dancer.recv_type("NOW_PLAYING")]
            assert frames[0]["track"]["title"] == "Two"
            assert await second.stop() == 0  # SIGTERM with --end-on-exit: the session ends
            frames.append(await dancer.recv_type("SESSION_ENDED"))
    assert "recap: BPM and keys of 0 of 2 track(s) synced" in second.out["stdout"]
    assert titles(server.database_url, "agent_again1") == ["One", "Two"]
    assert rows(server, "SELECT count(*) FROM sessions") == [(1,)]


async def test_an_unreadable_or_half_written_history_is_one_line_and_loses_nothing(
    server: Running, tmp_path: Path
) -> None:
    playlist = tmp_path / "set.m3u"
    append(playlist, "#EXTM3U\n")
    source = ("--source", "m3u", "--path", str(playlist))
    async with live_with_dancer(server, "agent_file01", tmp_path, *source) as (dj, dancer):
        append(playlist, "#EXTINF:200,Half - Writ")  # the software is still writing this entry
        append(playlist, "ten\n/music/half.mp3\n")
        assert await now_playing(dancer) == "Half - Written"
        append(playlist, m3u_entry("Meanwhile", "Appended"))
        playlist.rename(tmp_path / "aside.m3u")
        playlist.mkdir()  # something unreadable where the history was
        await dj.wait_for(f"{playlist} is a folder, not a file", "stderr")
        playlist.rmdir()
        (tmp_path / "aside.m3u").rename(playlist)
        assert await now_playing(dancer) == "Meanwhile - Appended"
    assert titles(server.database_url, "agent_file01") == ["Written", "Appended"]
    problems = dj.out["stderr"].splitlines()
    assert len(problems) == 1 and problems[0].startswith("pika.dj: ")  # one line, said once


async def test_a_second_agent_on_the_same_account_takes_over_and_the_first_stops(
    server: Running, tmp_path: Path
) -> None:
    token = await signed_up(server, "twice@example.com", "DJ Twice")
    now = tmp_path / "nowplaying.txt"
    rewrite(now, "")
    args = ["--session", "agent_twice1", "--source", "text", "--path", str(now)]
    async with agent(server.url, *args, "--queue", str(tmp_path / "q1.sqlite"), token=token) as first:
        await first.wait_for("live: agent_twice1 as DJ Twice")
        async with agent(server.url, *args, "--queue", str(tmp_path / "q2.sqlite"), token=token) as second:
            await second.wait_for("live: agent_twice1 as DJ Twice")
            with trio.fail_after(30):
                assert await first.process.wait() == 1
            assert (
                "another connection of this DJ took the session over (closed by the server (code 4001"
                in (first.out["stderr"])
            )
            assert second.process.returncode is None


async def test_the_agent_says_when_the_servers_database_is_unavailable_and_back(
    server: Running, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    database = psycopg.conninfo.conninfo_to_dict(server.database_url)["dbname"]
    now = tmp_path / "nowplaying.txt"
    rewrite(now, "")
    args = ["--session", "agent_db0001", "--source", "text", "--path", str(now)]
    async with agent(server.url, *args, "--queue", str(tmp_path / "q.sqlite")) as dj:
        await dj.wait_for("live: agent_db0001")
        pg_cluster.admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        pg_cluster.admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        )
        await dj.wait_for("the server's database is unavailable")
        pg_cluster.admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await dj.wait_for("the server's database is back", timeout=120)  # the pool reconnects with backoff
