"""The pair the protocol tests run on (conftest.py, transport "pair"): two servers behind a
round-robin balancer.  It must really spread clients over both processes, or the pair variant
would quietly test one process twice."""

from __future__ import annotations

import trio

from tests.conftest import hubs, start_pair
from tests.wsclient import connect, go_live, track, until


async def test_a_dj_and_a_dancer_land_on_different_processes_and_share_the_room(
    nursery: trio.Nursery, db_url: str
) -> None:
    pair = await start_pair(nursery, db_url)
    async with connect(pair.url) as dj, connect(pair.url) as dancer:
        await until(lambda: [hub.connection_count for hub in hubs(pair)] == [1, 1])
        await go_live(dj, "pair_room_01")
        await dancer.request("SUBSCRIBE", sessionId="pair_room_01", clientId="client_pair_0001")
        await dj.request("BROADCAST_TRACK", sessionId="pair_room_01", track=track("Across"))
        assert (await dancer.recv_type("NOW_PLAYING"))["track"]["title"] == "Across"
    assert ["pair_room_01" in hub.rooms for hub in hubs(pair)] == [True, False]
