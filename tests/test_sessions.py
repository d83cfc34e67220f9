"""Session lifecycle and connection hygiene: listener counts, expiry, limits, pings, compression."""

from __future__ import annotations

import psycopg
import pytest
import trio

from pika.server import Running, serve
from tests.conftest import StartServer, hub_of, test_settings
from tests.rawws import RawPeer
from tests.wsclient import connect, go_live, types


async def test_tabs_of_one_browser_count_once(server: Running) -> None:
    async with (
        connect(server.url) as dj,
        connect(server.url) as tab1,
        connect(server.url) as tab2,
        connect(server.url) as other,
    ):
        await go_live(dj, "conf_count")
        await tab1.request("SUBSCRIBE", sessionId="conf_count", clientId="client_same_browser")
        await tab2.request("SUBSCRIBE", sessionId="conf_count", clientId="client_same_browser")
        replies = await other.request("SUBSCRIBE", sessionId="conf_count", clientId="client_other_one")
        assert next(r for r in replies if r["type"] == "LISTENER_COUNT")["count"] == 2


async def test_a_subscriber_gets_its_replies_before_the_rooms_listener_count(
    start_server: StartServer,
) -> None:
    running = await start_server(listener_count_window=0.01)
    async with connect(running.url) as dj:
        await go_live(dj, "conf_order")
        await trio.sleep(0.1)  # not a synchronisation: the room's count window lies quiet, the case here
        async with connect(running.url) as dancer:
            replies = await dancer.request("SUBSCRIBE", sessionId="conf_order", clientId="client_order01")
            assert types(replies) == ["SESSIONS_LIST", "LISTENER_COUNT", "ACK"]  # PROTOCOL.md §3.2
            assert replies[1]["count"] == 1
        assert (await dj.recv_type("LISTENER_COUNT"))["count"] == 1  # and the room hears the change


async def test_a_closed_client_counts_until_its_linger_passes(start_server: StartServer) -> None:
    running = await start_server(listener_linger_seconds=1.0, listener_count_window=0.1)
    async with connect(running.url) as dj:
        await go_live(dj, "conf_linger")
        async with connect(running.url) as phone:
            await phone.request("SUBSCRIBE", sessionId="conf_linger", clientId="client_in_pocket")
            assert (await dj.recv_type("LISTENER_COUNT"))["count"] == 1
        async with connect(running.url) as probe:  # just after the phone slept: still counted
            replies = await probe.request("SUBSCRIBE", sessionId="conf_linger", clientId="client_probe_01")
            assert next(r for r in replies if r["type"] == "LISTENER_COUNT")["count"] == 2
        counts = []
        with trio.fail_after(5):
            while not counts or counts[-1] != 0:
                counts.append((await dj.recv_type("LISTENER_COUNT"))["count"])
        assert counts[-1] == 0


async def test_listener_counts_are_coalesced_and_the_last_one_is_exact(start_server: StartServer) -> None:
    running = await start_server(listener_count_window=1.0)
    async with connect(running.url) as dj:
        await go_live(dj, "conf_burst")
        async with trio.open_nursery() as dancers:
            peers = []
            for i in range(30):
                peer = await dancers.start(_subscribed, running.url, "conf_burst", f"client_{i:08d}")
                peers.append(peer)
            seen = [m for m in await dj.nothing_within(2.5) if m["type"] == "LISTENER_COUNT"]
            dancers.cancel_scope.cancel()
    assert 1 <= len(seen) <= 4  # 30 joins over ~a second: a handful of counts, not thirty
    assert seen[-1]["count"] == 30


async def _subscribed(url: str, session_id: str, client_id: str, task_status: trio.TaskStatus) -> None:
    async with connect(url) as peer:
        await peer.request("SUBSCRIBE", sessionId=session_id, clientId=client_id)
        task_status.started(peer)
        await trio.sleep_forever()


async def test_an_idle_session_expires_with_ended_then_expired(start_server: StartServer) -> None:
    running = await start_server(session_idle_seconds=1.0)
    async with connect(running.url) as dj, connect(running.url) as dancer:
        await go_live(dj, "conf_idle")
        ended = await dancer.recv_type("SESSION_ENDED", timeout=10)
        expired = await dancer.recv()
    assert ended["sessionId"] == "conf_idle"
    assert expired == {"type": "SESSION_EXPIRED", "sessionId": "conf_idle", "reason": "idle"}
    with psycopg.connect(running.database_url) as conn:
        assert conn.execute("SELECT ended_at IS NOT NULL, end_reason FROM sessions").fetchall() == [
            (True, "idle")
        ]


@pytest.mark.pair_excluded("PIKA_MAX_SESSIONS counts the rooms one process owns")
async def test_past_max_sessions_a_new_session_is_refused_busy_and_closed_1013(
    start_server: StartServer,
) -> None:
    running = await start_server(max_sessions=1)
    async with connect(running.url) as first, connect(running.url) as second:
        await go_live(first, "conf_first")
        replies = await second.request("REGISTER_SESSION", sessionId="conf_second")
        assert replies[-1]["type"] == "NACK" and replies[-1]["error"] == "Server busy"
        assert await second.closed_with() == 1013
    assert "conf_second" not in running.hub.rooms


async def test_a_silent_connection_is_closed_and_a_responsive_one_is_kept(
    nursery: trio.Nursery, db_url: str
) -> None:
    """On the live listener, whose pings a responsive client answers.  (The plain ASGI /ws has no
    protocol pings: its clients stay open by sending, see server.py.)"""
    running = await nursery.start(serve, test_settings(db_url, ping_interval=0.2, idle_timeout=1.0))
    silent = await RawPeer.connect(running.url)
    responsive = await RawPeer.connect(running.url)
    with trio.move_on_after(2.5):
        while True:  # recv() answers the server's pings
            await responsive.recv()
    await responsive.send("PING", messageId="still-here")
    assert (await responsive.recv())["type"] == "PONG"
    with trio.fail_after(5):
        try:
            while isinstance(await silent.recv(), dict):
                pass
        except (EOFError, trio.BrokenResourceError):
            pass  # the server closed the TCP connection
    await responsive.abort()


# The live listener's choice: hypercorn offers no public setting, so its plain ASGI /ws accepts
# per-message deflate when a client offers it.


async def test_per_message_deflate_is_declined_unless_configured(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url))
    plain = await RawPeer.connect(running.url, offer_deflate=True)
    assert plain.extensions == []
    await plain.abort()


async def test_per_message_deflate_can_be_turned_on(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url, ws_compression=True))
    compressed = await RawPeer.connect(running.url, offer_deflate=True)
    assert compressed.extensions == ["permessage-deflate"]
    await compressed.send("PING", messageId="squeezed")
    assert (await compressed.recv())["type"] == "PONG"
    await compressed.abort()


async def test_a_dj_registering_another_session_leaves_the_first_in_grace(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "conf_one_")
        replies = await dj.request("REGISTER_SESSION", sessionId="conf_two_")
        assert "SESSION_REGISTERED" in types(replies)
        assert hub_of(server, "conf_one_").rooms["conf_one_"].dj_conn is None
        assert hub_of(server, "conf_two_").rooms["conf_two_"].dj_conn is not None
