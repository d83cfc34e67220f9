"""Several server processes (issue 17), continued: what a process answers about rooms another
one owns (SESSIONS_LIST, VALIDATE_SESSION), and a DJ's connections on a process that does not
own their room, forwarded to the owner (live/forward.py).  Real `python -m pika serve` processes."""

from __future__ import annotations

import re
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import psycopg

from pika.live.connection import CLOSE_REPLACED, CLOSE_RESTARTING
from tests.procs import ServerProcess
from tests.test_auth import register
from tests.test_relay import room_frames_until, servers, subscribed
from tests.test_server import fetch
from tests.wsclient import Peer, connect, go_live, track, types, until


async def valid(peer: Peer, session_id: str) -> bool:
    await peer.send("VALIDATE_SESSION", sessionId=session_id)
    return bool((await peer.recv_type("SESSION_VALID"))["isValid"])


async def test_a_dancer_on_another_process_sees_and_validates_the_room(db_url: str, tmp_path: Path) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "fwd_room_list", dj_name="DJ Far")
        await dj.request("BROADCAST_TRACK", sessionId="fwd_room_list", track=track("Listed"))
        await dj.request("SEND_ANNOUNCEMENT", sessionId="fwd_room_list", message="Welcome")
        dancer = await stack.enter_async_context(connect(b.url))

        async def listed() -> list[dict]:
            await dancer.send("GET_SESSIONS")
            sessions = (await dancer.recv_type("SESSIONS_LIST"))["sessions"]
            return [s for s in sessions if s["sessionId"] == "fwd_room_list"]

        async def listed_in_full() -> bool:
            entries = await listed()
            return bool(entries) and "activeAnnouncement" in entries[0]

        await until(listed_in_full)
        (entry,) = await listed()
        assert entry["djName"] == "DJ Far" and entry["currentTrack"]["title"] == "Listed"
        assert entry["activeAnnouncement"]["message"] == "Welcome"
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
            await dancer.send("GET_SESSIONS")
            listed = (await dancer.recv_type("SESSIONS_LIST"))["sessions"]
            assert [s["sessionId"] for s in listed] == ["fwd_room_seed"]


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
        # what ops sees: the resumed DJ's frames went to the owner and back, and the owner served them
        assert await forwarded(b, "to_owner") >= 2 and await forwarded(b, "from_owner") >= 4
        assert await forwarded(a, "served") >= 2 and await forwarded(a, "to_owner") == 0

        await again.ws.aclose()  # the forwarded DJ leaves: the grace period runs on the owner
        with psycopg.connect(db_url, autocommit=True) as conn:

            def away() -> bool:
                query = "SELECT dj_disconnected_at FROM sessions WHERE id = 'fwd_room_resume'"
                row = conn.execute(query).fetchone()
                return row is not None and row[0] is not None

            await until(away)


async def forwarded(server: ServerProcess, direction: str) -> float:
    text = (await fetch(server.url, "/metrics")).body.decode()
    found = re.search(rf'^pika_forwarded_frames_total{{direction="{direction}"}} (\S+)$', text, re.M)
    return 0.0 if found is None else float(found.group(1))


async def account(server: ServerProcess, email: str) -> str:
    reply = await register(server.url, email, "DJ Two Rooms")
    assert reply.status == 201, reply.body
    return reply.json()["token"]


async def signed_in_dj(
    stack: AsyncExitStack, server: ServerProcess, session_id: str, email: str
) -> tuple[Peer, str]:
    """A DJ with an account, live on `server` in `session_id`, and the token its consoles attach with."""
    token = await account(server, email)
    dj = await stack.enter_async_context(connect(server.url))
    registered = await dj.request("REGISTER_SESSION", sessionId=session_id, token=token)
    assert registered[-1]["type"] == "ACK", registered
    return dj, token


async def test_a_console_on_another_process_acts_for_the_dj_and_hears_what_the_dj_hears(
    db_url: str, tmp_path: Path
) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj, token = await signed_in_dj(stack, a, "fwd_room_console", "console_far@example.com")
        await dj.request("BROADCAST_TRACK", sessionId="fwd_room_console", track=track("Playing"))
        console = await stack.enter_async_context(connect(b.url))

        attached = await console.request("ATTACH_SESSION", sessionId="fwd_room_console", token=token)

        assert types(attached)[0] == "SESSION_REGISTERED" and attached[-1]["type"] == "ACK", attached
        assert "resumeKey" not in attached[0]
        assert next(m for m in attached if m["type"] == "NOW_PLAYING")["track"]["title"] == "Playing"
        near = await subscribed(stack, a, "fwd_room_console", "client_near_002")
        far = await subscribed(stack, b, "fwd_room_console", "client_far_0002")
        started = await console.request(
            "START_POLL", sessionId="fwd_room_console", question="Next?", options=["Tango", "Vals"]
        )
        assert started[-1]["type"] == "ACK", started
        for dancer in (near, far):
            assert (await dancer.recv_type("POLL_STARTED"))["question"] == "Next?"
        assert (await dj.recv_type("POLL_STARTED"))["question"] == "Next?"

        for dancer in (near, far):
            liked = await dancer.request(
                "SEND_LIKE", sessionId="fwd_room_console", payload={"track": track("Playing")}
            )
            assert liked[-1]["type"] == "ACK", liked
        likes = [await console.recv_type("LIKE_RECEIVED") for _ in range(2)]
        assert [m["payload"]["track"]["title"] for m in likes] == ["Playing", "Playing"]
        refused = await console.request("REGISTER_SESSION", sessionId="fwd_room_console", token=token)
        assert refused[-1]["error"] == "A controller cannot register a session; it is attached to one"


async def test_a_forwarded_console_reconnects_when_the_owner_is_killed_and_resumes(
    db_url: str, tmp_path: Path
) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        _, token = await signed_in_dj(stack, a, "fwd_room_killed", "console_kill@example.com")
        console = await stack.enter_async_context(connect(b.url))
        await console.request("ATTACH_SESSION", sessionId="fwd_room_killed", token=token)
        acked = await console.request("BROADCAST_TRACK", sessionId="fwd_room_killed", track=track("Acked"))
        assert acked[-1]["type"] == "ACK"

        await a.stop(signal.SIGKILL)

        assert await console.closed_with(timeout=15) == CLOSE_RESTARTING
        again = await stack.enter_async_context(connect(b.url))
        attached = await again.request("ATTACH_SESSION", sessionId="fwd_room_killed", token=token)
        assert attached[-1]["type"] == "ACK", attached
        assert next(m for m in attached if m["type"] == "NOW_PLAYING")["track"]["title"] == "Acked"
        moved = await again.request("BROADCAST_TRACK", sessionId="fwd_room_killed", track=track("After"))
        assert moved[-1]["type"] == "ACK", moved
