"""Restart without loss: a real server process stopped (gracefully, or with SIGKILL) mid-session."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg
import pytest
import trio

from pika.bus.ownership import Ownership
from pika.config import SQL_DIR
from pika.queries import load_queries
from tests.procs import ServerProcess, free_port
from tests.wsclient import connect, go_live, track, types, until


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "sigkill"])
async def test_after_a_restart_the_dj_resumes_and_dancers_get_the_current_track(
    db_url: str, tmp_path: Path, how: signal.Signals
) -> None:
    env = {"PIKA_DATABASE_URL": db_url, "PIKA_DJ_GRACE_SECONDS": "30"}
    port = free_port()
    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    async with connect(server.url) as dj:
        registered = await go_live(dj, "conf_restart", "DJ Steady")
        await dj.request("BROADCAST_TRACK", sessionId="conf_restart", track=track("Before", bpm=96))
        async with connect(server.url) as dancer:
            await dancer.request("SUBSCRIBE", sessionId="conf_restart", clientId="client_restart1")
            exit_code = await server.stop(how)
            if how == signal.SIGTERM:
                assert exit_code == 0
                assert await dancer.closed_with() == 1012  # "server restarting": reconnect and resume
                assert await dj.closed_with() == 1012

    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    try:
        async with connect(server.url) as dancer:
            replies = await dancer.request("SUBSCRIBE", sessionId="conf_restart", clientId="client_restart1")
            assert types(replies) == ["SESSIONS_LIST", "LISTENER_COUNT", "NOW_PLAYING", "ACK"]
            assert replies[2]["track"] == {"title": "Before", "artist": "Test Artist", "bpm": 96}
            async with connect(server.url) as dj:
                resumed = await dj.request(
                    "REGISTER_SESSION", sessionId="conf_restart", resumeKey=registered["resumeKey"]
                )
                assert types(resumed) == ["SESSION_REGISTERED", "NOW_PLAYING", "LISTENER_COUNT", "ACK"]
                assert resumed[0]["djName"] == "DJ Steady"
                again = await dj.request(
                    "BROADCAST_TRACK", sessionId="conf_restart", track=track("Before", bpm=96)
                )
                assert types(again) == ["ACK"]  # the re-broadcast after reconnect is not a new play
                await dj.request("BROADCAST_TRACK", sessionId="conf_restart", track=track("After"))
                assert (await dancer.recv_type("NOW_PLAYING"))["track"]["title"] == "After"
    finally:
        await server.stop()
    with psycopg.connect(db_url) as conn:
        titles = [r[0] for r in conn.execute("SELECT title FROM played_tracks ORDER BY id").fetchall()]
        live = conn.execute("SELECT ended_at IS NULL FROM sessions").fetchall()
    assert titles == ["Before", "After"]
    assert live == [(True,)]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "sigkill"])
async def test_dancers_connected_before_a_restart_still_count_after_it(
    db_url: str, tmp_path: Path, how: signal.Signals
) -> None:
    env = {"PIKA_DATABASE_URL": db_url, "PIKA_DJ_GRACE_SECONDS": "30", "PIKA_LISTENER_FLUSH_SECONDS": "0.2"}
    port = free_port()
    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    async with connect(server.url) as dj, connect(server.url) as one, connect(server.url) as two:
        await go_live(dj, "conf_count")
        await one.request("SUBSCRIBE", sessionId="conf_count", clientId="client_count01")
        await two.request("SUBSCRIBE", sessionId="conf_count", clientId="client_count02")
        async with connect(server.url) as gone:  # left a minute ago: it still counts (§7)
            await gone.request("SUBSCRIBE", sessionId="conf_count", clientId="client_count03")
        with trio.fail_after(10):  # a kill -9 keeps what the last flush wrote, no more
            while _saved_listeners(db_url) != [
                ("client_count01", True),
                ("client_count02", True),
                ("client_count03", False),
            ]:
                await trio.sleep(0.05)
        await server.stop(how)

    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    try:
        async with connect(server.url) as newcomer:
            replies = await newcomer.request("SUBSCRIBE", sessionId="conf_count", clientId="client_count04")
            assert next(r for r in replies if r["type"] == "LISTENER_COUNT")["count"] == 4
            async with connect(server.url) as back:  # a dancer coming back is not counted twice
                await back.request("SUBSCRIBE", sessionId="conf_count", clientId="client_count01")
                listed = await newcomer.request("GET_SESSIONS")
                assert listed[0]["sessions"][0]["listenerCount"] == 4
    finally:
        await server.stop()


def _saved_listeners(db_url: str) -> list[tuple[str, bool]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT client_id, left_at IS NULL FROM session_listeners ORDER BY client_id"
        ).fetchall()


async def test_a_room_whose_lock_is_still_held_at_start_is_taken_up_once_the_lock_goes(
    db_url: str, tmp_path: Path
) -> None:
    """A worker restarted right after a SIGKILL may ask for its room before PostgreSQL has
    noticed the killed connection (whose lock it still holds): it asks again shortly and serves
    the room once the lock is gone, without waiting for the DJ to come back."""
    env = {"PIKA_DATABASE_URL": db_url, "PIKA_DJ_GRACE_SECONDS": "30"}
    port = free_port()
    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    async with connect(server.url) as dj:
        await go_live(dj, "conf_locked")
        assert await server.stop(signal.SIGTERM) == 0
    dead_owner = Ownership(db_url, load_queries(SQL_DIR / "queries"))  # the killed process's lock
    assert await dead_owner.claim("conf_locked")
    server = await ServerProcess.start(env, port, tmp_path / "server.log")
    try:
        assert await active_sessions(server) == 0  # locked at start: left alone
        await dead_owner.close()  # PostgreSQL notices the killed connection

        async def taken_up() -> bool:
            return await active_sessions(server) == 1

        await until(taken_up, 10)
        async with connect(server.url) as dancer:
            replies = await dancer.request("SUBSCRIBE", sessionId="conf_locked", clientId="client_locked1")
            assert types(replies)[-1] == "ACK"
    finally:
        await dead_owner.close()
        await server.stop()


async def active_sessions(server: ServerProcess) -> int | None:
    health = await trio.to_thread.run_sync(ServerProcess.health_at, server.url)
    return None if health is None else health["activeSessions"]
