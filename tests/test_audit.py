"""The audit log: one line per security-relevant event, with the client address (as the
trusted-proxy rules resolve it) and the account id, never a password, token or email in clear.

The real server in-process, real HTTP and WebSocket clients and the real admin CLI; the log is
captured as the server writes it (records of the `pika.audit` logger, formatted both ways).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pika.audit import email_hash
from pika.logs import JsonFormatter, LineFormatter
from pika.server import Running
from tests.conftest import StartServer
from tests.rawws import upgrade
from tests.test_admin import admin
from tests.test_auth import PASSWORD, call, login, register
from tests.test_controllers import attach, live, until
from tests.wsclient import connect

EMAIL = "audit.me@example.com"
SECRETS = (PASSWORD, "wrong password 99", EMAIL, "pk_dj_")


class AuditLog:
    """The audit lines written since the test began."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def events(self, event: str) -> list[dict[str, Any]]:
        audit = [r for r in self._caplog.records if r.name == "pika.audit"]
        return [r.fields for r in audit if r.fields["event"] == event]  # type: ignore[attr-defined]

    def assert_no_secret(self, *extra: str) -> None:
        for record in self._caplog.records:
            for text in (LineFormatter().format(record), JsonFormatter().format(record)):
                for secret in (*SECRETS, *extra):
                    assert secret not in text, text


@pytest.fixture
def audit_log(caplog: pytest.LogCaptureFixture) -> Iterator[AuditLog]:
    caplog.set_level(logging.INFO, logger="pika.audit")
    yield AuditLog(caplog)


async def account(server: Running, email: str = EMAIL, name: str = "DJ Audit") -> tuple[int, str]:
    body = (await register(server.url, email, name)).json()
    return body["user"]["id"], body["token"]


async def test_registration_token_regeneration_and_failed_logins_are_audited(
    start_server: StartServer, audit_log: AuditLog
) -> None:
    server = await start_server(trusted_proxies=("127.0.0.1",))
    dj_id, token = await account(server)
    fresh = (await call(server.url, "POST", "/api/auth/regenerate-token", token=token)).json()["token"]
    wrong = await call(
        server.url,
        "POST",
        "/api/auth/login",
        body={"email": EMAIL, "password": "wrong password 99"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    unknown = await call(
        server.url, "POST", "/api/auth/login", body={"email": "nobody@example.com", "password": PASSWORD}
    )

    assert wrong.status == unknown.status == 401
    assert [(e["ip"], e["account"]) for e in audit_log.events("registered")] == [("127.0.0.1", dj_id)]
    assert [(e["ip"], e["account"]) for e in audit_log.events("token_regenerated")] == [("127.0.0.1", dj_id)]
    failed = audit_log.events("login_failed")
    assert [(e["ip"], e["account"]) for e in failed] == [("203.0.113.9", dj_id), ("127.0.0.1", "-")]
    assert failed[0]["email_hash"] == email_hash(EMAIL) != failed[1]["email_hash"]
    audit_log.assert_no_secret(token, fresh)


async def test_an_http_429_is_audited_once_with_its_path(
    start_server: StartServer, audit_log: AuditLog
) -> None:
    server = await start_server(login_attempts_per_ip=1)
    await login(server.url, "a@example.com", "whatever password")

    refused = await login(server.url, "a@example.com", "whatever password")

    assert refused.status == 429
    limited = audit_log.events("rate_limited")
    assert [(e["ip"], e["path"]) for e in limited] == [("127.0.0.1", "/api/auth/login")]
    audit_log.assert_no_secret("whatever password", "a@example.com")


async def test_refused_websocket_upgrades_are_audited_with_status_and_reason(
    start_server: StartServer, audit_log: AuditLog
) -> None:
    server = await start_server(ws_open_per_ip=1, public_origin="https://pika.example")
    bad_origin = await upgrade(server.url, origin="https://evil.example")
    first = await upgrade(server.url)
    second = await upgrade(server.url)
    for answer in (bad_origin, first, second):
        await answer.stream.aclose()

    assert (bad_origin.status, first.status, second.status) == (403, 101, 429)
    refused = audit_log.events("ws_refused")
    assert [(e["ip"], e["status"]) for e in refused] == [("127.0.0.1", 403), ("127.0.0.1", 429)]
    assert "Origin" in refused[0]["error"]


async def test_ownership_refusals_name_the_account_and_the_session(
    server: Running, audit_log: AuditLog
) -> None:
    owner_id, owner_token = await account(server)
    rival_id, rival_token = await account(server, "rival@example.com", "DJ Rival")
    async with connect(server.url) as dj, connect(server.url) as rival, connect(server.url) as console:
        await live(dj, owner_token, "owned_session_1")
        taken = await rival.request("REGISTER_SESSION", sessionId="owned_session_1", token=rival_token)
        attached = await attach(console, rival_token, "owned_session_1")

    assert taken[-1]["type"] == attached[-1]["type"] == "NACK"
    refused = audit_log.events("ownership_refused")
    assert [(e["account"], e["message"], e["session"]) for e in refused] == [
        (rival_id, "REGISTER_SESSION", "owned_session_1"),
        (rival_id, "ATTACH_SESSION", "owned_session_1"),
    ]
    assert {e["ip"] for e in refused} == {"127.0.0.1"}
    assert owner_id != rival_id
    audit_log.assert_no_secret(owner_token, rival_token)


async def test_admin_actions_are_audited_by_the_running_server(server: Running, audit_log: AuditLog) -> None:
    dj_id, token = await account(server)

    revoked = await admin(server.database_url, "revoke-tokens", "--email", EMAIL)
    reset = await admin(server.database_url, "reset-password", "--email", EMAIL)

    assert revoked.code == reset.code == 0
    new_password = reset.out.splitlines()[0].rsplit(": ", 1)[1]
    await until(lambda: len(audit_log.events("admin_action")) == 2)
    assert [(e["action"], e["account"], e["ip"]) for e in audit_log.events("admin_action")] == [
        ("revoke_tokens", dj_id, "-"),
        ("reset_password", dj_id, "-"),
    ]
    audit_log.assert_no_secret(token, new_password)


def test_json_log_lines_carry_the_audit_fields_for_log_shippers() -> None:
    record = logging.LogRecord("pika.audit", logging.INFO, __file__, 1, "login_failed", None, None)
    record.fields = {"event": "login_failed", "ip": "203.0.113.9", "account": 7, "msg": "not the message"}

    line = json.loads(JsonFormatter().format(record))

    assert line["event"] == "login_failed" and line["ip"] == "203.0.113.9" and line["account"] == 7
    assert line["logger"] == "pika.audit" and line["level"] == "info" and line["msg"] == "login_failed"
    assert line["ts"].endswith("Z")
