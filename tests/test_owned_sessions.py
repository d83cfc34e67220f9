"""Sessions owned by DJ accounts: only the owner's token drives them, and revoked tokens stop."""

from __future__ import annotations

import sys

import trio

from pika.server import Running
from tests.conftest import hub_of, hubs
from tests.test_auth import call, register
from tests.wsclient import connect, track, types

ADMIN = (sys.executable, "-m", "pika.admin")


async def signed_up(server: Running, email: str, name: str) -> str:
    reply = await register(server.url, email, name)
    assert reply.status == 201, reply.body
    return reply.json()["token"]


async def test_an_account_session_resumes_with_the_token_and_nobody_else_can_drive_it(
    server: Running,
) -> None:
    token = await signed_up(server, "kool@example.com", "DJ Kool Herc")
    other = await signed_up(server, "rival@example.com", "DJ Rival")
    async with connect(server.url) as dj:
        replies = await dj.request("REGISTER_SESSION", sessionId="owned_0001", djName="ignored", token=token)
        registered = next(r for r in replies if r["type"] == "SESSION_REGISTERED")
        assert registered["authenticated"] is True and registered["djName"] == "DJ Kool Herc"
        await dj.request("BROADCAST_TRACK", sessionId="owned_0001", track=track("Owned"))
    async with connect(server.url) as dj_again, connect(server.url) as rival, connect(server.url) as anon:
        for intruder, credentials in ((rival, {"token": other}), (anon, {})):
            refused = await intruder.request("REGISTER_SESSION", sessionId="owned_0001", **credentials)
            assert refused[-1]["error"] == "Session not available"
            hijack = await intruder.request("BROADCAST_TRACK", sessionId="owned_0001", track=track("Hijack"))
            assert hijack[-1]["error"] == "Not the DJ of this session"
            end = await intruder.request("END_SESSION", sessionId="owned_0001")
            assert end[-1]["error"] == "Not the DJ of this session"
        resumed = await dj_again.request("REGISTER_SESSION", sessionId="owned_0001", token=token)
        assert [t for t in types(resumed) if t != "SESSION_STARTED"][:2] == [
            "SESSION_REGISTERED",
            "NOW_PLAYING",
        ]
        assert resumed[-1]["type"] == "ACK"
    assert hub_of(server, "owned_0001").rooms["owned_0001"].current.track.title == "Owned"


async def test_the_same_account_takes_over_and_the_old_connection_is_closed_4001(server: Running) -> None:
    token = await signed_up(server, "twice@example.com", "DJ Twice")
    async with connect(server.url) as laptop, connect(server.url) as phone:
        await laptop.request("REGISTER_SESSION", sessionId="owned_0002", token=token)
        taken = await phone.request("REGISTER_SESSION", sessionId="owned_0002", token=token)
        assert "SESSION_REGISTERED" in types(taken)
        assert await laptop.closed_with() == 4001


async def test_a_wrong_token_is_refused_and_not_downgraded_to_anonymous(server: Running) -> None:
    async with connect(server.url) as dj:
        replies = await dj.request("REGISTER_SESSION", sessionId="owned_0003", token="pk_dj_" + "0" * 32)
        assert replies[-1]["error"] == "Invalid token"
    assert not any("owned_0003" in hub.rooms for hub in hubs(server))


async def test_after_regenerating_the_old_token_is_refused_everywhere(server: Running) -> None:
    token = await signed_up(server, "regen@example.com", "DJ Regen")
    fresh = await call(server.url, "POST", "/api/auth/regenerate-token", token=token)
    assert fresh.status == 200
    assert (await call(server.url, "GET", "/api/auth/me", token=token)).status == 401
    async with connect(server.url) as dj:
        old = await dj.request("REGISTER_SESSION", sessionId="owned_0004", token=token)
        assert old[-1]["error"] == "Invalid token"
        new = await dj.request("REGISTER_SESSION", sessionId="owned_0004", token=fresh.json()["token"])
        assert new[-1]["type"] == "ACK"


async def test_after_admin_revoke_tokens_a_live_dj_is_closed_and_its_token_opens_nothing(
    server: Running,
) -> None:
    token = await signed_up(server, "revoked@example.com", "DJ Revoked")
    async with connect(server.url) as dj:
        assert (await dj.request("REGISTER_SESSION", sessionId="owned_0005", token=token))[-1][
            "type"
        ] == "ACK"
        revoke = await trio.run_process(
            [
                *ADMIN,
                "--database-url",
                server.database_url,
                "revoke-tokens",
                "--email",
                "revoked@example.com",
            ],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert revoke.returncode == 0, revoke.stderr.decode()
        assert await dj.closed_with() == 4003  # the running server is told (tests/test_admin_channel.py)
    async with connect(server.url) as dj:
        again = await dj.request("REGISTER_SESSION", sessionId="owned_0006", token=token)
        assert again[-1]["error"] == "Invalid token"
