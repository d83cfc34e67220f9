"""ATTACH_SESSION: a DJ console joins its account's live session as a controller (PROTOCOL.md §2, §3.1).

Real server, real sockets: the DJ software (a protocol client with the account's token) keeps
the session; the console hears what the DJ hears and acts as it, without displacing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from pika.server import Running, serve
from tests.conftest import rows, test_settings
from tests.test_owned_sessions import signed_up
from tests.wsclient import Peer, connect, track, types, until

SID = "console_01"


async def live(dj: Peer, token: str, session_id: str = SID) -> dict[str, Any]:
    replies = await dj.request("REGISTER_SESSION", sessionId=session_id, token=token)
    assert replies[-1]["type"] == "ACK", replies
    return next(r for r in replies if r["type"] == "SESSION_REGISTERED")


async def attach(peer: Peer, token: str, session_id: str = SID, **extra: Any) -> list[dict[str, Any]]:
    return await peer.request("ATTACH_SESSION", sessionId=session_id, token=token, **extra)


async def frames_until(peer: Peer, kinds: set[str]) -> dict[str, dict[str, Any]]:
    """Read until one frame of each of `kinds` arrived (in any order); the first of each."""
    got: dict[str, dict[str, Any]] = {}
    while not kinds <= got.keys():
        message = await peer.recv()
        got.setdefault(message["type"], message)
    return got


@asynccontextmanager
async def dancer(url: str, client_id: str, session_id: str = SID) -> AsyncIterator[Peer]:
    async with connect(url) as peer:
        await peer.request("SUBSCRIBE", sessionId=session_id, clientId=client_id)
        yield peer


async def test_a_console_attaches_and_gets_the_session_state_like_a_resuming_dj(server: Running) -> None:
    token = await signed_up(server, "console@example.com", "DJ Console")
    async with connect(server.url) as dj, dancer(server.url, "dancer_00000001") as fan:
        await live(dj, token)
        await dj.request("BROADCAST_TRACK", sessionId=SID, track=track("Now On"))
        await dj.request("START_POLL", sessionId=SID, question="Next?", options=["Tango", "Vals"])
        poll_id = (await fan.recv_type("POLL_STARTED"))["pollId"]
        await fan.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=0)
        await fan.request("SEND_TEMPO_REQUEST", sessionId=SID, preference="faster")
        await dj.request("SEND_ANNOUNCEMENT", sessionId=SID, message="Last tanda", durationSeconds=600)
        async with connect(server.url) as console:
            replies = await attach(console, token)
            assert types(replies) == [
                "SESSION_REGISTERED",
                "NOW_PLAYING",
                "POLL_STARTED",
                "ANNOUNCEMENT_RECEIVED",
                "TEMPO_FEEDBACK",
                "LISTENER_COUNT",
                "ACK",
            ]
            registered, playing, poll, announcement, tempo, count, _ = replies
            assert registered == {
                "type": "SESSION_REGISTERED",
                "sessionId": SID,
                "djName": "DJ Console",
                "authenticated": True,
            }  # no resumeKey: a console cannot take the session
            assert playing["track"]["title"] == "Now On"
            assert (poll["pollId"], poll["votes"], poll["totalVotes"]) == (poll_id, [1, 0], 1)
            assert announcement["message"] == "Last tanda"
            assert (tempo["faster"], tempo["total"]) == (1, 1)
            assert count["count"] == 1  # the console is not a listener
            assert server.hub.rooms[SID].listener_count() == 1


async def test_sessions_a_console_may_not_attach_to_are_not_available(server: Running) -> None:
    token = await signed_up(server, "mine@example.com", "DJ Mine")
    other = await signed_up(server, "other@example.com", "DJ Other")
    async with connect(server.url) as anon, connect(server.url) as rival, connect(server.url) as console:
        assert (await anon.request("REGISTER_SESSION", sessionId="anon_0001"))[-1]["type"] == "ACK"
        await live(rival, other, "ended_0001")
        await rival.request("END_SESSION", sessionId="ended_0001")
        await live(rival, other, "rival_0001")
        for session_id in ("anon_0001", "rival_0001", "ended_0001", "never_0001"):
            refused = await attach(console, token, session_id)
            assert "SESSION_REGISTERED" not in types(refused), session_id
            assert refused[-1]["error"] == "Session not available", session_id
        wrong = await attach(console, "pk_dj_" + "0" * 32, "rival_0001")
        assert wrong[-1]["error"] == "Invalid token"
        missing = await console.request("ATTACH_SESSION", sessionId="rival_0001")
        assert missing[-1]["error"].startswith("token: is required")
        bad_id = await attach(console, other, "short")
        assert bad_id[-1]["error"] == "sessionId: must be 8-64 characters of A-Z a-z 0-9 _ -"
        hijack = await console.request("BROADCAST_TRACK", sessionId="rival_0001", track=track("Hijack"))
        assert hijack[-1]["error"] == "Not the DJ of this session"
        itself = await attach(rival, other, "rival_0001")  # the DJ connection is no console of its own
        assert itself[-1]["error"] == "This connection is the DJ of a session; attach from another connection"
        assert server.hub.rooms["rival_0001"].dj_conn is not None
    assert not server.hub.rooms["rival_0001"].controllers


async def test_at_most_five_consoles_attach_to_one_session(server: Running) -> None:
    token = await signed_up(server, "five@example.com", "DJ Five")
    async with connect(server.url) as dj:
        await live(dj, token)
        async with (
            connect(server.url) as c1,
            connect(server.url) as c2,
            connect(server.url) as c3,
            connect(server.url) as c4,
            connect(server.url) as c5,
            connect(server.url) as c6,
        ):
            for console in (c1, c2, c3, c4, c5):
                assert (await attach(console, token))[-1]["type"] == "ACK"
            assert (await attach(c1, token))[-1]["type"] == "ACK"  # attaching again is no sixth
            assert (await attach(c6, token))[-1]["error"] == "Too many controllers"
        async with connect(server.url) as again:  # the closed ones left room for it
            await until(lambda: not server.hub.rooms[SID].controllers)
            assert (await attach(again, token))[-1]["type"] == "ACK"


async def test_the_console_hears_the_crowd_and_runs_it_as_the_dj_would(server: Running) -> None:
    token = await signed_up(server, "crowd@example.com", "DJ Crowd")
    async with (
        connect(server.url) as dj,
        connect(server.url) as console,
        dancer(server.url, "dancer_00000002") as fan,
    ):
        await live(dj, token)
        await attach(console, token)
        played = await console.request("BROADCAST_TRACK", sessionId=SID, track=track("From The Phone"))
        assert played[-1]["type"] == "ACK"
        assert (await fan.recv_type("NOW_PLAYING"))["track"]["title"] == "From The Phone"
        assert (await dj.recv_type("NOW_PLAYING"))["track"]["title"] == "From The Phone"

        await fan.request("SEND_LIKE", sessionId=SID, payload={"track": track("From The Phone")})
        await fan.request("SEND_TEMPO_REQUEST", sessionId=SID, preference="slower")
        await fan.request("SEND_REACTION", sessionId=SID, reaction="thank_you")
        for peer in (console, dj):
            crowd = await frames_until(peer, {"LIKE_RECEIVED", "TEMPO_FEEDBACK", "REACTION_RECEIVED"})
            assert crowd["LIKE_RECEIVED"]["payload"]["track"]["title"] == "From The Phone"
            assert crowd["TEMPO_FEEDBACK"]["slower"] == 1
            assert crowd["REACTION_RECEIVED"]["reaction"] == "thank_you"

        started = await console.request("START_POLL", sessionId=SID, question="More?", options=["Yes", "No"])
        poll_id = next(m for m in started if m["type"] == "POLL_STARTED")["pollId"]
        await fan.request(
            "VOTE_ON_POLL", pollId=(await fan.recv_type("POLL_STARTED"))["pollId"], optionIndex=1
        )
        update = await console.recv_type("POLL_UPDATE")
        assert (update["votes"], update["totalVotes"]) == ([0, 1], 1)
        ended = await console.request("END_POLL", pollId=poll_id)
        assert next(m for m in ended if m["type"] == "POLL_ENDED")["winnerIndex"] == 1
        await console.request("START_POLL", sessionId=SID, question="Again?", options=["A", "B"])
        cancelled = await console.request("CANCEL_POLL", sessionId=SID)
        assert next(m for m in cancelled if m["type"] == "POLL_ENDED")["winnerIndex"] == -1

        await console.request(
            "SEND_ANNOUNCEMENT", sessionId=SID, message="Water at the bar", durationSeconds=60
        )
        assert (await fan.recv_type("ANNOUNCEMENT_RECEIVED"))["message"] == "Water at the bar"
        await console.request("CANCEL_ANNOUNCEMENT", sessionId=SID)
        await fan.recv_type("ANNOUNCEMENT_CANCELLED")
        await console.request("METADATA_UPDATED", sessionId=SID, track=track("From The Phone", bpm=120))
        assert (await fan.recv_type("METADATA_UPDATED"))["track"]["bpm"] == 120
        await console.request("TRACK_STOPPED", sessionId=SID)
        await fan.recv_type("TRACK_STOPPED")

        refused = await console.request("REGISTER_SESSION", sessionId=SID, token=token)
        assert refused[-1]["error"] == "A controller cannot register a session; it is attached to one"
        assert server.hub.rooms[SID].dj_conn is not None  # the DJ software still holds the seat
        assert (await dj.request("BROADCAST_TRACK", sessionId=SID, track=track("Agent")))[-1]["type"] == "ACK"

        finished = await console.request("END_SESSION", sessionId=SID)
        assert "SESSION_ENDED" in types(finished)
        for peer in (fan, dj):
            assert (await peer.recv_type("SESSION_ENDED"))["sessionId"] == SID
        after = await console.request("SEND_ANNOUNCEMENT", sessionId=SID, message="Too late")
        assert after[-1]["error"] == "Not the DJ of this session"


async def test_poll_updates_reach_the_console_at_the_djs_pace(nursery: trio.Nursery, db_url: str) -> None:
    settings = test_settings(db_url, poll_update_window=30.0)  # subscribers' window: far away
    server = await nursery.start(serve, settings)
    token = await signed_up(server, "pace@example.com", "DJ Pace")
    async with connect(server.url) as dj, connect(server.url) as console:
        await live(dj, token)
        await attach(console, token)
        async with dancer(server.url, "dancer_00000003") as fan:
            started = await console.request("START_POLL", sessionId=SID, question="Q?", options=["A", "B"])
            poll_id = next(m for m in started if m["type"] == "POLL_STARTED")["pollId"]
            await fan.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=0)
            update = await console.recv_type("POLL_UPDATE")  # within the DJ's 0.25 s, not 30 s
            assert update["votes"] == [1, 0]


async def test_a_consoles_message_ids_are_its_own_and_its_retries_apply_once(server: Running) -> None:
    token = await signed_up(server, "ids@example.com", "DJ Ids")
    console_id = "console_0000000a"
    async with connect(server.url) as dj, dancer(server.url, "dancer_00000004") as fan:
        await live(dj, token)
        async with connect(server.url) as console:
            await attach(console, token, clientId=console_id)
            sent = await console.request(
                "SEND_ANNOUNCEMENT", messageId="same-1", sessionId=SID, message="From the console"
            )
            assert sent[-1]["type"] == "ACK"
        assert (await fan.recv_type("ANNOUNCEMENT_RECEIVED"))["message"] == "From the console"
        # The DJ software numbering its messages the same way is not mistaken for a retry.
        await dj.request("SEND_ANNOUNCEMENT", messageId="same-1", sessionId=SID, message="From the laptop")
        assert (await fan.recv_type("ANNOUNCEMENT_RECEIVED"))["message"] == "From the laptop"
        async with connect(server.url) as console_again:  # the phone reconnects and retries
            await attach(console_again, token, clientId=console_id)
            retry = await console_again.request(
                "SEND_ANNOUNCEMENT", messageId="same-1", sessionId=SID, message="From the console"
            )
            assert retry[-1]["type"] == "ACK" and "ANNOUNCEMENT_RECEIVED" not in types(retry)
    stored = rows(server, "SELECT message FROM announcements WHERE session_id = %s ORDER BY id", SID)
    assert stored == [("From the console",), ("From the laptop",)]


async def test_a_console_closing_leaves_the_dj_and_the_session_untouched(server: Running) -> None:
    token = await signed_up(server, "stay@example.com", "DJ Stay")
    async with connect(server.url) as dj, dancer(server.url, "dancer_00000005") as fan:
        await live(dj, token)
        async with connect(server.url) as console:
            await attach(console, token)
        room = server.hub.rooms[SID]
        await until(lambda: not room.controllers)
        assert room.dj_disconnected_at is None  # no grace period started
        played = await dj.request("BROADCAST_TRACK", sessionId=SID, track=track("Still Mine"))
        assert played[-1]["type"] == "ACK"
        assert (await fan.recv_type("NOW_PLAYING"))["track"]["title"] == "Still Mine"


async def test_a_dj_takeover_or_drop_leaves_the_console_attached(server: Running) -> None:
    token = await signed_up(server, "keep@example.com", "DJ Keep")
    async with connect(server.url) as console, dancer(server.url, "dancer_00000006") as fan:
        async with connect(server.url) as laptop:
            await live(laptop, token)
            await attach(console, token)
            async with connect(server.url) as new_laptop:
                await live(new_laptop, token)  # takes over: the old laptop is closed 4001
                assert await laptop.closed_with() == 4001
                await new_laptop.request("BROADCAST_TRACK", sessionId=SID, track=track("After Takeover"))
                assert (await console.recv_type("NOW_PLAYING"))["track"]["title"] == "After Takeover"
        # The DJ software is gone (grace period): the console still runs the crowd.
        await until(lambda: server.hub.rooms[SID].dj_conn is None)
        sent = await console.request("SEND_ANNOUNCEMENT", sessionId=SID, message="Back in a minute")
        assert sent[-1]["type"] == "ACK"
        assert (await fan.recv_type("ANNOUNCEMENT_RECEIVED"))["message"] == "Back in a minute"
        async with connect(server.url) as laptop_back:
            resumed = await laptop_back.request("REGISTER_SESSION", sessionId=SID, token=token)
            assert resumed[-1]["type"] == "ACK"
            await laptop_back.request("BROADCAST_TRACK", sessionId=SID, track=track("Resumed"))
            assert (await console.recv_type("NOW_PLAYING"))["track"]["title"] == "Resumed"


async def test_the_dj_and_a_console_playing_at_once_share_one_flood_guard(
    nursery: trio.Nursery, db_url: str
) -> None:
    server = await nursery.start(serve, test_settings(db_url, track_rate=0.001))  # no refill meanwhile
    token = await signed_up(server, "pace@example.com", "DJ Pace")
    async with connect(server.url) as dj, connect(server.url) as console:
        await live(dj, token)
        await attach(console, token)
        answers: list[str] = []

        async def play(peer: Peer, who: str) -> None:
            for i in range(8):
                replies = await peer.request("BROADCAST_TRACK", sessionId=SID, track=track(f"{who} {i}"))
                answers.append(replies[-1].get("error", replies[-1]["type"]))

        async with trio.open_nursery() as both:  # 16 tracks at once, from two connections
            both.start_soon(play, dj, "DJ")
            both.start_soon(play, console, "Console")
    assert sorted(answers) == ["ACK"] * 10 + ["Rate limit exceeded"] * 6  # one burst, however many hands
    assert rows(server, "SELECT count(*) FROM played_tracks") == [(10,)]


async def test_the_dj_ending_the_session_waits_for_the_consoles_track_in_progress(server: Running) -> None:
    token = await signed_up(server, "order@example.com", "DJ Order")
    async with connect(server.url) as dj, connect(server.url) as console:
        await live(dj, token)
        await attach(console, token)
        room = server.hub.rooms[SID]
        async with dancer(server.url, "dancer_00000009") as fan:
            with psycopg.connect(server.database_url) as blocker:
                blocker.execute("LOCK TABLE played_tracks IN EXCLUSIVE MODE")  # the track's INSERT waits
                await console.send("BROADCAST_TRACK", messageId="t1", sessionId=SID, track=track("Last Song"))
                await until(lambda: rows(server, "SELECT count(*) FROM pg_locks WHERE NOT granted") == [(1,)])
                await dj.send("END_SESSION", messageId="e1", sessionId=SID)
                await until(lambda: room.turn.statistics().tasks_waiting == 1)  # behind the track
            seen = []
            while "SESSION_ENDED" not in seen:
                seen.append((await fan.recv())["type"])
        assert [t for t in seen if t in {"NOW_PLAYING", "SESSION_ENDED"}] == ["NOW_PLAYING", "SESSION_ENDED"]
        assert (await console.recv_type("ACK"))["messageId"] == "t1"
        assert (await dj.recv_type("ACK"))["messageId"] == "e1"
    # The session ended after the track: its play was closed with it, not left open.
    assert rows(server, "SELECT title, ended_at IS NOT NULL FROM played_tracks") == [("Last Song", True)]
