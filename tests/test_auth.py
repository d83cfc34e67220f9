"""DJ accounts over HTTP (PROTOCOL.md §8): register, login, /me, regenerate, limits, and fuzzing.

Against the real server and PostgreSQL; HTTP through the standard library in a worker thread.
Every hash costs ≈ 0.1 s, so each test registers and logs in as little as its point needs.
"""

from __future__ import annotations

import http.client
import json
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pika.server import Running, serve
from tests.conftest import test_settings

TOKEN = re.compile(r"^pk_dj_[0-9a-f]{32}$")
PASSWORD = "correct horse battery"
ROUTES = ("/api/auth/register", "/api/auth/login", "/api/auth/me", "/api/auth/regenerate-token")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_sync(
    url: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    client: str | None = "pika-e2e",
    timeout: float = 10.0,
) -> Reply:
    parts = urlsplit(url)
    sent = dict(headers or {})
    if client is not None:
        sent.setdefault("X-Pika-Client", client)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


async def call(url: str, method: str, path: str, **kwargs: Any) -> Reply:
    """One HTTP request from a worker thread; fails the test if no answer comes within 10 s."""
    with trio.fail_after(10):
        return await trio.to_thread.run_sync(
            lambda: request_sync(url, method, path, **kwargs), abandon_on_cancel=True
        )


async def register(url: str, email: str, name: str, password: str = PASSWORD) -> Reply:
    return await call(
        url, "POST", "/api/auth/register", body={"email": email, "password": password, "displayName": name}
    )


async def login(url: str, email: str, password: str = PASSWORD) -> Reply:
    return await call(url, "POST", "/api/auth/login", body={"email": email, "password": password})


def count_djs(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM djs").fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
async def srv(nursery: trio.Nursery, db_url: str) -> Running:
    """The real server; per-IP register limit raised (all test clients share 127.0.0.1)."""
    return await nursery.start(serve, test_settings(db_url, register_per_ip=100))


# -- register ---------------------------------------------------------------------------------


async def test_register_answers_201_with_the_user_and_a_token(srv: Running) -> None:
    reply = await register(srv.url, "  Ana@Example.COM ", "DJ Ánä Ç. Fuego")

    assert reply.status == 201, reply.body
    body = reply.json()
    assert set(body) == {"success", "user", "token"}
    assert body["success"] is True
    assert TOKEN.match(body["token"])
    user = body["user"]
    assert set(user) == {"id", "email", "displayName", "slug"}
    assert user["email"] == "ana@example.com"
    assert user["displayName"] == "DJ Ánä Ç. Fuego"
    assert user["slug"] == "dj-ana-c-fuego"
    assert reply.headers["content-type"].startswith("application/json")


async def test_a_taken_email_is_refused_409_whatever_its_case(srv: Running) -> None:
    assert (await register(srv.url, "bo@example.com", "Bo One")).status == 201

    reply = await register(srv.url, "BO@example.com", "Bo Two")

    assert reply.status == 409
    assert "email" in reply.json()["error"]
    assert count_djs(srv.database_url) == 1


async def test_a_display_name_whose_web_address_is_taken_is_refused_409(srv: Running) -> None:
    assert (await register(srv.url, "c1@example.com", "Cee Jay")).status == 201

    reply = await register(srv.url, "c2@example.com", "cee  JAY!")

    assert reply.status == 409
    assert "cee-jay" in reply.json()["error"]


async def test_a_reserved_or_too_short_web_address_is_refused_400(srv: Running) -> None:
    for name in ["admin", "API", "  live ", "DJ", "my likes", "x", "!!", "日本語", "www", "Health", "ws"]:
        reply = await register(srv.url, "d@example.com", name)

        assert reply.status == 400, name
        assert reply.json()["error"].startswith("displayName:"), name
    assert count_djs(srv.database_url) == 0


async def test_invalid_fields_are_refused_400_naming_the_field(srv: Running) -> None:
    for field, value in [
        ("password", "short12"),
        ("password", "x" * 129),
        ("password", 12345678),
        ("password", None),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("email", "ü@example.com"),
        ("displayName", ""),
        ("displayName", "<script>"),
        ("displayName", "x" * 101),
        ("displayName", "tab\there"),
    ]:
        body = {"email": "e@example.com", "password": PASSWORD, "displayName": "Eve Ning", field: value}

        reply = await call(srv.url, "POST", "/api/auth/register", body=body)

        assert reply.status == 400, (field, value)
        assert reply.json()["error"].startswith(f"{field}:"), (field, value, reply.json())
    assert count_djs(srv.database_url) == 0


async def test_auth_posts_without_a_known_client_header_are_refused_403(srv: Running) -> None:
    body = {"email": "f@example.com", "password": PASSWORD, "displayName": "Eff"}
    for client in [None, "", "curl", "pika-evil"]:
        for path in ("/api/auth/register", "/api/auth/login", "/api/auth/regenerate-token"):
            reply = await call(srv.url, "POST", path, body=body, client=client)

            assert reply.status == 403, (client, path)
            assert "X-Pika-Client" in reply.json()["error"]
    assert count_djs(srv.database_url) == 0


# -- login, me, regenerate --------------------------------------------------------------------


async def test_login_answers_the_user_and_a_new_token_each_time(srv: Running) -> None:
    registered = (await register(srv.url, "gee@example.com", "Gee")).json()

    first = await login(srv.url, "GEE@example.com ")
    second = await login(srv.url, "gee@example.com")

    assert first.status == second.status == 200
    assert first.json()["user"] == registered["user"]
    assert first.json()["success"] is True
    tokens = {registered["token"], first.json()["token"], second.json()["token"]}
    assert len(tokens) == 3
    for token in tokens:  # every one of them works
        assert (await call(srv.url, "GET", "/api/auth/me", token=token)).status == 200


async def test_a_wrong_password_and_an_unknown_email_get_the_same_401(srv: Running) -> None:
    await register(srv.url, "hal@example.com", "Hal")

    wrong_password = await login(srv.url, "hal@example.com", "not the password")
    unknown_email = await login(srv.url, "nobody@example.com", "not the password")

    assert wrong_password.status == unknown_email.status == 401
    assert wrong_password.body == unknown_email.body
    assert wrong_password.json() == {"error": "Invalid email or password"}


async def test_a_login_with_an_unpaired_surrogate_in_the_email_is_a_plain_401(srv: Running) -> None:
    # JSON may carry a lone "\ud800"; the failed login's audit line digests it instead of failing with a 500.
    reply = await login(srv.url, "\ud800@example.com", "not the password")

    assert reply.status == 401
    assert reply.json() == {"error": "Invalid email or password"}


async def test_after_five_failures_every_login_for_that_email_is_429_even_the_right_one(srv: Running) -> None:
    await register(srv.url, "ida@example.com", "Ida")
    for _ in range(5):
        assert (await login(srv.url, "ida@example.com", "wrong password")).status == 401

    sixth = await login(srv.url, "ida@example.com", "wrong password")
    right = await login(srv.url, "IDA@example.com", PASSWORD)

    for reply in (sixth, right):
        assert reply.status == 429
        assert 1 <= int(reply.headers["retry-after"]) <= 900
        assert "error" in reply.json()
    # Other accounts are untouched.
    assert (await login(srv.url, "other@example.com", "wrong password")).status == 401


async def test_me_answers_the_account_of_the_token(srv: Running) -> None:
    registered = (await register(srv.url, "jo@example.com", "Jo Jo")).json()

    reply = await call(srv.url, "GET", "/api/auth/me", token=registered["token"])

    assert reply.status == 200
    assert reply.json() == {"success": True, "user": registered["user"]}


async def test_me_without_a_valid_token_is_401(srv: Running) -> None:
    for authorization in [None, "Bearer", "Basic abc", "Bearer pk_dj_" + "0" * 32, "Bearer nonsense"]:
        headers = {} if authorization is None else {"Authorization": authorization}

        reply = await call(srv.url, "GET", "/api/auth/me", headers=headers)

        assert reply.status == 401, authorization
        assert set(reply.json()) == {"error"}
        assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_regenerate_revokes_the_presented_token_and_returns_a_working_one(srv: Running) -> None:
    old = (await register(srv.url, "kay@example.com", "Kay")).json()["token"]

    reply = await call(srv.url, "POST", "/api/auth/regenerate-token", token=old)

    assert reply.status == 200
    body = reply.json()
    assert set(body) == {"success", "token"} and body["success"] is True
    assert TOKEN.match(body["token"]) and body["token"] != old
    assert (await call(srv.url, "GET", "/api/auth/me", token=old)).status == 401
    assert (await call(srv.url, "GET", "/api/auth/me", token=body["token"])).status == 200
    again = await call(srv.url, "POST", "/api/auth/regenerate-token", token=old)
    assert again.status == 401


async def test_tokens_are_stored_only_as_sha256_hex_digests(srv: Running) -> None:
    token = (await register(srv.url, "lee@example.com", "Lee")).json()["token"]
    await call(srv.url, "POST", "/api/auth/regenerate-token", token=token)

    with psycopg.connect(srv.database_url) as conn:
        digests = [r[0] for r in conn.execute("SELECT token_sha256 FROM dj_tokens").fetchall()]
        dump = json.dumps(
            [list(map(str, r)) for r in conn.execute("SELECT * FROM dj_tokens").fetchall()]
            + [list(map(str, r)) for r in conn.execute("SELECT * FROM djs").fetchall()]
        )

    assert len(digests) == 2
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests)
    assert "pk_dj_" not in dump
    assert PASSWORD not in dump
    assert "$argon2id$" in dump


# -- per-IP limits ----------------------------------------------------------------------------


async def test_login_attempts_per_ip_are_limited_with_retry_after(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url, login_attempts_per_ip=3))
    for i in range(3):  # short passwords: refused without hashing, still attempts
        assert (await login(running.url, f"m{i}@example.com", "short")).status == 401

    reply = await login(running.url, "m9@example.com", "short")

    assert reply.status == 429
    assert int(reply.headers["retry-after"]) >= 1
    assert "login" in reply.json()["error"].lower()


async def test_registrations_per_ip_are_limited_with_retry_after(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url, register_per_ip=1))
    assert (await register(running.url, "n1@example.com", "Enn One")).status == 201

    reply = await register(running.url, "n2@example.com", "Enn Two")

    assert reply.status == 429
    assert int(reply.headers["retry-after"]) >= 1
    assert set(reply.json()) == {"error"}
    assert count_djs(running.database_url) == 1


async def test_token_regenerations_per_ip_are_limited(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(serve, test_settings(db_url, register_per_ip=1))
    token = (await register(running.url, "o@example.com", "Oh")).json()["token"]
    token = (await call(running.url, "POST", "/api/auth/regenerate-token", token=token)).json()["token"]

    reply = await call(running.url, "POST", "/api/auth/regenerate-token", token=token)

    assert reply.status == 429
    assert int(reply.headers["retry-after"]) >= 1
    assert (await call(running.url, "GET", "/api/auth/me", token=token)).status == 200  # not revoked


# -- fuzzing: no body makes a 500 or a partial account ----------------------------------------


@pytest.fixture(scope="module")
def threaded_server(pg_cluster: Any, migrated_template: str) -> Iterator[Running]:
    """One server for many hypothesis examples, in a thread with its own trio loop; limits raised."""
    url = pg_cluster.create(template=migrated_template)
    big = 10**6
    config = test_settings(url, login_attempts_per_ip=big, register_per_ip=big, login_failures_per_email=big)
    started: queue.Queue[Any] = queue.Queue()

    async def main() -> None:
        try:
            async with trio.open_nursery() as nursery:
                running: Running = await nursery.start(serve, config)
                started.put((running, trio.lowlevel.current_trio_token()))
        except BaseException as exc:
            started.put(exc)
            raise

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    got = started.get(timeout=60)
    if isinstance(got, BaseException):
        raise got
    running, trio_token = got
    yield running
    trio.from_thread.run_sync(running.shutdown.set, trio_token=trio_token)
    thread.join(30)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
field_values = (
    json_values
    | st.text(min_size=0, max_size=200)
    | st.tuples(st.text(min_size=1, max_size=3), st.integers(1_000, 60_000)).map(lambda t: t[0] * t[1])
    | st.sampled_from(["a@b.co", "dj@example.com", "\x00", "\ud800", "x" * 128, "<>", "admin", "  "])
)
BAD_JSON = [b"", b"{", b'{"email": }', b"[" * 100_000, b'{"a": 1e999999}', b"\xff\xfe", b"9" * 5000]
names = st.from_regex(r"[A-Za-z\u00c0-\u00ff][A-Za-z0-9\u00c0-\u00ff ._-]{1,40}", fullmatch=True)
plausible_bodies = st.fixed_dictionaries(  # mostly valid: these reach hashing and the database
    {
        "email": st.one_of(st.emails(), st.emails(), st.emails(), field_values),
        "password": st.one_of(*[st.text(min_size=8, max_size=128)] * 3, field_values),
        "displayName": st.one_of(names, names, st.text(min_size=1, max_size=100), field_values),
    }
)
bodies = st.one_of(
    plausible_bodies,
    plausible_bodies,
    st.fixed_dictionaries(
        {},
        optional={"email": field_values, "password": field_values, "displayName": field_values},
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.sampled_from(BAD_JSON),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(route=st.sampled_from(ROUTES), body=bodies, token=st.none() | st.text(max_size=60))
def test_no_request_body_makes_a_500_or_a_partial_account(
    threaded_server: Running, route: str, body: Any, token: str | None
) -> None:
    before = count_djs(threaded_server.database_url)
    kwargs: dict[str, Any] = {"raw": body} if isinstance(body, bytes) else {"body": body}
    headers = {}
    if token is not None and token.isascii() and token.isprintable():
        headers["Authorization"] = f"Bearer {token}"
    method = "GET" if route.endswith("/me") else "POST"

    reply = request_sync(threaded_server.url, method, route, headers=headers, **kwargs)
    event(f"{route} -> {reply.status}")

    assert 400 <= reply.status < 500 or (reply.status in (200, 201)), (reply.status, reply.body[:200])
    assert reply.headers["content-type"].startswith("application/json")
    payload = reply.json()
    after = count_djs(threaded_server.database_url)
    if reply.status == 201:
        assert after == before + 1
        assert TOKEN.match(payload["token"])
        assert request_sync(threaded_server.url, "GET", "/api/auth/me", token=payload["token"]).status == 200
    else:
        assert after == before
        if reply.status >= 400:
            assert set(payload) == {"error"} and isinstance(payload["error"], str)
