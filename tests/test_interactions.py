"""Dancer interactions over real WebSockets: likes, tempo, polls, announcements, thank-yous."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from pika.server import Running, serve
from tests.conftest import rows, test_settings
from tests.wsclient import Peer, connect, go_live, track, types


@asynccontextmanager
async def dancers(url: str, session_id: str, count: int, prefix: str = "client") -> AsyncIterator[list[Peer]]:
    """`count` subscribed dancers with clientIds `<prefix>_00000000`…"""
    async with trio.open_nursery() as nursery:
        peers = [await nursery.start(_dancer, url, session_id, f"{prefix}_{i:08d}") for i in range(count)]
        yield peers
        nursery.cancel_scope.cancel()


async def _dancer(url: str, session_id: str, client_id: str, task_status: trio.TaskStatus[Peer]) -> None:
    async with connect(url) as peer:
        await peer.request("SUBSCRIBE", sessionId=session_id, clientId=client_id)
        task_status.started(peer)
        await trio.sleep_forever()


async def dj_messages(dj: Peer, kind: str, seconds: float) -> list[dict]:
    return [m for m in await dj.nothing_within(seconds) if m["type"] == kind]


async def test_thirty_dancers_like_once_each_and_repeats_are_refused(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "conf_likes")
        await dj.request("BROADCAST_TRACK", sessionId="conf_likes", track=track("Liked"))
        async with dancers(server.url, "conf_likes", 30) as peers:
            acks: list[str] = []

            async def like(peer: Peer) -> None:
                replies = await peer.request(
                    "SEND_LIKE", sessionId="conf_likes", payload={"track": track("Liked")}
                )
                acks.append(replies[-1]["type"])

            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(like, peer)
            assert acks == ["ACK"] * 30
            repeats = [
                (
                    await peer.request(
                        "SEND_LIKE", sessionId="conf_likes", payload={"track": track(" liked ")}
                    )
                )[-1]
                for peer in peers[:10]
            ]
            assert {r["error"] for r in repeats} == {"Already liked this track"}
            never = await peers[0].request(
                "SEND_LIKE", sessionId="conf_likes", payload={"track": track("Never")}
            )
            assert never[-1]["error"] == "Track was not played in this session"
            received = await dj_messages(dj, "LIKE_RECEIVED", 0.5)
    assert len(received) == 30
    assert received[0]["payload"]["track"]["title"] == "Liked"
    assert rows(server, "SELECT count(*), count(DISTINCT client_id) FROM likes") == [(30, 30)]


async def test_a_track_played_twice_is_liked_once_and_an_unlike_removes_only_this_client_s_like(
    server: Running,
) -> None:
    async with connect(server.url) as dj, dancers(server.url, "conf_replay", 2) as (a, b):
        await go_live(dj, "conf_replay")
        like = {"sessionId": "conf_replay", "payload": {"track": track("Encore")}}
        await dj.request("BROADCAST_TRACK", sessionId="conf_replay", track=track("Encore"))
        assert (await a.request("SEND_LIKE", **like))[-1]["type"] == "ACK"
        for title in ("Between", "Encore"):  # the DJ plays it again later in the night
            await dj.request("BROADCAST_TRACK", sessionId="conf_replay", track=track(title))

        again = await a.request("SEND_LIKE", sessionId="conf_replay", payload={"track": track(" ENCORE ")})
        assert again[-1]["error"] == "Already liked this track"
        bulk = await a.request(
            "SEND_BULK_LIKE", sessionId="conf_replay", payload={"tracks": [track("Encore")]}
        )
        assert types(bulk) == ["ACK"]
        assert (await b.request("SEND_LIKE", **like))[-1]["type"] == "ACK"
        assert rows(server, "SELECT count(*) FROM likes WHERE client_id = %s", "client_00000000") == [(1,)]

        assert (await a.request("REMOVE_LIKE", **like))[-1]["type"] == "ACK"
        assert rows(server, "SELECT client_id FROM likes") == [("client_00000001",)]  # b's stays
        assert (await a.request("SEND_LIKE", **like))[-1]["type"] == "ACK"  # liked anew after the unlike
        received = await dj_messages(dj, "LIKE_RECEIVED", 0.5)
    assert len(received) == 2  # b's, and a's after its unlike (the first came among the DJ's replies)
    assert rows(server, "SELECT count(*), count(DISTINCT client_id) FROM likes") == [(2, 2)]


async def test_an_offline_queue_flush_stores_each_new_like_once(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url, track_burst=1000, likes_per_minute=1000))
    async with connect(running.url) as dj, connect(running.url) as phone:
        await go_live(dj, "conf_bulk")
        titles = [f"Song {i:03d}" for i in range(60)]
        for title in titles:
            await dj.request("BROADCAST_TRACK", sessionId="conf_bulk", track=track(title))
        await phone.request("SUBSCRIBE", sessionId="conf_bulk", clientId="client_offline1")
        await phone.request("SEND_LIKE", sessionId="conf_bulk", payload={"track": track("Song 000")})
        queued = (
            [track(t) for t in titles] + [track(t.upper()) for t in titles[:30]] + [track("Not Played")] * 10
        )
        assert len(queued) == 100
        replies = await phone.request("SEND_BULK_LIKE", sessionId="conf_bulk", payload={"tracks": queued})
        assert types(replies) == ["ACK"]
        await dj.nothing_within(0.3)
        for _ in range(2):
            assert (await phone.request("SEND_BULK_LIKE", sessionId="conf_bulk", payload={"tracks": queued}))[
                -1
            ]["type"] == "ACK"
        fourth = await phone.request("SEND_BULK_LIKE", sessionId="conf_bulk", payload={"tracks": queued})
        assert fourth[-1] == {**fourth[-1], "type": "NACK", "error": "Rate limit exceeded"}
    assert rows(running, "SELECT count(*), count(DISTINCT played_track_id) FROM likes") == [(60, 60)]


async def test_tempo_feedback_follows_the_live_votes_and_tallies_are_stored(
    nursery: trio.Nursery, db_url: str
) -> None:
    running = await nursery.start(serve, test_settings(db_url, tempo_feedback_window=0.2))
    async with connect(running.url) as dj:
        await go_live(dj, "conf_tempo")
        await dj.request("BROADCAST_TRACK", sessionId="conf_tempo", track=track("First"))
        async with dancers(running.url, "conf_tempo", 3) as (a, b, c):
            await a.request("SEND_TEMPO_REQUEST", sessionId="conf_tempo", preference="faster")
            await b.request("SEND_TEMPO_REQUEST", sessionId="conf_tempo", preference="faster")
            await c.request("SEND_TEMPO_REQUEST", sessionId="conf_tempo", preference="slower")
            await b.request("SEND_TEMPO_REQUEST", sessionId="conf_tempo", preference="perfect")  # changed
            await c.request("SEND_TEMPO_REQUEST", sessionId="conf_tempo", preference="clear")  # taken back
            feedback = await dj_messages(dj, "TEMPO_FEEDBACK", 0.6)
            assert feedback[-1] == {
                "type": "TEMPO_FEEDBACK",
                "sessionId": "conf_tempo",
                "faster": 1,
                "slower": 0,
                "perfect": 1,
                "total": 2,
            }
            await dj.request("BROADCAST_TRACK", sessionId="conf_tempo", track=track("Second"))
            assert (await a.recv_type("TEMPO_RESET"))["sessionId"] == "conf_tempo"
            now_playing = await a.recv()  # right behind it: two frames, in this order (PROTOCOL.md §3.1)
            assert (now_playing["type"], now_playing["track"]["title"]) == ("NOW_PLAYING", "Second")
            await a.request("SEND_TEMPO_REQUEST", sessionId="conf_tempo", preference="slower")
            assert (await dj.recv_type("TEMPO_FEEDBACK"))["total"] == 1
            await dj.request("TRACK_STOPPED", sessionId="conf_tempo")
    plays = "SELECT title, tempo_slower, tempo_perfect, tempo_faster, ended_at IS NOT NULL FROM played_tracks"
    assert rows(running, plays + " ORDER BY id") == [("First", 0, 1, 1, True), ("Second", 1, 0, 0, True)]


async def test_polls_count_every_dancer_once_and_close_on_time(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url, poll_min_seconds=1))
    async with connect(running.url) as dj:
        await go_live(dj, "conf_poll")
        async with dancers(running.url, "conf_poll", 100) as peers:
            started = await dj.request(
                "START_POLL",
                sessionId="conf_poll",
                question="Next?",
                options=["Blues", "Swing"],
                durationSeconds=3,
            )
            poll = next(m for m in started if m["type"] == "POLL_STARTED")
            second = await dj.request(
                "START_POLL", sessionId="conf_poll", question="Again?", options=["a", "b"]
            )
            assert second[-1]["error"] == "A poll is already active"
            results: list[str] = []

            async def vote(i: int, peer: Peer) -> None:
                for _ in range(2 if i < 20 else 1):
                    replies = await peer.request(
                        "VOTE_ON_POLL", 10.0, pollId=poll["pollId"], optionIndex=i % 3 % 2
                    )
                    results.append(replies[-1]["type"])

            async with trio.open_nursery() as voters:
                for i, peer in enumerate(peers):
                    voters.start_soon(vote, i, peer)
            assert results.count("ACK") == 100 and results.count("NACK") == 20
            ended = [m for m in await dj.nothing_within(4) if m["type"] == "POLL_ENDED"]
            late = await peers[0].request("VOTE_ON_POLL", pollId=poll["pollId"], optionIndex=0)
    expected = [sum(1 for i in range(100) if i % 3 % 2 == k) for k in (0, 1)]
    assert len(ended) == 1
    assert ended[0]["results"] == expected and ended[0]["totalVotes"] == 100
    assert ended[0]["winnerIndex"] == 0
    assert types(late)[-2:] == ["VOTE_REJECTED", "NACK"] and late[-2]["reason"] == "Poll has ended"
    assert rows(running, "SELECT status FROM polls") == [("closed",)]
    assert rows(running, "SELECT count(*) FROM poll_votes") == [(100,)]


async def test_cancel_poll_without_id_and_strangers_cannot_vote(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as other_dj:
        await go_live(dj, "conf_cancel")
        await go_live(other_dj, "conf_other")
        async with (
            dancers(server.url, "conf_cancel", 1) as (ours,),
            dancers(server.url, "conf_other", 1, "stranger") as (stranger,),
        ):
            started = await dj.request(
                "START_POLL", sessionId="conf_cancel", question="Q?", options=["a", "b"]
            )
            poll_id = next(m for m in started if m["type"] == "POLL_STARTED")["pollId"]
            assert (await ours.recv_type("POLL_STARTED"))["pollId"] == poll_id
            refused = await stranger.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=0)
            assert refused[0] == {
                **refused[0],
                "type": "VOTE_REJECTED",
                "reason": "Not subscribed to this session",
            }
            await ours.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=1)
            cancelled = await dj.request("CANCEL_POLL", sessionId="conf_cancel")
            ended = next(m for m in cancelled if m["type"] == "POLL_ENDED")
            assert ended["winnerIndex"] == -1 and ended["results"] == [0, 1]
            assert (await ours.recv_type("POLL_ENDED"))["winnerIndex"] == -1
    assert rows(server, "SELECT status FROM polls") == [("cancelled",)]


async def test_announcements_reach_late_joiners_and_expire(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url, announcement_min_seconds=1))
    async with connect(running.url) as dj:
        await go_live(dj, "conf_announce")
        replies = await dj.request(
            "SEND_ANNOUNCEMENT", sessionId="conf_announce", message="Last dance!", durationSeconds=2
        )
        announced = next(m for m in replies if m["type"] == "ANNOUNCEMENT_RECEIVED")
        assert announced["message"] == "Last dance!" and announced["endsAt"].endswith("Z")
        async with connect(running.url) as late:
            bundle = await late.request("SUBSCRIBE", sessionId="conf_announce", clientId="client_latecomer")
            assert types(bundle) == ["SESSIONS_LIST", "LISTENER_COUNT", "ANNOUNCEMENT_RECEIVED", "ACK"]
            assert bundle[2]["endsAt"] == announced["endsAt"]
            assert bundle[0]["sessions"][0]["activeAnnouncement"]["message"] == "Last dance!"
            cancelled = await late.recv_type("ANNOUNCEMENT_CANCELLED", timeout=5)
            assert cancelled == {"type": "ANNOUNCEMENT_CANCELLED", "sessionId": "conf_announce"}
    assert rows(running, "SELECT cleared_at IS NOT NULL FROM announcements") == [(True,)]


async def test_a_fifteen_second_announcement_is_accepted(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "conf_15sec")
        replies = await dj.request(
            "SEND_ANNOUNCEMENT", sessionId="conf_15sec", message="Water!", durationSeconds=15
        )
        assert types(replies)[-2:] == ["ANNOUNCEMENT_RECEIVED", "ACK"]
        cancelled = await dj.request("CANCEL_ANNOUNCEMENT", sessionId="conf_15sec")
        assert types(cancelled) == ["ANNOUNCEMENT_CANCELLED", "ACK"]


async def test_votes_survive_a_restart_and_the_poll_still_closes_on_time(
    nursery: trio.Nursery, db_url: str
) -> None:
    settings = test_settings(db_url, poll_min_seconds=1, dj_grace_seconds=30)
    first = await nursery.start(serve, settings)
    async with connect(first.url) as dj:
        await go_live(dj, "conf_mid")
        started = await dj.request(
            "START_POLL", sessionId="conf_mid", question="Q?", options=["a", "b"], durationSeconds=4
        )
        poll_id = next(m for m in started if m["type"] == "POLL_STARTED")["pollId"]
        async with connect(first.url) as voter:
            await voter.request("SUBSCRIBE", sessionId="conf_mid", clientId="client_voter_01")
            await voter.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=1)
            first.shutdown.set()
            assert await voter.closed_with() == 1012
    second = await nursery.start(serve, settings)
    async with connect(second.url) as voter:
        bundle = await voter.request("SUBSCRIBE", sessionId="conf_mid", clientId="client_voter_01")
        poll = next(m for m in bundle if m["type"] == "POLL_STARTED")
        assert poll["hasVoted"] is True and poll["votedOptionIndex"] == 1 and poll["votes"] == [0, 1]
        ended = await voter.recv_type("POLL_ENDED", timeout=8)
        assert ended["winnerIndex"] == 1 and ended["totalVotes"] == 1
    assert rows(second, "SELECT status FROM polls") == [("closed",)]


async def test_thank_yous_need_a_subscription_and_respect_the_limit(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as outsider:
        await go_live(dj, "conf_thanks")
        await outsider.send("SUBSCRIBE", clientId="client_outsider")  # no session
        refused = await outsider.request("SEND_REACTION", sessionId="conf_thanks", reaction="thank_you")
        assert refused[-1]["error"] == "Not subscribed to this session"
        async with dancers(server.url, "conf_thanks", 1) as (fan,):
            answers = [
                (await fan.request("SEND_REACTION", sessionId="conf_thanks", reaction="thank_you"))[-1][
                    "type"
                ]
                for _ in range(7)
            ]
            thanks = await dj_messages(dj, "REACTION_RECEIVED", 0.3)
    assert answers == ["ACK"] * 5 + ["NACK"] * 2
    assert len(thanks) == 5 and thanks[0] == {
        "type": "REACTION_RECEIVED",
        "sessionId": "conf_thanks",
        "reaction": "thank_you",
    }


async def test_a_messageid_applied_before_a_restart_is_still_recognised(
    nursery: trio.Nursery, db_url: str
) -> None:
    settings = test_settings(db_url, dj_grace_seconds=30)
    first = await nursery.start(serve, settings)
    async with connect(first.url) as dj:
        registered = await go_live(dj, "conf_dedupe")
        await dj.request("BROADCAST_TRACK", sessionId="conf_dedupe", track=track("Once"), messageId="track-1")
        first.shutdown.set()
        assert await dj.closed_with() == 1012
    second = await nursery.start(serve, settings)
    async with connect(second.url) as dj:
        await dj.request("REGISTER_SESSION", sessionId="conf_dedupe", resumeKey=registered["resumeKey"])
        retry = await dj.request(
            "BROADCAST_TRACK", sessionId="conf_dedupe", track=track("Other"), messageId="track-1"
        )
        assert types(retry) == ["ACK"]
    assert rows(second, "SELECT title FROM played_tracks") == [("Once",)]


async def test_a_lapsed_tempo_vote_leaves_the_djs_feedback(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(
        serve, test_settings(db_url, tempo_lapse_seconds=1.0, tempo_feedback_window=0.1)
    )
    async with connect(running.url) as dj:
        await go_live(dj, "conf_lapse")
        await dj.request("BROADCAST_TRACK", sessionId="conf_lapse", track=track("Long one"))
        async with dancers(running.url, "conf_lapse", 2) as (a, b):
            await a.request("SEND_TEMPO_REQUEST", sessionId="conf_lapse", preference="faster")
            await trio.sleep(0.5)
            await b.request("SEND_TEMPO_REQUEST", sessionId="conf_lapse", preference="slower")
            totals = [m["total"] for m in await dj_messages(dj, "TEMPO_FEEDBACK", 2.5)]
    assert totals[-1] == 0 and 2 in totals  # both counted, then each lapsed in turn
    assert totals.index(2) < totals.index(1, totals.index(2)) < len(totals) - 1


async def test_a_dancer_s_frames_are_answered_in_the_order_they_were_sent(server: Running) -> None:
    """A like is answered once its batch commits, a malformed frame at once: sent back to back,
    the like's ACK still comes first (the reader waits for it before it handles the next frame)."""
    async with connect(server.url) as dj, dancers(server.url, "conf_order", 1) as (dancer,):
        await go_live(dj, "conf_order")
        await dj.request("BROADCAST_TRACK", sessionId="conf_order", track=track("Ordered"))
        like = {"sessionId": "conf_order", "payload": {"track": track("Ordered")}}
        await dancer.send("SEND_LIKE", messageId="like-1", **like)
        await dancer.send("SEND_LIKE", messageId="bad-2", sessionId="conf_order")  # no payload
        await dancer.send(
            "SEND_TEMPO_REQUEST", messageId="tempo-3", sessionId="conf_order", preference="faster"
        )
        answers = []
        while len(answers) < 3:
            reply = await dancer.recv()
            if reply["type"] in {"ACK", "NACK"}:
                answers.append((reply["type"], reply["messageId"]))
    assert answers == [("ACK", "like-1"), ("NACK", "bad-2"), ("ACK", "tempo-3")]
    assert rows(server, "SELECT count(*) FROM likes WHERE session_id = 'conf_order'") == [(1,)]
