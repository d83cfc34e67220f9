"""The room's timers and rules under `trio.testing.MockClock`: one clock, jumped, drives them all.

The clock runs at real speed (sockets and PostgreSQL answer as usual); `jump()`, made while no
database call is in flight (its deadline is on the same clock), skips a poll's duration, an
announcement's, the DJ's grace, a listener's linger, a tempo lapse and a session's idle time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from trio.testing import MockClock

from pika.server import Running, serve
from tests.conftest import rows, test_settings
from tests.wsclient import Peer, connect, go_live, types, until

pytestmark = pytest.mark.trio

QUIET = {"idle_timeout": 86400.0}  # jumps of hours must not read as silent sockets


@pytest.fixture
def clock() -> MockClock:
    return MockClock(rate=1.0)


async def start(nursery: trio.Nursery, db_url: str, **overrides: object) -> Running:
    return await nursery.start(serve, test_settings(db_url, **QUIET, **overrides))


@asynccontextmanager
async def dj_and_dancer(running: Running, session_id: str) -> AsyncIterator[tuple[Peer, Peer]]:
    """A DJ live on `session_id` and one dancer subscribed to it."""
    async with connect(running.url) as dj, connect(running.url) as dancer:
        await go_live(dj, session_id)
        await subscribe(dancer, session_id, f"client_{session_id}")
        yield dj, dancer


async def subscribe(peer: Peer, session_id: str, client_id: str) -> list[dict]:
    replies = await peer.request("SUBSCRIBE", sessionId=session_id, clientId=client_id)
    assert replies[-1]["type"] == "ACK", replies
    return replies


async def test_a_poll_closes_when_its_duration_has_passed(
    clock: MockClock, nursery: trio.Nursery, db_url: str
) -> None:
    running = await start(nursery, db_url)
    async with dj_and_dancer(running, "clock_poll") as (dj, dancer):
        started = await dj.request(
            "START_POLL", sessionId="clock_poll", question="Next?", options=["a", "b"], durationSeconds=120
        )
        poll_id = next(m for m in started if m["type"] == "POLL_STARTED")["pollId"]
        await dancer.request("VOTE_ON_POLL", pollId=poll_id, optionIndex=1)
        clock.jump(119)
        assert "POLL_ENDED" not in types(await dj.request("PING"))  # still open a second before its end
        assert rows(running, "SELECT status FROM polls") == [("active",)]
        clock.jump(1)
        ended = await dancer.recv_type("POLL_ENDED")
        assert ended["results"] == [0, 1] and ended["winnerIndex"] == 1
    assert rows(running, "SELECT status FROM polls") == [("closed",)]


async def test_an_announcement_expires_for_its_audience_and_late_joiners(
    clock: MockClock, nursery: trio.Nursery, db_url: str
) -> None:
    running = await start(nursery, db_url)
    async with dj_and_dancer(running, "clock_announce") as (dj, dancer):
        await dj.request(
            "SEND_ANNOUNCEMENT", sessionId="clock_announce", message="Water!", durationSeconds=60
        )
        assert (await dancer.recv_type("ANNOUNCEMENT_RECEIVED"))["message"] == "Water!"
        clock.jump(60)
        assert await dancer.recv_type("ANNOUNCEMENT_CANCELLED") == {
            "type": "ANNOUNCEMENT_CANCELLED",
            "sessionId": "clock_announce",
        }
        async with connect(running.url) as late:
            bundle = await subscribe(late, "clock_announce", "client_late")
    assert types(bundle) == ["SESSIONS_LIST", "LISTENER_COUNT", "ACK"]
    assert "activeAnnouncement" not in bundle[0]["sessions"][0]
    assert rows(running, "SELECT cleared_at IS NOT NULL FROM announcements") == [(True,)]


async def test_a_session_ends_when_its_dj_stays_away_past_the_grace(
    clock: MockClock, nursery: trio.Nursery, db_url: str
) -> None:
    running = await start(nursery, db_url, dj_grace_seconds=600.0)
    async with connect(running.url) as dancer:
        async with connect(running.url) as dj:
            await go_live(dj, "clock_grace")
            await subscribe(dancer, "clock_grace", "client_grace")
        await until(lambda: rows(running, "SELECT dj_disconnected_at IS NOT NULL FROM sessions") == [(True,)])
        clock.jump(599)
        assert "SESSION_ENDED" not in types(await dancer.request("PING"))
        assert rows(running, "SELECT ended_at IS NULL FROM sessions") == [(True,)]
        clock.jump(1)
        assert await dancer.recv_type("SESSION_ENDED") == {
            "type": "SESSION_ENDED",
            "sessionId": "clock_grace",
        }
    assert rows(running, "SELECT end_reason FROM sessions") == [("grace_expired",)]


async def test_a_dancer_who_left_counts_until_the_linger_has_passed(
    clock: MockClock, nursery: trio.Nursery, db_url: str
) -> None:
    running = await start(nursery, db_url, listener_linger_seconds=300.0)
    async with connect(running.url) as dj:
        await go_live(dj, "clock_linger")
        async with connect(running.url) as dancer:
            await subscribe(dancer, "clock_linger", "client_linger")
            assert (await dj.recv_type("LISTENER_COUNT"))["count"] == 1
        await until(lambda: running.hub.connection_count == 1)  # the server saw the dancer leave
        clock.jump(299)
        assert "LISTENER_COUNT" not in types(await dj.request("PING"))
        clock.jump(1)
        assert (await dj.recv_type("LISTENER_COUNT"))["count"] == 0


async def test_a_tempo_vote_stops_counting_once_it_lapses(
    clock: MockClock, nursery: trio.Nursery, db_url: str
) -> None:
    running = await start(nursery, db_url, tempo_lapse_seconds=300.0)
    async with dj_and_dancer(running, "clock_tempo") as (dj, dancer):
        await dj.request("BROADCAST_TRACK", sessionId="clock_tempo", track={"title": "A", "artist": "B"})
        await dancer.request("SEND_TEMPO_REQUEST", sessionId="clock_tempo", preference="faster")
        assert (await dj.recv_type("TEMPO_FEEDBACK"))["total"] == 1
        clock.jump(300)
        lapsed = await dj.recv_type("TEMPO_FEEDBACK")
    assert lapsed["total"] == 0 and lapsed["faster"] == 0


async def test_a_session_without_dj_action_expires_after_the_idle_time(
    clock: MockClock, nursery: trio.Nursery, db_url: str
) -> None:
    running = await start(nursery, db_url, session_idle_seconds=4 * 3600.0)
    async with dj_and_dancer(running, "clock_idle") as (_dj, dancer):
        clock.jump(4 * 3600.0)
        expired = await dancer.recv_type("SESSION_EXPIRED", timeout=60)
    assert expired == {"type": "SESSION_EXPIRED", "sessionId": "clock_idle", "reason": "idle"}
    assert rows(running, "SELECT end_reason FROM sessions") == [("idle",)]
