"""`python -m pika.admin end-session` and `revoke-tokens` reach the running server (LISTEN/NOTIFY on
`pika_admin`), and an action made while no server runs takes effect when one starts.

Real subprocesses of the CLI, the real server, real DJ, console and dancer sockets.
"""

from __future__ import annotations

import trio

from pika.server import Running, serve
from tests.conftest import rows, test_settings
from tests.test_admin import admin
from tests.test_auth import call, login
from tests.test_controllers import attach, dancer, live
from tests.test_owned_sessions import signed_up
from tests.wsclient import connect, go_live, types

SID = "admin_live_01"


async def active_ids(server: Running) -> list[str]:
    reply = await call(server.url, "GET", "/api/sessions/active")
    return [s["sessionId"] for s in reply.json()["sessions"]]


async def test_end_session_ends_the_live_session_now_for_dancers_and_dj(server: Running) -> None:
    token = await signed_up(server, "ada@example.com", "DJ Ada")
    async with connect(server.url) as dj, dancer(server.url, "dancer_00000001", SID) as fan:
        await live(dj, token, SID)

        result = await admin(server.database_url, "end-session", SID)

        assert result.code == 0, result.err
        with trio.fail_after(2):
            ended = await fan.recv_type("SESSION_ENDED")
            told = await dj.recv_type("SESSION_ENDED")
        assert ended["sessionId"] == told["sessionId"] == SID
        assert SID not in await active_ids(server)
        assert rows(server, "SELECT count(*) FROM admin_actions WHERE done_at IS NULL") == [(0,)]


async def test_revoke_tokens_closes_the_dj_and_its_console_4003_and_a_new_login_resumes(
    server: Running,
) -> None:
    token = await signed_up(server, "bea@example.com", "DJ Bea")
    async with (
        connect(server.url) as dj,
        connect(server.url) as console,
        dancer(server.url, "dancer_00000002", SID) as fan,
    ):
        registered = await live(dj, token, SID)
        assert types(await attach(console, token, SID))[-1] == "ACK"

        result = await admin(server.database_url, "revoke-tokens", "--email", "bea@example.com")

        assert result.code == 0, result.err
        with trio.fail_after(2):
            assert await dj.closed_with() == 4003
            assert await console.closed_with() == 4003
        assert SID in await active_ids(server)  # in its grace period, not ended

        fresh = (await login(server.url, "bea@example.com")).json()["token"]
        async with connect(server.url) as again:
            replies = await again.request(
                "REGISTER_SESSION", sessionId=SID, token=fresh, resumeKey=registered["resumeKey"]
            )
            assert types(replies)[-1] == "ACK", replies
            assert "SESSION_ENDED" not in types(await fan.nothing_within(0.2))
    assert rows(server, "SELECT action, done_at IS NOT NULL FROM admin_actions") == [("revoke_tokens", True)]


async def test_an_end_session_made_while_the_server_is_down_is_carried_out_at_its_start(
    nursery: trio.Nursery, db_url: str
) -> None:
    async with trio.open_nursery() as first_run:
        first: Running = await first_run.start(serve, test_settings(db_url))
        async with connect(first.url) as dj:
            await go_live(dj, SID)
        first.shutdown.set()  # the session stays live in PostgreSQL, to be restored at the next start

    result = await admin(db_url, "end-session", SID)
    assert result.code == 0, result.err
    assert rows(first, "SELECT count(*) FROM admin_actions WHERE done_at IS NULL") == [(1,)]

    second: Running = await nursery.start(serve, test_settings(db_url))

    assert SID not in await active_ids(second)
    assert rows(second, "SELECT count(*) FROM admin_actions WHERE done_at IS NULL") == [(0,)]
    async with connect(second.url) as fan:
        replies = await fan.request("SUBSCRIBE", sessionId=SID, clientId="dancer_00000003")
        assert "SESSION_ENDED" in types(replies)


async def test_the_server_listens_again_after_losing_its_database_connection(server: Running) -> None:
    listening = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE '%%LISTEN pika_admin%%' AND pid <> pg_backend_pid()"
    )
    async with connect(server.url) as dj, dancer(server.url, "dancer_00000004", SID) as fan:
        await go_live(dj, SID)
        # What a database restart does to the server's listening connection:
        assert rows(server, f"SELECT pg_terminate_backend(pid) FROM ({listening}) AS l") == [(True,)]

        result = await admin(server.database_url, "end-session", SID)

        assert result.code == 0, result.err
        with trio.fail_after(5):
            await fan.recv_type("SESSION_ENDED")
    assert len(rows(server, listening)) == 1
