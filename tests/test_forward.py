"""Several server processes (issue 17), continued: what a process answers about rooms another
one owns (SESSIONS_LIST, VALIDATE_SESSION), and a DJ's connections on a process that does not
own their room, forwarded to the owner (live/forward.py).  Real `python -m pika serve` processes."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import psycopg

from pika.live.connection import CLOSE_REPLACED
from tests.test_relay import room_frames_until, servers, subscribed
from tests.wsclient import Peer, connect, go_live, track, types, until


async def valid(peer: Peer, session_id: str) -> bool:
    await peer.send("VALIDATE_SESSION", sessionId=session_id)
    return bool((await peer.recv_type("SESSION_VALID"))["isValid"])


async def test_a_dancer_on_another_process_sees_and_validates_the_room(db_url: str, tmp_path: Path) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "fwd_room_list", dj_name="DJ Far")
        await dj.request("BROADCAST_TRACK", sessionId="fwd_room_list", track=track("Listed"))
        dancer = await stack.enter_async_context(connect(b.url))

        async def listed() -> list[dict]:
            await dancer.send("GET_SESSIONS")
            sessions = (await dancer.recv_type("SESSIONS_LIST"))["sessions"]
            return [s for s in sessions if s["sessionId"] == "fwd_room_list"]

        async def listed_with_track() -> bool:
            entries = await listed()
            return bool(entries) and "currentTrack" in entries[0]

        await until(listed_with_track)
        (entry,) = await listed()
        assert entry["djName"] == "DJ Far" and entry["currentTrack"]["title"] == "Listed"
        assert await valid(dancer, "fwd_room_list")

        await dj.request("END_SESSION", sessionId="fwd_room_list")

        async def ended() -> bool:
            return not await valid(dancer, "fwd_room_list")

        await until(ended)
        assert await listed() == []

    # a process started after the room went live knows it from PostgreSQL
    async with servers(db_url, tmp_path, 1) as (a,), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "fwd_room_seed")
        async with servers(db_url, tmp_path, 1) as (late,):
            dancer = await stack.enter_async_context(connect(late.url))
            assert await valid(dancer, "fwd_room_seed")


async def test_the_dj_resumes_on_another_process_while_the_owner_runs(db_url: str, tmp_path: Path) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        registered = await go_live(dj, "fwd_room_resume")
        await dj.request("BROADCAST_TRACK", sessionId="fwd_room_resume", track=track("Before"))
        near = await subscribed(stack, a, "fwd_room_resume")
        far = await subscribed(stack, b, "fwd_room_resume")
        again = await stack.enter_async_context(connect(b.url))

        replies = await again.request(
            "REGISTER_SESSION", sessionId="fwd_room_resume", resumeKey=registered["resumeKey"]
        )

        assert types(replies)[0] == "SESSION_REGISTERED" and replies[-1]["type"] == "ACK", replies
        assert replies[0]["resumeKey"] == registered["resumeKey"]
        assert next(m for m in replies if m["type"] == "NOW_PLAYING")["track"]["title"] == "Before"
        assert await dj.closed_with() == CLOSE_REPLACED  # as on one process
        stored = await again.request("BROADCAST_TRACK", sessionId="fwd_room_resume", track=track("After"))
        assert stored[-1]["type"] == "ACK"
        for dancer in (near, far):
            assert [m["track"]["title"] for m in await room_frames_until(dancer, "NOW_PLAYING")] == ["After"]
        await near.request(
            "SEND_LIKE",
            sessionId="fwd_room_resume",
            clientId="client_near_001",
            payload={"track": track("After")},
        )
        assert (await again.recv_type("LIKE_RECEIVED"))["payload"]["track"]["title"] == "After"

        await again.ws.aclose()  # the forwarded DJ leaves: the grace period runs on the owner
        with psycopg.connect(db_url, autocommit=True) as conn:

            def away() -> bool:
                query = "SELECT dj_disconnected_at FROM sessions WHERE id = 'fwd_room_resume'"
                row = conn.execute(query).fetchone()
                return row is not None and row[0] is not None

            await until(away)
