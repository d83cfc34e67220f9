"""Several server processes sharing live rooms (issue 17): a DJ on one process, dancers on
others, over one database.  Each server is a real `python -m pika serve` process."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import psycopg

from tests.procs import ServerProcess, free_port
from tests.wsclient import Peer, connect, go_live, track, until

ROOM_FRAMES = {"NOW_PLAYING", "POLL_STARTED", "POLL_UPDATE", "POLL_ENDED", "ANNOUNCEMENT_RECEIVED"}


@asynccontextmanager
async def servers(
    db_url: str, tmp_path: Path, count: int, settings: dict[str, str] | None = None
) -> AsyncIterator[list[ServerProcess]]:
    """`count` separate server processes on one database (with these PIKA_* `settings` too)."""
    env = {"PIKA_DATABASE_URL": db_url, "PIKA_DJ_GRACE_SECONDS": "30", **(settings or {})}
    started: list[ServerProcess] = []
    try:
        for n in range(count):
            started.append(await ServerProcess.start(env, free_port(), tmp_path / f"server{n}.log"))
        yield started
    finally:
        for server in started:
            if server.proc.poll() is None:
                await server.stop(signal.SIGTERM)


async def subscribed(
    stack: AsyncExitStack, server: ServerProcess, session_id: str, client_id: str | None = None
) -> Peer:
    dancer = await stack.enter_async_context(connect(server.url))
    identity = {} if client_id is None else {"clientId": client_id}
    replies = await dancer.request("SUBSCRIBE", sessionId=session_id, **identity)
    assert replies[-1]["type"] == "ACK", replies
    return dancer


async def room_frames_until(peer: Peer, last: str) -> list[dict]:
    """The room frames `peer` gets up to and including the first of type `last`."""
    got: list[dict] = []
    while True:
        message = await peer.recv()
        if message["type"] in ROOM_FRAMES | {"SESSION_ENDED"}:
            got.append(message)
            if message["type"] == last:
                return got


async def test_a_dj_on_one_process_reaches_dancers_on_the_others_once_and_in_order(
    db_url: str, tmp_path: Path
) -> None:
    async with servers(db_url, tmp_path, 3) as (a, b, c), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "relay_room_01")
        await dj.request("BROADCAST_TRACK", sessionId="relay_room_01", track=track("First"))
        dancers = [await subscribed(stack, server, "relay_room_01") for server in (b, b, c)]

        await dj.request("BROADCAST_TRACK", sessionId="relay_room_01", track=track("Second"))
        await dj.request("START_POLL", sessionId="relay_room_01", question="Next?", options=["Tango", "Vals"])
        await dj.request("SEND_ANNOUNCEMENT", sessionId="relay_room_01", message="Last tanda!")
        await dj.request("END_SESSION", sessionId="relay_room_01")

        for dancer in dancers:
            got = await room_frames_until(dancer, "SESSION_ENDED")
            assert [m["type"] for m in got] == [
                "NOW_PLAYING",
                "POLL_STARTED",
                "ANNOUNCEMENT_RECEIVED",
                "POLL_ENDED",
                "SESSION_ENDED",
            ]
            assert got[0]["track"]["title"] == "Second"
            assert await dancer.nothing_within(0.5) == []  # nothing twice


async def test_a_subscriber_on_another_process_gets_the_room_as_it_is(db_url: str, tmp_path: Path) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "relay_room_02")
        await dj.request("BROADCAST_TRACK", sessionId="relay_room_02", track=track("Playing"))
        await dj.request("START_POLL", sessionId="relay_room_02", question="Next?", options=["Tango", "Vals"])
        await dj.request("SEND_ANNOUNCEMENT", sessionId="relay_room_02", message="Welcome")

        dancer = await stack.enter_async_context(connect(b.url))
        replies = await dancer.request("SUBSCRIBE", sessionId="relay_room_02")

        shown = [m for m in replies if m["type"] in ROOM_FRAMES]
        assert [m["type"] for m in shown] == ["NOW_PLAYING", "POLL_STARTED", "ANNOUNCEMENT_RECEIVED"]
        assert shown[0]["track"]["title"] == "Playing"
        assert shown[1]["options"] == ["Tango", "Vals"] and shown[1]["hasVoted"] is False
        assert shown[2]["message"] == "Welcome"


async def test_the_listener_count_is_the_union_over_processes(db_url: str, tmp_path: Path) -> None:
    async with servers(db_url, tmp_path, 3) as (a, b, c), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "relay_room_03")
        local = await subscribed(stack, a, "relay_room_03")
        remote = await subscribed(stack, b, "relay_room_03")
        await subscribed(stack, c, "relay_room_03")

        async def counted(peer: Peer, want: int) -> None:
            while (await peer.recv_type("LISTENER_COUNT"))["count"] != want:
                pass

        await counted(dj, 3)
        await counted(local, 3)
        await counted(remote, 3)

        late = await stack.enter_async_context(connect(b.url))
        replies = await late.request("SUBSCRIBE", sessionId="relay_room_03")
        # the owner's last count and this listener, as one process would count it
        assert next(m for m in replies if m["type"] == "LISTENER_COUNT")["count"] == 4
        await counted(dj, 4)
        await counted(late, 4)


async def test_a_killed_process_s_dancers_stop_counting_on_the_owner(db_url: str, tmp_path: Path) -> None:
    """B dies without a word to the owner: its dancers stop counting once B has not reported
    its members for a while (live/listeners.py REPORT_LAPSE), then linger like any dancer who left
    (1 s here); one of them reconnects to A and goes on counting, once."""
    linger = {"PIKA_LISTENER_LINGER_SECONDS": "1"}
    async with servers(db_url, tmp_path, 2, linger) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "relay_room_08")
        near = await subscribed(stack, a, "relay_room_08", "client_near_0008")
        await subscribed(stack, b, "relay_room_08", "client_back_0008")
        await subscribed(stack, b, "relay_room_08", "client_gone_0008")

        async def counted(peer: Peer, want: int) -> bool:
            return (await peer.recv_type("LISTENER_COUNT", timeout=60))["count"] == want

        await until(lambda: counted(dj, 3))
        await until(lambda: counted(near, 3))

        await b.stop(signal.SIGKILL)
        await subscribed(stack, a, "relay_room_08", "client_back_0008")  # its phone reconnects to A

        await until(lambda: counted(dj, 2), seconds=60)
        await until(lambda: counted(near, 2), seconds=60)
        await dj.send("GET_SESSIONS")
        (listed,) = (await dj.recv_type("SESSIONS_LIST"))["sessions"]
        assert listed["listenerCount"] == 2


async def test_dancer_actions_on_another_process_are_stored_and_reach_the_dj(
    db_url: str, tmp_path: Path
) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "relay_room_04")
        await dj.request("BROADCAST_TRACK", sessionId="relay_room_04", track=track("Liked", "Band"))
        dancer = await stack.enter_async_context(connect(b.url))
        await dancer.request("SUBSCRIBE", sessionId="relay_room_04", clientId="client_far_0001")

        liked = await dancer.request(
            "SEND_LIKE", sessionId="relay_room_04", payload={"track": track("Liked", "Band")}
        )
        assert liked[-1]["type"] == "ACK", liked
        assert (await dj.recv_type("LIKE_RECEIVED"))["payload"]["track"]["title"] == "Liked"
        with psycopg.connect(db_url) as conn:
            stored = conn.execute("SELECT client_id FROM likes WHERE session_id = 'relay_room_04'").fetchall()
        assert stored == [("client_far_0001",)]
        again = await dancer.request(
            "SEND_LIKE", sessionId="relay_room_04", payload={"track": track("Liked", "Band")}
        )
        assert again[-1]["type"] == "NACK" and again[-1]["error"] == "Already liked this track"
        await dj.request("BROADCAST_TRACK", sessionId="relay_room_04", track=track("Queued", "Band"))
        queued = [track("Liked", "Band"), track("Queued", "Band")]  # a phone's offline queue
        bulk = await dancer.request("SEND_BULK_LIKE", sessionId="relay_room_04", payload={"tracks": queued})
        assert bulk[-1]["type"] == "ACK", bulk
        assert (await dj.recv_type("LIKE_RECEIVED"))["payload"]["track"][
            "title"
        ] == "Queued"  # the new one only

        await dancer.request("SEND_TEMPO_REQUEST", sessionId="relay_room_04", preference="faster")
        feedback = await dj.recv_type("TEMPO_FEEDBACK")
        assert (feedback["faster"], feedback["total"]) == (1, 1)

        await dancer.request("SEND_REACTION", sessionId="relay_room_04", reaction="thank_you")
        assert (await dj.recv_type("REACTION_RECEIVED"))["reaction"] == "thank_you"

        replies = await dj.request(
            "START_POLL", sessionId="relay_room_04", question="Next?", options=["A", "B"]
        )
        poll_id = next(m for m in replies if m["type"] == "POLL_STARTED")["pollId"]
        await dancer.recv_type("POLL_STARTED")
        voted = await dancer.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=1)
        assert next(m for m in voted if m["type"] == "VOTE_CONFIRMED")["votes"] == [0, 1]
        assert (await dj.recv_type("POLL_UPDATE"))["votes"] == [0, 1]
        assert (await dancer.recv_type("POLL_UPDATE"))["votes"] == [0, 1]  # the owner's, relayed


async def test_a_dancer_on_another_process_acts_on_the_room_as_it_is_now(db_url: str, tmp_path: Path) -> None:
    """The far process keeps the room as the owner's frames leave it: a vote after a new track
    counts for the new one, a vote on a poll that has just ended is refused."""
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        await go_live(dj, "relay_room_07")
        await dj.request("BROADCAST_TRACK", sessionId="relay_room_07", track=track("First"))
        dancer = await subscribed(stack, b, "relay_room_07", "client_far_0007")
        for title in ("Second", "Third"):
            await dancer.request("SEND_TEMPO_REQUEST", sessionId="relay_room_07", preference="slower")
            await dj.request("BROADCAST_TRACK", sessionId="relay_room_07", track=track(title))
            assert (await dancer.recv_type("NOW_PLAYING"))["track"]["title"] == title
        voted = await dancer.request("SEND_TEMPO_REQUEST", sessionId="relay_room_07", preference="faster")
        assert voted[-1]["type"] == "ACK", voted
        feedback = await dj.recv_type("TEMPO_FEEDBACK")
        while (feedback["faster"], feedback["total"]) != (1, 1):  # the DJ hears it for "Third"
            feedback = await dj.recv_type("TEMPO_FEEDBACK")
        with psycopg.connect(db_url) as conn:
            votes = conn.execute(
                "SELECT p.title, v.preference FROM tempo_votes v"
                " JOIN played_tracks p ON p.id = v.played_track_id"
                " WHERE p.session_id = 'relay_room_07' ORDER BY p.played_at"
            ).fetchall()
        assert votes == [("First", "slower"), ("Second", "slower"), ("Third", "faster")]

        poll = {"sessionId": "relay_room_07", "question": "Next?", "options": ["A", "B"]}
        started = await dj.request("START_POLL", **poll)
        poll_id = next(m for m in started if m["type"] == "POLL_STARTED")["pollId"]
        await dancer.recv_type("POLL_STARTED")
        assert (await dancer.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=0))[-1]["type"] == "ACK"
        await dj.request("END_POLL", pollId=poll_id)
        await dancer.recv_type("POLL_ENDED")
        again = await dancer.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=1)
        assert next(m for m in again if m["type"] == "VOTE_REJECTED")["reason"] == "Poll has ended"


async def test_the_dj_resumes_on_another_process_when_the_owner_is_killed(
    db_url: str, tmp_path: Path
) -> None:
    async with servers(db_url, tmp_path, 2) as (a, b), AsyncExitStack() as stack:
        dj = await stack.enter_async_context(connect(a.url))
        registered = await go_live(dj, "relay_room_05")
        await dj.request("BROADCAST_TRACK", sessionId="relay_room_05", track=track("Before"))
        poll = {"sessionId": "relay_room_05", "question": "Next?", "options": ["A", "B"], "messageId": "p1"}
        assert (await dj.request("START_POLL", **poll))[-1]["type"] == "ACK"
        dancer = await subscribed(stack, b, "relay_room_05")

        await a.stop(signal.SIGKILL)

        again = await stack.enter_async_context(connect(b.url))
        replies = await again.request(
            "REGISTER_SESSION", sessionId="relay_room_05", resumeKey=registered["resumeKey"]
        )
        assert replies[-1]["type"] == "ACK", replies
        assert next(m for m in replies if m["type"] == "NOW_PLAYING")["track"]["title"] == "Before"
        # the DJ software's retry of what the killed owner ACKed: answered ACK, started nothing again
        retried = await again.request("START_POLL", **poll)
        answered = [m["type"] for m in retried if m["type"] in {"ACK", "NACK", "POLL_STARTED"}]
        assert answered == ["ACK"], retried
        await again.request("BROADCAST_TRACK", sessionId="relay_room_05", track=track("After"))
        got = await room_frames_until(dancer, "NOW_PLAYING")
        assert [(m["type"], m.get("track", {}).get("title")) for m in got] == [("NOW_PLAYING", "After")]
