"""Web Push and the offline shell in headless Chromium (issue 16).

Chromium has no push service in an incognito context (`pushManager.subscribe` rejects with
"AbortError: Registration failed - permission denied", the permission granted or not), and in a
profile on disk it needs Google's GCM: tests/gcm.py stands in for GCM's check-in and registration,
so the page gets the browser's own subscription.  Its endpoint is Google's (compiled in), which
nothing here can reach; so the test of the pushed notification hands the page a subscription of
tests/pushservice.py instead, and from there everything is real: the page posts it, the server
encrypts and pushes, and the decrypted push is delivered to the service worker (DevTools'
ServiceWorker.deliverPushMessage), which shows the notification.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import expect

from pika.push.keys import new_keys, private_key_of, public_key_of
from tests.browser import Dancer, artifact, dj_live, running_server
from tests.gcm import STAGING_ENDPOINT, fake_gcm
from tests.pushservice import push_service
from tests.test_web import by, wait_live

# The page's own code calls this instead of the browser's push registration (see the docstring).
FAKE_SUBSCRIBE = """
(subscription) => {
  let current = null;
  PushManager.prototype.subscribe = async function (options) {
    const keyBytes = options.applicationServerKey.byteLength;
    window.__subscribeOptions = { userVisibleOnly: options.userVisibleOnly, keyBytes };
    current = {
      endpoint: subscription.endpoint,
      toJSON: () => JSON.parse(JSON.stringify(subscription)),
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
}
"""

SHELL_KEPT = """
() => caches.open("pika-shell-v1").then((c) => c.match("/live/_offline_shell")).then((r) => !!r)
"""

SUBSCRIPTION = """
() => navigator.serviceWorker.ready
  .then((r) => r.pushManager.getSubscription())
  .then((s) => (s === null ? null : s.toJSON()))
"""

NOTIFICATIONS = """
() => navigator.serviceWorker.ready
  .then((r) => r.getNotifications())
  .then((ns) => ns.map((n) => ({ title: n.title, body: n.body, url: n.data.url })))
"""


def wait_for(page: Any, condition: Any, seconds: float = 20.0) -> None:
    """Poll `condition` while playwright keeps handling the browser's events."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def test_the_page_subscribes_with_the_browsers_own_push_subscription_after_a_tap(
    browser: Any, db_url: str, tmp_path: Path
) -> None:
    vapid = new_keys()
    env = {
        "PIKA_VAPID_PRIVATE_KEY": private_key_of(vapid),
        "PIKA_PUSH_HOSTS": "jmt17.google.com",  # the push service this Chromium names (tests/gcm.py)
    }
    with running_server(db_url, tmp_path / "server.log", **env) as server, fake_gcm() as gcm:
        dancer = Dancer(browser, server.url, profile=(tmp_path / "profile", gcm.switches))
        dancer.context.grant_permissions(["notifications"], origin=server.url)
        try:
            with dj_live(server.url, "push_real1", "DJ Ana"):
                page = dancer.goto("/live/push_real1")
                wait_live(page)
                button = by(page, "push-button")
                expect(button).to_have_text("Notify me about announcements")
                assert page.evaluate(SUBSCRIPTION) is None and gcm.tokens == []  # nothing before the tap
                button.click()
                expect(button).to_have_attribute("aria-pressed", "true")
                expect(button).to_have_text("Stop announcement notifications")

                real = page.evaluate(SUBSCRIPTION)
                # Chromium may register again when an answer is slow, and keep either token.
                assert real["endpoint"] in [STAGING_ENDPOINT + token for token in gcm.tokens]
                # the page's registration names the server's key (Chromium may register for itself too)
                assert public_key_of(vapid) in [r["sender"] for r in gcm.registrations]
                stored = server_rows(
                    server, "SELECT endpoint, p256dh, auth, client_id, session_id FROM push_subscriptions"
                )
                assert stored == [
                    (
                        real["endpoint"],
                        real["keys"]["p256dh"],
                        real["keys"]["auth"],
                        dancer.client_id(),
                        "push_real1",
                    )
                ]

                button.click()  # unsubscribe: in the browser and on the server
                expect(button).to_have_attribute("aria-pressed", "false")
                assert page.evaluate(SUBSCRIPTION) is None
                assert server_rows(server, "SELECT count(*) FROM push_subscriptions") == [(0,)]
            assert dancer.errors == []
        finally:
            dancer.close()


def test_a_pushed_announcement_shows_as_a_notification(browser: Any, db_url: str, tmp_path: Path) -> None:
    vapid = new_keys()
    env = {"PIKA_VAPID_PRIVATE_KEY": private_key_of(vapid), "PIKA_PUSH_ALLOW_HTTP": "true"}
    with (
        running_server(db_url, tmp_path / "server.log", **env) as server,
        push_service(public_key_of(vapid)) as service,
    ):
        phone = service.add("browser")
        dancer = Dancer(browser, server.url)
        dancer.context.grant_permissions(["notifications"], origin=server.url)
        dancer.page.add_init_script(
            script=f"({FAKE_SUBSCRIBE})({json.dumps(phone.subscription(service.base))})"
        )
        try:
            with dj_live(server.url, "push_browser1", "DJ Ana") as dj:
                page = dancer.goto("/live/push_browser1")
                wait_live(page)
                button = by(page, "push-button")
                expect(button).to_have_text("Notify me about announcements")
                assert page.evaluate("() => Notification.permission") == "granted"  # granted, never asked
                assert page.evaluate(
                    "() => window.__subscribeOptions === undefined"
                )  # nothing before the tap
                button.click()
                expect(button).to_have_attribute("aria-pressed", "true")
                expect(button).to_have_text("Stop announcement notifications")
                assert page.evaluate("() => window.__subscribeOptions") == {
                    "userVisibleOnly": True,
                    "keyBytes": 65,
                }

                stored = server_rows(
                    server, "SELECT endpoint, p256dh, auth, client_id, session_id FROM push_subscriptions"
                )
                keys = phone.subscription(service.base)
                assert stored == [
                    (
                        keys["endpoint"],
                        keys["keys"]["p256dh"],
                        keys["keys"]["auth"],
                        dancer.client_id(),
                        "push_browser1",
                    )
                ]

                dj.request(
                    "SEND_ANNOUNCEMENT",
                    sessionId="push_browser1",
                    message="Last dance!",
                    durationSeconds=60,
                    push=True,
                )
                wait_for(page, lambda: len(phone.received) == 1)
                deliver_push(dancer, server.url, phone.received[0])
                wait_for(page, lambda: page.evaluate(NOTIFICATIONS) != [])
                assert page.evaluate(NOTIFICATIONS) == [
                    {"title": "DJ Ana", "body": "Last dance!", "url": "/live/push_browser1"}
                ]

                button.click()  # unsubscribe
                expect(button).to_have_attribute("aria-pressed", "false")
                assert server_rows(server, "SELECT count(*) FROM push_subscriptions") == [(0,)]
            assert service.problems == []
            assert dancer.errors == []
        finally:
            dancer.close()


def test_a_reload_without_the_server_shows_the_offline_shell_with_the_last_state(
    browser: Any, db_url: str, tmp_path: Path
) -> None:
    with running_server(db_url, tmp_path / "server.log") as server:
        dancer = Dancer(browser, server.url)
        try:
            with dj_live(server.url, "push_offline1", "DJ Ana") as dj:
                dj.play("Earlier Song", "The Band")
                dj.play("Offline Song", "The Band")
                page = dancer.goto("/live/push_offline1")
                wait_live(page)
                expect(by(page, "history-title")).to_have_text(["Earlier Song"])
                wait_for(page, lambda: page.evaluate(SHELL_KEPT))
                server.stop()
                page.reload()
                expect(by(page, "signal-lost")).to_be_visible()
                expect(by(page, "track-title")).to_have_text("Offline Song")  # what it last knew
                expect(by(page, "dj-name")).to_have_text("DJ Ana")
                expect(by(page, "connection-status")).to_have_text("Signal lost")
                expect(by(page, "history-title")).to_have_text(["Earlier Song"])
                page.screenshot(path=artifact("live-player-offline-shell.png"))
                server.start()  # dj_live's close speaks to it
            assert dancer.errors == []
        finally:
            dancer.close()


def server_rows(server: Any, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.env["PIKA_DATABASE_URL"]) as conn:
        return conn.execute(sql).fetchall()


def deliver_push(dancer: Dancer, origin: str, payload: dict[str, Any]) -> None:
    """Hand the push the service received to the page's service worker, as the browser would."""
    cdp = dancer.context.new_cdp_session(dancer.page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")
    wait_for(dancer.page, lambda: any(r["scopeURL"] == origin + "/" for r in registrations))
    registration = next(r for r in registrations if r["scopeURL"] == origin + "/")
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": registration["registrationId"], "data": json.dumps(payload)},
    )
