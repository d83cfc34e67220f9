"""Web Push (issue 16): a `push: true` announcement reaches the session's subscribers, encrypted
and VAPID-signed, through a real push service on 127.0.0.1 (tests/pushservice.py); gone
subscriptions are deleted, busy push services are retried; the keys come from `pika.admin vapid`.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio

from pika import admin
from pika.config import Settings
from pika.errors import ConfigError
from pika.metrics import PUSH_RESULTS
from pika.push.endpoints import endpoint_allowed
from pika.push.keys import key_file, load_keys, new_keys, private_key_of, public_key_of
from pika.server import Running
from tests.conftest import rows
from tests.procs import ServerProcess, free_port, proc_stat, process_tree
from tests.pushservice import push_service
from tests.wsclient import Peer, connect, go_live, until


async def call(
    server: Running | ServerProcess, method: str, path: str, payload: Any = None
) -> tuple[int, Any]:
    def run() -> tuple[int, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(server.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    return await trio.to_thread.run_sync(run)


async def announce(dj: Peer, session_id: str, message: str, **fields: Any) -> None:
    replies = await dj.request("SEND_ANNOUNCEMENT", sessionId=session_id, message=message, **fields)
    assert replies[-1]["type"] == "ACK", replies


def make_keys(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`python -m pika.admin vapid` into `data_dir`; its public key."""
    monkeypatch.setenv("PIKA_DATA_DIR", str(data_dir))
    assert admin.main(["vapid"]) == 0
    keys = load_keys(Settings(data_dir=data_dir, database_url="postgresql://unused"))
    assert keys is not None
    return keys.public_key


async def test_push_announcement_reaches_only_that_sessions_subscribers(
    start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public_key = make_keys(tmp_path, monkeypatch)
    server = await start_server(data_dir=tmp_path, push_allow_http=True)
    before = {result: PUSH_RESULTS.labels(result)._value.get() for result in ("sent", "gone", "retried")}
    assert await call(server, "GET", "/api/push/key") == (200, {"publicKey": public_key})
    with push_service(public_key) as service:
        phone, gone, busy, other = (
            service.add("phone"),
            service.add("gone", 410),
            service.add("busy", 429, 503),
            service.add("other"),
        )
        async with connect(server.url) as ana, connect(server.url) as bo:
            await go_live(ana, "push_floor", "DJ Ana")
            await go_live(bo, "push_other", "DJ Bo")
            subscribed = (
                (phone, "push_floor"),
                (gone, "push_floor"),
                (busy, "push_floor"),
                (other, "push_other"),
            )
            for sub, session in subscribed:
                body = sub.subscription(service.base, clientId=f"client_{sub.name}", sessionId=session)
                assert await call(server, "POST", "/api/push/subscribe", body) == (200, {"success": True})

            sent_at = time.time()
            await announce(ana, "push_floor", "Last dance in 5 minutes!", durationSeconds=300, push=True)
            await until(
                lambda: len(phone.received) == 1 and gone.answered == [410] and len(busy.received) == 1
            )
            await announce(bo, "push_other", "Water at the bar", push=True)
            await until(lambda: len(other.received) == 1)
            await announce(ana, "push_floor", "Not pushed")
            await announce(bo, "push_other", "Pushed again", push=True)
            await until(lambda: len(other.received) == 2)

        assert service.problems == []
        expected = {
            "title": "DJ Ana",
            "body": "Last dance in 5 minutes!",
            "sessionId": "push_floor",
            "url": "/live/push_floor",
        }
        for sub in (phone, busy):
            assert sub.received == [{**expected, "endsAt": pytest.approx((sent_at + 300) * 1000, abs=5000)}]
        assert busy.answered == [429, 503, 201]  # retried after a 429 and a 503
        assert other.received[0] == {
            "title": "DJ Bo",  # no endsAt: open-ended, pushed with a 15-minute TTL
            "body": "Water at the bar",
            "sessionId": "push_other",
            "url": "/live/push_other",
        }
        assert [p["body"] for p in other.received] == ["Water at the bar", "Pushed again"]
        first = next(r for r in service.log if r.subscriber == "phone")
        assert first.headers["urgency"] == "high" and first.headers["content-encoding"] == "aes128gcm"
        assert 0 < int(first.headers["ttl"]) <= 300  # stale after the announcement's endsAt
        assert first.claims["sub"] == "mailto:pika@localhost"

    endpoints = rows(server, "SELECT endpoint FROM push_subscriptions ORDER BY endpoint")
    assert [e.rsplit("/", 1)[1] for (e,) in endpoints] == ["busy", "other", "phone"]  # 410: gone
    assert PUSH_RESULTS.labels("sent")._value.get() - before["sent"] == 4
    assert PUSH_RESULTS.labels("gone")._value.get() - before["gone"] == 1
    assert PUSH_RESULTS.labels("retried")._value.get() - before["retried"] == 2
    metrics = await trio.to_thread.run_sync(lambda: urllib.request.urlopen(server.url + "/metrics").read())
    assert b'pika_push_deliveries_total{result="gone"}' in metrics


async def test_push_worker_processes_start_at_the_first_push_and_leave_with_the_server(
    db_url: str, tmp_path: Path
) -> None:
    vapid = new_keys()
    env = {
        "PIKA_DATABASE_URL": db_url,
        "PIKA_VAPID_PRIVATE_KEY": private_key_of(vapid),
        "PIKA_PUSH_ALLOW_HTTP": "true",
    }
    server = await ServerProcess.start(env, free_port(), tmp_path / "server.log")
    try:
        with push_service(public_key_of(vapid)) as service:
            phone = service.add("phone")
            async with connect(server.url) as dj:
                await go_live(dj, "push_procs", "DJ Ana")
                body = phone.subscription(service.base, clientId="client_phone", sessionId="push_procs")
                assert await call(server, "POST", "/api/push/subscribe", body) == (200, {"success": True})
                await announce(dj, "push_procs", "Not pushed")
                assert process_tree(server.proc.pid) == [server.proc.pid]  # no push yet, no workers
                await announce(dj, "push_procs", "Pushed", push=True)
                await until(lambda: len(phone.received) == 1)
            workers = process_tree(server.proc.pid)[1:]
            assert workers != []  # the push was encrypted and posted there
        assert await server.stop(signal.SIGTERM) == 0
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    # None left behind (multiprocessing's resource tracker leaves a moment after the server).
    await until(lambda: all(proc_stat(pid) is None for pid in workers), 5)


async def test_a_push_worker_process_that_dies_fails_its_batch_and_the_next_push_goes_out(
    start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public_key = make_keys(tmp_path, monkeypatch)
    server = await start_server(data_dir=tmp_path, push_allow_http=True)
    failed = PUSH_RESULTS.labels("failed")._value.get()
    with push_service(public_key) as service:
        held, later = service.add("held"), service.add("later")
        held.release = threading.Event()
        async with connect(server.url) as dj:
            await go_live(dj, "push_crash", "DJ Ana")
            body = held.subscription(service.base, clientId="client_held", sessionId="push_crash")
            assert await call(server, "POST", "/api/push/subscribe", body) == (200, {"success": True})
            await announce(dj, "push_crash", "Lost with its worker", push=True)
            await trio.to_thread.run_sync(held.arrived.wait, 20)
            for pid in process_tree(os.getpid())[1:]:
                if b"multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)  # the worker posting it, mid-request
            await until(lambda: PUSH_RESULTS.labels("failed")._value.get() == failed + 1)
            held.release.set()

            body = later.subscription(service.base, clientId="client_later", sessionId="push_crash")
            assert await call(server, "POST", "/api/push/subscribe", body) == (200, {"success": True})
            await announce(dj, "push_crash", "Pushed", push=True)
            await until(lambda: len(later.received) == 1 and len(held.received) == 2)
    # The held push had reached the push service before its worker died: answered, but to no one.
    assert [p["body"] for p in held.received] == ["Lost with its worker", "Pushed"]
    assert [p["body"] for p in later.received] == ["Pushed"]
    assert service.problems == []


async def test_unsubscribe_removes_the_subscription_and_endpoints_must_be_push_services(
    server: Running, tmp_path: Path
) -> None:
    sub = {"endpoint": "http://127.0.0.1:9/push/x", "keys": {"p256dh": "k", "auth": "a"}}
    assert await call(server, "POST", "/api/push/subscribe", sub) == (
        400,
        {"error": "endpoint: must be an https:// URL"},
    )
    for elsewhere in (
        "https://10.0.0.5/x",
        "https://pika.example/x",
        "https://fcm.googleapis.com.evil.example/x",
    ):
        sub["endpoint"] = elsewhere  # a page cannot make the server post to hosts of its choosing
        status, body = await call(server, "POST", "/api/push/subscribe", sub)
        assert status == 400 and body["error"].startswith("endpoint: must be a browser push service")
    assert rows(server, "SELECT count(*) FROM push_subscriptions") == [(0,)]
    sub["endpoint"] = "https://updates.push.services.mozilla.com/x"
    assert await call(server, "POST", "/api/push/subscribe", sub) == (200, {"success": True})
    assert rows(server, "SELECT count(*) FROM push_subscriptions") == [(1,)]
    assert await call(server, "DELETE", "/api/push/subscribe", {"endpoint": sub["endpoint"]}) == (
        200,
        {"success": True, "removed": 1},
    )
    assert rows(server, "SELECT count(*) FROM push_subscriptions") == [(0,)]
    status, body = await call(server, "DELETE", "/api/push/subscribe", {})
    assert status == 400 and body["error"].startswith("endpoint:")
    # No key configured and not the embedded default: push is off, and pages are told so.
    assert await call(server, "GET", "/api/push/key") == (
        404,
        {"error": "Web Push is not configured on this server"},
    )


def test_admin_vapid_creates_once_and_prints_env_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    public_key = make_keys(tmp_path, monkeypatch)
    assert public_key in capsys.readouterr().out
    assert key_file(Settings(data_dir=tmp_path)).stat().st_mode & 0o777 == 0o600
    assert admin.main(["vapid"]) == 1  # never replaces the key browsers subscribed with
    assert "exists" in capsys.readouterr().err
    assert admin.main(["vapid", "--print"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    settings = Settings(
        vapid_private_key=lines["PIKA_VAPID_PRIVATE_KEY"], vapid_public_key=lines["PIKA_VAPID_PUBLIC_KEY"]
    )
    keys = load_keys(settings)
    assert keys is not None and keys.public_key == lines["PIKA_VAPID_PUBLIC_KEY"] != public_key
    with pytest.raises(ConfigError, match="PIKA_VAPID_PUBLIC_KEY"):
        load_keys(settings.replace(vapid_public_key=public_key))
    with pytest.raises(ConfigError, match="PIKA_VAPID_SUBJECT"):
        load_keys(settings.replace(vapid_subject="pika@example.org"))


def test_an_endpoint_must_be_https_on_a_push_service_or_http_on_loopback_in_tests() -> None:
    hosts = ("fcm.googleapis.com", "push.apple.com")
    assert endpoint_allowed("https://fcm.googleapis.com/fcm/send/x", hosts)
    assert endpoint_allowed("https://web.push.apple.com/QGx", hosts)  # a subdomain of a listed host
    for refused in (
        "https://fcm.googleapis.com.evil.example/x",  # a suffix that is not a subdomain
        "https://evilfcm.googleapis.com/x",
        "https://10.0.0.5/x",
        "http://fcm.googleapis.com/x",  # push services speak https only
        "ftp://fcm.googleapis.com/x",
        "http://127.0.0.1:9/push",  # loopback http: only for a test push service
    ):
        assert not endpoint_allowed(refused, hosts), refused
    assert endpoint_allowed("http://127.0.0.1:9/push", hosts, allow_http=True)
    assert not endpoint_allowed("http://10.0.0.5/push", hosts, allow_http=True)
