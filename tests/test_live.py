"""The live core over real WebSockets against the real server and a real PostgreSQL."""

from __future__ import annotations

import time

import pytest
import trio

from pika.protocol import iso
from pika.server import Running
from tests.conftest import FRAME_LIMIT, rows
from tests.wsclient import connect, go_live, track, types


async def test_a_dj_goes_live_and_a_dancer_sees_the_track(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as dancer:
        registered = await go_live(dj, "conf_0001", "DJ Kool")
        assert registered["sessionId"] == "conf_0001"
        assert registered["authenticated"] is False
        assert len(registered["resumeKey"]) >= 16
        await dancer.request("SUBSCRIBE", sessionId="conf_0001", clientId="client_aaaaaaaa")
        replies = await dj.request(
            "BROADCAST_TRACK", sessionId="conf_0001", track=track("Billie Jean", "Michael Jackson")
        )
        assert "NOW_PLAYING" in types(replies)
        now_playing = await dancer.recv_type("NOW_PLAYING")
        assert now_playing["track"] == {"title": "Billie Jean", "artist": "Michael Jackson"}
        assert now_playing["djName"] == "DJ Kool"
    assert rows(server, "SELECT artist, title FROM played_tracks") == [("Michael Jackson", "Billie Jean")]


async def test_a_late_joiner_gets_the_bundle_in_order(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "conf_0001")
        await dj.request(
            "BROADCAST_TRACK", sessionId="conf_0001", track=track("Billie Jean", "Michael Jackson")
        )
        async with connect(server.url) as dancer:
            replies = await dancer.request("SUBSCRIBE", sessionId="conf_0001", clientId="client_late_0001")
            assert types(replies) == ["SESSIONS_LIST", "LISTENER_COUNT", "NOW_PLAYING", "ACK"]
            assert replies[1]["count"] == 1
            assert replies[0]["sessions"][0]["sessionId"] == "conf_0001"
            assert replies[0]["sessions"][0]["currentTrack"]["title"] == "Billie Jean"


async def test_subscribing_to_an_unknown_session_says_ended_and_counts_no_listener(server: Running) -> None:
    async with connect(server.url) as dancer:
        replies = await dancer.request("SUBSCRIBE", sessionId="nobody_here", clientId="client_aaaaaaaa")
        assert types(replies) == ["SESSIONS_LIST", "LISTENER_COUNT", "SESSION_ENDED", "ACK"]
        assert replies[1]["count"] == 0


async def test_fifty_dancers_receive_twenty_fast_tracks_in_order(nursery: trio.Nursery, db_url: str) -> None:
    from pika.server import serve
    from tests.conftest import test_settings

    running = await nursery.start(serve, test_settings(db_url, track_burst=100))
    titles = [f"Track {i:02d}" for i in range(20)]
    received: dict[int, list[str]] = {}

    async def dancer(i: int, ready: trio.Event, task_status: trio.TaskStatus[None]) -> None:
        async with connect(running.url) as peer:
            await peer.request("SUBSCRIBE", sessionId="conf_fast", clientId=f"client_{i:08d}")
            task_status.started()
            got: list[str] = []
            while len(got) < len(titles):
                message = await peer.recv_type("NOW_PLAYING", timeout=20)
                got.append(message["track"]["title"])
            received[i] = got

    async with connect(running.url) as dj:
        await go_live(dj, "conf_fast")
        async with trio.open_nursery() as dancers:
            for i in range(50):
                await dancers.start(dancer, i, trio.Event())
            for title in titles:  # as fast as it can: no waiting for ACKs
                await dj.send("BROADCAST_TRACK", sessionId="conf_fast", track=track(title), messageId=title)
    assert len(received) == 50
    assert all(got == titles for got in received.values())
    assert [r[0] for r in rows(running, "SELECT title FROM played_tracks ORDER BY id")] == titles


async def test_two_sessions_never_see_each_others_events(server: Running) -> None:
    async with (
        connect(server.url) as dj_a,
        connect(server.url) as dj_b,
        connect(server.url) as dancer_a,
        connect(server.url) as dancer_b,
    ):
        await go_live(dj_a, "session_a")
        await go_live(dj_b, "session_b")
        await dancer_a.request("SUBSCRIBE", sessionId="session_a", clientId="client_aaaaaaaa")
        await dancer_b.request("SUBSCRIBE", sessionId="session_b", clientId="client_bbbbbbbb")
        await dj_a.request("BROADCAST_TRACK", sessionId="session_a", track=track("Only A"))
        assert (await dancer_a.recv_type("NOW_PLAYING"))["track"]["title"] == "Only A"
        leaked = await dancer_b.nothing_within(0.5)
        assert "NOW_PLAYING" not in types(leaked)


async def test_a_retried_broadcast_is_applied_once(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as dancer:
        await go_live(dj, "conf_retry")
        await dancer.request("SUBSCRIBE", sessionId="conf_retry", clientId="client_aaaaaaaa")
        first = await dj.request(
            "BROADCAST_TRACK", sessionId="conf_retry", track=track("Once"), messageId="same-id"
        )
        second = await dj.request(
            "BROADCAST_TRACK", sessionId="conf_retry", track=track("Once"), messageId="same-id"
        )
        assert types(first).count("ACK") == 1 and "NOW_PLAYING" in types(first)
        assert types(second) == ["ACK"]
        assert (await dancer.recv_type("NOW_PLAYING"))["track"]["title"] == "Once"
        assert "NOW_PLAYING" not in types(await dancer.nothing_within(0.3))
    assert rows(server, "SELECT count(*) FROM played_tracks") == [(1,)]


async def test_the_same_track_again_is_acked_without_a_new_play(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "conf_same")
        await dj.request("BROADCAST_TRACK", sessionId="conf_same", track=track("Again", bpm=100))
        replies = await dj.request(
            "BROADCAST_TRACK", sessionId="conf_same", track=track("  again ", "test  ARTIST")
        )
        assert types(replies) == ["ACK"]
        replies = await dj.request("BROADCAST_TRACK", sessionId="conf_same", track=track("Again", bpm=102))
        assert types(replies) == ["METADATA_UPDATED", "ACK"]
        assert replies[0]["track"] == {"title": "Again", "artist": "Test Artist", "bpm": 102}
    assert rows(server, "SELECT count(*), max(bpm) FROM played_tracks") == [(1, 102)]


async def test_only_the_sessions_dj_can_broadcast(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as intruder:
        await go_live(dj, "conf_owned")
        replies = await intruder.request("BROADCAST_TRACK", sessionId="conf_owned", track=track("Hijack"))
        assert replies[-1]["type"] == "NACK"
        assert replies[-1]["error"] == "Not the DJ of this session"
        taken = await intruder.request("REGISTER_SESSION", sessionId="conf_owned")
        assert taken[-1]["error"] == "Session is live on another connection"
    assert rows(server, "SELECT count(*) FROM played_tracks") == [(0,)]


async def test_bad_input_gets_a_specific_error_and_the_connection_stays(server: Running) -> None:
    async with connect(server.url) as peer:
        await peer.send_raw("{not json")
        assert (await peer.recv())["type"] == "ERROR"
        nack = await peer.request(
            "BROADCAST_TRACK", sessionId="conf_0001", track={"title": "   ", "artist": "x"}
        )
        assert nack[-1]["type"] == "NACK"
        assert "track.title" in nack[-1]["error"]
        assert types(await peer.request("PING")) == ["PONG", "ACK"]


@pytest.mark.pair_excluded(FRAME_LIMIT)
async def test_a_frame_over_64_kib_closes_with_1009(server: Running) -> None:
    async with connect(server.url, max_message_size=2**20) as peer:
        await peer.send_raw('{"type":"PING","pad":"' + "x" * 70_000 + '"}')
        assert await peer.closed_with() == 1009


async def test_validate_session_and_get_sessions(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as other:
        await go_live(dj, "conf_valid")
        await other.send("VALIDATE_SESSION", sessionId="conf_valid")  # at once: valid, wherever asked
        heard: dict[str, dict] = {}
        while len(heard) < 2:  # and SESSION_STARTED, before or after it
            message = await other.recv()
            if message["type"] in ("SESSION_VALID", "SESSION_STARTED"):
                heard[message["type"]] = message
        assert heard["SESSION_VALID"] == {"type": "SESSION_VALID", "sessionId": "conf_valid", "isValid": True}
        await other.send("VALIDATE_SESSION", sessionId="conf_nope_")
        assert (await other.recv_type("SESSION_VALID"))["isValid"] is False
        await other.send("GET_SESSIONS")
        sessions = (await other.recv_type("SESSIONS_LIST"))["sessions"]
        assert [s["sessionId"] for s in sessions] == ["conf_valid"]


async def test_end_session_tells_everyone_and_closes_the_row(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as bystander:
        await go_live(dj, "conf_end")
        await bystander.recv_type("SESSION_STARTED")
        await dj.request("END_SESSION", sessionId="conf_end")
        assert (await bystander.recv_type("SESSION_ENDED"))["sessionId"] == "conf_end"
    assert rows(server, "SELECT ended_at IS NOT NULL, end_reason FROM sessions") == [(True, "dj_ended")]


async def test_the_flood_guard_judges_tracks_when_the_dj_played_them(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as held:
        await go_live(dj, "conf_pace")
        await go_live(held, "conf_held")
        start = time.time() - 300
        for i in range(15):  # sent at once by both: `dj` says it played all 15 at one moment, `held`
            # one every 20 s.  Judged on those timelines, however long the round trips take here.
            fresh = await dj.request(
                "BROADCAST_TRACK", sessionId="conf_pace", track=track(f"Fresh {i}"), playedAt=iso(start)
            )
            assert fresh[-1]["type"] == ("ACK" if i < 10 else "NACK"), fresh[-1]  # a burst of 10, then 1/s
            replies = await held.request(
                "BROADCAST_TRACK",
                sessionId="conf_held",
                track=track(f"Held {i}"),
                playedAt=iso(start + 20 * i),
            )
            assert replies[-1]["type"] == "ACK", replies[-1]  # a backlog the DJ's client held is no flood
        assert fresh[-1]["error"] == "Rate limit exceeded"
    titles = [
        r[0]
        for r in rows(server, "SELECT title FROM played_tracks WHERE session_id = 'conf_held' ORDER BY id")
    ]
    assert titles == [f"Held {i}" for i in range(15)]
