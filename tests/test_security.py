"""Security rules: origins, client IPs, WebSocket admission, passwords, tokens, CORS and headers.

The pure rules are tested directly with fake ASGI scopes; CORS, headers and the WebSocket upgrade
against the real server.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import trio
from argon2 import PasswordHasher

from pika.config import Settings
from pika.security.admission import UpgradeRefusal, WsAdmission
from pika.security.clientip import client_ip
from pika.security.origins import origin_allowed
from pika.security.passwords import burn_verify, hash_password, verify_password
from pika.security.tokens import new_token, token_digest, well_formed
from pika.server import Running
from tests import rawws
from tests.conftest import StartServer
from tests.test_auth import call

ALLOWED = "https://app.example"
EVIL = "https://evil.example"


def scope(
    origin: str | None = None,
    host: str = "pika.example",
    peer: str = "203.0.113.7",
    headers: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    raw = [(b"host", host.encode())]
    if origin is not None:
        raw.append((b"origin", origin.encode()))
    raw += [(k.lower().encode(), v.encode()) for k, v in headers or []]
    return {"type": "websocket", "path": "/ws", "client": (peer, 50000), "headers": raw}


# -- origins ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "pika.example", True),  # desktop and CLI clients send no Origin
        ("https://pika.example", "pika.example", True),  # same host (TLS ended at a proxy)
        ("http://pika.example:3001", "pika.example:3001", True),
        ("HTTPS://PIKA.example/", "pika.example:443", True),
        ("http://pika.example:3001", "pika.example:3002", False),
        ("https://pika.example.evil.example", "pika.example", False),
        (EVIL, "pika.example", False),
        ("null", "pika.example", False),
        ("not a url", "pika.example", False),
        (ALLOWED, "pika.example", True),  # in the allow-list
        ("https://public.example", "10.0.0.5:3001", True),  # PIKA_PUBLIC_ORIGIN
    ],
)
def test_origin_rule(origin: str | None, host: str, allowed: bool) -> None:
    settings = Settings(allowed_origins=(ALLOWED,), public_origin="https://public.example")

    assert origin_allowed(settings, origin, host) is allowed


def test_dev_mode_allows_any_origin() -> None:
    assert origin_allowed(Settings(dev=True), EVIL, "pika.example")
    assert origin_allowed(Settings(dev=True), "null", None)


# -- client IP ----------------------------------------------------------------------------------


def test_the_client_ip_is_the_socket_peer_when_no_proxy_is_trusted() -> None:
    s = scope(peer="198.51.100.9", headers=[("X-Forwarded-For", "1.2.3.4"), ("CF-Connecting-IP", "5.6.7.8")])

    assert client_ip(s, Settings()) == "198.51.100.9"


def test_proxy_headers_from_an_untrusted_peer_are_ignored() -> None:
    s = scope(peer="198.51.100.9", headers=[("X-Forwarded-For", "1.2.3.4")])

    assert client_ip(s, Settings(trusted_proxies=("10.0.0.0/8",))) == "198.51.100.9"


def test_a_trusted_proxy_gives_the_rightmost_untrusted_forwarded_hop() -> None:
    settings = Settings(trusted_proxies=("10.0.0.0/8",))
    forged_then_real = scope(
        peer="10.0.0.2", headers=[("X-Forwarded-For", "6.6.6.6, 198.51.100.20, 10.0.0.7")]
    )

    assert client_ip(forged_then_real, settings) == "198.51.100.20"
    assert client_ip(scope(peer="10.0.0.2", headers=[("X-Forwarded-For", "garbage")]), settings) == "10.0.0.2"
    assert client_ip(scope(peer="10.0.0.2"), settings) == "10.0.0.2"


def test_a_trusted_proxy_s_cf_connecting_ip_wins() -> None:
    s = scope(peer="10.1.2.3", headers=[("CF-Connecting-IP", "2001:db8::1"), ("X-Forwarded-For", "1.1.1.1")])

    assert client_ip(s, Settings(trusted_proxies=("10.0.0.0/8",))) == "2001:db8::1"


def test_ipv4_mapped_peers_count_as_their_ipv4_address() -> None:
    assert client_ip(scope(peer="::ffff:198.51.100.1"), Settings()) == "198.51.100.1"
    assert client_ip({"headers": []}, Settings()) == "unknown"


# -- WebSocket admission (the rule, without a server) -------------------------------------------


def test_admission_refuses_a_foreign_origin_403_and_admits_no_origin() -> None:
    admission = WsAdmission(Settings())

    assert admission.check(scope(origin=EVIL)) == UpgradeRefusal(403, "Origin not allowed")
    assert admission.check(scope(origin=None)) is None
    assert admission.check(scope(origin="https://pika.example")) is None


def test_admission_caps_open_connections_per_ip_until_one_is_released() -> None:
    admission = WsAdmission(Settings(ws_open_per_ip=2))
    first, second, third = scope(), scope(), scope()
    assert admission.check(first) is None
    assert admission.check(second) is None

    assert admission.check(third) == UpgradeRefusal(429, "Too many connections from this address", 10)
    assert admission.check(scope(peer="198.51.100.1")) is None  # another address is not affected

    admission.release(first)
    admission.release(first)  # a second release of the same connection changes nothing
    admission.release(third)  # nor does releasing a refused one
    assert admission.open_from("203.0.113.7") == 1
    assert admission.check(scope()) is None


def test_admission_limits_new_connections_per_ip_per_window_and_says_when_to_retry() -> None:
    now = [1000.0]
    settings = Settings(ws_connects_per_ip=3, ws_connects_window=10.0, ws_reopen_seconds=0)
    admission = WsAdmission(settings, clock=lambda: now[0])
    for _ in range(3):
        s = scope()
        assert admission.check(s) is None
        admission.release(s)
        now[0] += 1.0

    assert admission.check(scope()) == UpgradeRefusal(429, "Too many connections from this address", 8)
    now[0] += 8.0
    assert admission.check(scope()) is None


def test_after_a_start_an_address_may_reconnect_up_to_its_open_cap_before_the_rate_counts() -> None:
    now = [1000.0]
    settings = Settings(ws_connects_per_ip=3, ws_open_per_ip=50, ws_reopen_seconds=30.0)
    admission = WsAdmission(settings, clock=lambda: now[0])
    venue = [scope() for _ in range(50)]
    assert all(admission.check(s) is None for s in venue)  # a whole venue, back at once
    assert admission.check(scope()) == UpgradeRefusal(429, "Too many connections from this address", 10)
    for s in venue:
        admission.release(s)

    # Churning closes and reopens: one cap's worth in the reopening, then the per-window rate.
    assert [admission.check(scope()) for _ in range(3)] == [None, None, None]
    assert admission.check(scope()) == UpgradeRefusal(429, "Too many connections from this address", 11)
    assert admission.check(scope(peer="198.51.100.1")) is None  # another address has its own
    now[0] += 30.0  # the reopening is over: the rate alone
    assert [admission.check(scope()) for _ in range(3)] == [None, None, None]
    assert admission.check(scope()) == UpgradeRefusal(429, "Too many connections from this address", 11)


# -- passwords and tokens -----------------------------------------------------------------------


async def test_passwords_hash_with_argon2id_and_verify() -> None:
    stored = await hash_password("dancing queen 1976")

    assert stored.startswith("$argon2id$")
    m, t, p = map(int, re.search(r"m=(\d+),t=(\d+),p=(\d+)", stored).groups())  # type: ignore[union-attr]
    assert m >= 19 * 1024 and t >= 2 and p == 1  # OWASP's floor
    assert await verify_password(stored, "dancing queen 1976") == (True, None)
    assert await verify_password(stored, "dancing queen 1977") == (False, None)
    assert await verify_password("not a hash", "dancing queen 1976") == (False, None)


async def test_a_hash_with_weaker_parameters_verifies_and_comes_back_rehashed() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("waterloo 1974")

    ok, new_hash = await verify_password(weak, "waterloo 1974")

    assert ok and new_hash is not None and new_hash != weak
    assert await verify_password(new_hash, "waterloo 1974") == (True, None)


async def test_burn_verify_costs_about_what_a_verify_costs() -> None:
    stored = await hash_password("fernando 1976")
    await burn_verify("warm up")  # the first call makes the dummy hash

    started = trio.current_time()
    await verify_password(stored, "wrong password")
    verify_cost = trio.current_time() - started
    started = trio.current_time()
    await burn_verify("wrong password")
    burn_cost = trio.current_time() - started

    assert burn_cost > verify_cost / 3


def test_tokens_are_pk_dj_and_32_hex_and_stored_as_sha256() -> None:
    token = new_token()

    assert re.fullmatch(r"pk_dj_[0-9a-f]{32}", token)
    assert well_formed(token)
    assert new_token() != token
    assert re.fullmatch(r"[0-9a-f]{64}", token_digest(token))
    assert not well_formed("pk_dj_" + "G" * 32) and not well_formed(token + "0")


# -- CORS and security headers (real server) ----------------------------------------------------


@pytest.fixture
async def cors_server(start_server: StartServer) -> Running:
    return await start_server(allowed_origins=(ALLOWED,))


async def test_an_unlisted_origin_gets_no_cors_headers(cors_server: Running) -> None:
    reply = await call(cors_server.url, "GET", "/health", headers={"Origin": EVIL})

    assert reply.status == 200
    assert "access-control-allow-origin" not in reply.headers
    assert "access-control-allow-credentials" not in reply.headers
    assert "origin" in reply.headers.get("vary", "").lower()


async def test_an_allowed_origin_gets_cors_with_credentials(cors_server: Running) -> None:
    for origin in (ALLOWED, cors_server.url):  # the allow-list, and the server's own origin
        reply = await call(cors_server.url, "GET", "/api/auth/me", headers={"Origin": origin})

        assert reply.status == 401
        assert reply.headers["access-control-allow-origin"] == origin
        assert reply.headers["access-control-allow-credentials"] == "true"


async def test_a_preflight_is_answered_204_for_an_allowed_origin_only(cors_server: Running) -> None:
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-pika-client"}

    allowed = await call(
        cors_server.url, "OPTIONS", "/api/auth/login", headers={"Origin": ALLOWED, **ask}, client=None
    )
    refused = await call(
        cors_server.url, "OPTIONS", "/api/auth/login", headers={"Origin": EVIL, **ask}, client=None
    )

    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in allowed.headers["access-control-allow-methods"]
    allow_headers = allowed.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-pika-client"):
        assert header in allow_headers
    assert "access-control-allow-origin" not in refused.headers


async def test_every_json_response_carries_the_security_headers(cors_server: Running) -> None:
    for method, path in [("GET", "/health"), ("GET", "/api/auth/me"), ("GET", "/no/such/page")]:
        reply = await call(cors_server.url, method, path)

        assert reply.headers["content-type"].startswith("application/json"), path
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["referrer-policy"] == "strict-origin-when-cross-origin"


# -- WebSocket upgrade (real server) ------------------------------------------------------------


async def upgrade(url: str, origin: str | None = None) -> tuple[int, trio.SocketStream]:
    """The HTTP status of a hand-made upgrade, and the open stream."""
    answer = await rawws.upgrade(url, origin)
    return answer.status, answer.stream


async def test_a_websocket_without_origin_or_with_an_allowed_one_is_accepted(cors_server: Running) -> None:
    with trio.fail_after(5):
        for origin in (None, ALLOWED, cors_server.url):
            status, stream = await upgrade(cors_server.url, origin)
            await stream.aclose()

            assert status == 101, origin


async def test_a_websocket_from_a_foreign_origin_is_refused_403_before_the_upgrade(
    cors_server: Running,
) -> None:
    with trio.fail_after(5):
        status, stream = await upgrade(cors_server.url, EVIL)
        await stream.aclose()

    assert status == 403


@pytest.mark.pair_excluded("each process counts its own connections per IP (PIKA_WS_*_PER_IP: per process)")
async def test_open_websockets_per_ip_are_capped_with_429(
    start_server: StartServer,
) -> None:
    running = await start_server(ws_open_per_ip=2)
    with trio.fail_after(10):
        first, a = await upgrade(running.url)
        second, b = await upgrade(running.url)
        third, c = await upgrade(running.url)
        await c.aclose()
        await a.aclose()
        while running.hub.ws_admission.open_from("127.0.0.1") > 1:  # the server frees the slot
            await trio.sleep(0.01)
        fourth, d = await upgrade(running.url)
        await b.aclose()
        await d.aclose()

    assert (first, second, third, fourth) == (101, 101, 429, 101)


@pytest.mark.pair_excluded("each process counts its own connections per IP (PIKA_WS_*_PER_IP: per process)")
async def test_new_websockets_per_ip_are_rate_limited_with_429_retry_after_and_json(
    start_server: StartServer,
) -> None:
    running = await start_server(ws_connects_per_ip=3, ws_connects_window=60, ws_reopen_seconds=0)
    with trio.fail_after(10):
        answers = await rawws.churn(running.url, 4)

    assert [a.status for a in answers] == [101, 101, 101, 429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["content-type"] == "application/json"
    assert json.loads(refused.body) == {"error": "Too many connections from this address"}


@pytest.mark.pair_excluded("each process counts its own connections per IP (PIKA_WS_*_PER_IP: per process)")
async def test_get_ws_without_an_upgrade_says_what_an_upgrade_would_get_and_counts_nothing(
    start_server: StartServer,
) -> None:
    running = await start_server(ws_open_per_ip=1, ws_connects_per_ip=1, ws_reopen_seconds=0)
    ports = (running.url, f"http://127.0.0.1:{running.live_port}")  # either /ws may be asked (a proxy)
    for _ in range(3):  # asking is free: the one connection of the window is still there after
        for base in ports:
            asked = await call(base, "GET", "/ws")
            assert (asked.status, asked.headers["upgrade"]) == (426, "websocket")
    held = await rawws.upgrade(running.url)
    assert held.status == 101

    for base in ports:
        asked = await call(base, "GET", "/ws")
        assert (asked.status, asked.headers["retry-after"]) == (429, "10")  # the open cap: a window
        assert asked.json() == {"error": "Too many connections from this address"}
    await held.stream.aclose()
