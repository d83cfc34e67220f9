"""Restart without loss: a real server process stopped (gracefully, or with SIGKILL) mid-session."""

from __future__ import annotations

import signal
from pathlib import Path

import psycopg
import pytest

from tests.procs import ServerProcess, free_port
from tests.wsclient import connect, go_live, track, types


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
