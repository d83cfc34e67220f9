"""Nothing is visible before it is durable, and the database keeps the order dancers saw
(PROTOCOL.md §5), against the real server and its PostgreSQL.

A like's ACK (and the DJ's LIKE_RECEIVED) never arrives before the like's row is committed;
tracks the DJ and a console broadcast at the same time are stored in the order NOW_PLAYING
reached the dancers, and the session's current track is the last one they saw.
"""

from __future__ import annotations

import trio

from pika.server import Running
from tests.conftest import rows
from tests.test_controllers import attach, dancer, live
from tests.test_owned_sessions import signed_up
from tests.wsclient import Peer, connect, track

SID = "order_0001"
DANCERS = 12


def _liked(server: Running, client: str) -> bool:
    found = rows(server, "SELECT 1 FROM likes WHERE session_id = %s AND client_id = %s", SID, client)
    return bool(found)


async def test_a_like_is_stored_before_its_ack_and_before_the_dj_hears_of_it(server: Running) -> None:
    async with connect(server.url) as dj:
        await dj.request("REGISTER_SESSION", sessionId=SID, djName="DJ")
        await dj.request("BROADCAST_TRACK", sessionId=SID, track=track("Liked Song"))
        unseen: list[str] = []  # likes acknowledged whose row was not there yet

        async def like(n: int) -> None:
            client = f"dancer_{n:08d}"
            async with dancer(server.url, client, SID) as fan:
                replies = await fan.request(
                    "SEND_LIKE", sessionId=SID, payload={"track": track("Liked Song")}
                )
                assert replies[-1]["type"] == "ACK", replies
                if not await trio.to_thread.run_sync(_liked, server, client):
                    unseen.append(client)

        async def dj_hears() -> int:
            heard = 0
            while heard < DANCERS:
                await dj.recv_type("LIKE_RECEIVED")
                heard += 1
                stored = rows(server, "SELECT count(*) FROM likes WHERE session_id = %s", SID)[0][0]
                assert stored >= heard, "the DJ heard of a like that was not stored yet"
            return heard

        async with trio.open_nursery() as nursery:
            for n in range(DANCERS):
                nursery.start_soon(like, n)
            assert await dj_hears() == DANCERS
        assert unseen == []


async def _broadcast(peer: Peer, titles: list[str]) -> None:
    for title in titles:
        replies = await peer.request("BROADCAST_TRACK", sessionId=SID, track=track(title))
        assert replies[-1]["type"] == "ACK", replies


async def test_tracks_broadcast_at_once_are_stored_in_the_order_dancers_saw_them(server: Running) -> None:
    token = await signed_up(server, "order@example.com", "DJ Order")
    async with connect(server.url) as dj, connect(server.url) as console:
        await live(dj, token, SID)
        assert (await attach(console, token, SID))[-1]["type"] == "ACK"
        async with dancer(server.url, "dancer_watching", SID) as fan:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_broadcast, dj, ["DJ 1", "DJ 2", "DJ 3"])
                nursery.start_soon(_broadcast, console, ["Console 1", "Console 2", "Console 3"])
            seen = [(await fan.recv_type("NOW_PLAYING"))["track"]["title"] for _ in range(6)]
        stored = [r[0] for r in rows(server, "SELECT title FROM played_tracks ORDER BY id")]
        current = rows(
            server,
            "SELECT p.title FROM sessions s JOIN played_tracks p ON p.id = s.current_play_id WHERE s.id = %s",
            SID,
        )
        assert sorted(seen) == sorted(stored)  # every broadcast played once
        assert stored == seen
        assert current == [(seen[-1],)]
