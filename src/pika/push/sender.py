"""Sending `push: true` announcements as Web Push, off the live path.

`announce()` only puts the announcement on a bounded queue (full: dropped and counted), so a
broadcast never waits for it.  `run()` reads the session's subscriptions and feeds a second bounded
queue drained by PIKA_PUSH_CONCURRENCY workers; pywebpush is synchronous, so each encrypt-and-POST
runs in a worker thread behind a CapacityLimiter.  404/410 delete the subscription; 429, 5xx and
network errors retry by pika.backoff's rule while the announcement is still current (its TTL).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
import trio
from pywebpush import WebPushException, webpush

from pika.backoff import parse_retry_after, reconnect_delay
from pika.config import Settings
from pika.db import Database, DatabaseStalled
from pika.metrics import PUSH_RESULTS
from pika.push.endpoints import endpoint_allowed
from pika.push.keys import VapidKeys, load_keys
from pika.queries import query

__all__ = ["PushSender"]

READ_PUSH_SUBSCRIPTIONS = query("read_push_subscriptions")
DELETE_PUSH_SUBSCRIPTION = query("delete_push_subscription")

ANNOUNCEMENTS_QUEUED = 64
DELIVERIES_QUEUED = 256
OPEN_ENDED_TTL = 900.0  # an announcement without endsAt is pushed with this lifetime (s)
REQUEST_TIMEOUT = 10.0

log = logging.getLogger("pika.push")


@dataclass(frozen=True)
class Push:
    session_id: str
    payload: str  # JSON: {title, body, sessionId, url, endsAt?}
    deadline: float  # Unix seconds: no use delivering it after that


@dataclass(frozen=True)
class Delivery:
    push: Push
    endpoint: str
    p256dh: str
    auth: str
    failures: int = 0


class PushSender:
    """The queue between the live path and the push services."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.keys: VapidKeys | None = None
        self._queue_in, self._queue_out = trio.open_memory_channel[Push](ANNOUNCEMENTS_QUEUED)
        self._limiter = trio.CapacityLimiter(settings.push_concurrency)
        self._local = threading.local()  # one requests.Session per worker thread: kept connections

    @property
    def public_key(self) -> str | None:
        return None if self.keys is None else self.keys.public_key

    def announce(self, session_id: str, dj_name: str, message: str, ends_at: float | None) -> None:
        """Queue a Web Push of this announcement to the session's subscribers; never waits."""
        if self.keys is None:
            return
        deadline = ends_at if ends_at is not None else time.time() + OPEN_ENDED_TTL
        body: dict[str, Any] = {
            "title": dj_name,
            "body": message,
            "sessionId": session_id,
            "url": f"/live/{session_id}",
        }
        if ends_at is not None:
            body["endsAt"] = int(ends_at * 1000)
        try:
            self._queue_in.send_nowait(Push(session_id, json.dumps(body), deadline))
        except trio.WouldBlock:
            PUSH_RESULTS.labels("dropped").inc()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.keys = await trio.to_thread.run_sync(load_keys, self.settings)
        deliveries_in, deliveries_out = trio.open_memory_channel[Delivery](DELIVERIES_QUEUED)
        async with trio.open_nursery() as nursery:
            for _ in range(self.settings.push_concurrency):
                nursery.start_soon(self._worker, nursery, deliveries_in, deliveries_out)
            task_status.started()
            async for push in self._queue_out:
                try:
                    rows = await self.db.all(READ_PUSH_SUBSCRIPTIONS, session_id=push.session_id)
                except DatabaseStalled:
                    log.warning("push: the database stalled, announcement not pushed")
                    PUSH_RESULTS.labels("failed").inc()
                    continue
                for row in rows:
                    if not endpoint_allowed(
                        row["endpoint"], self.settings.push_hosts, allow_http=self.settings.push_allow_http
                    ):
                        PUSH_RESULTS.labels("refused").inc()  # stored before PIKA_PUSH_HOSTS named its host
                        continue
                    await deliveries_in.send(Delivery(push, row["endpoint"], row["p256dh"], row["auth"]))

    async def _worker(
        self,
        nursery: trio.Nursery,
        retries: trio.MemorySendChannel[Delivery],
        deliveries: trio.MemoryReceiveChannel[Delivery],
    ) -> None:
        async for delivery in deliveries:
            await self._deliver(nursery, retries, delivery)

    async def _deliver(
        self, nursery: trio.Nursery, retries: trio.MemorySendChannel[Delivery], delivery: Delivery
    ) -> None:
        ttl = int(delivery.push.deadline - time.time())
        if ttl <= 0:
            PUSH_RESULTS.labels("expired").inc()
            return
        status, retry_after = await trio.to_thread.run_sync(
            self._post, delivery, ttl, limiter=self._limiter, abandon_on_cancel=True
        )
        if status is not None and 200 <= status < 300:
            PUSH_RESULTS.labels("sent").inc()
        elif status in (404, 410):
            PUSH_RESULTS.labels("gone").inc()
            with contextlib.suppress(DatabaseStalled):  # it is asked again at the next push
                await self.db.execute(DELETE_PUSH_SUBSCRIPTION, endpoint=delivery.endpoint)
        elif status is None or status == 429 or status >= 500:
            failures = delivery.failures + 1
            delay = reconnect_delay(failures, retry_after)
            if time.time() + delay >= delivery.push.deadline:
                PUSH_RESULTS.labels("expired").inc()
                return
            PUSH_RESULTS.labels("retried").inc()
            again = Delivery(delivery.push, delivery.endpoint, delivery.p256dh, delivery.auth, failures)
            nursery.start_soon(_send_later, retries, again, delay)
        else:
            log.warning("push refused", extra={"fields": {"status": status}})
            PUSH_RESULTS.labels("failed").inc()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _post(self, delivery: Delivery, ttl: int) -> tuple[int | None, float | None]:
        """Encrypt and POST one push (in a worker thread): the status and any Retry-After."""
        assert self.keys is not None
        keys = {"p256dh": delivery.p256dh, "auth": delivery.auth}
        subscription = {"endpoint": delivery.endpoint, "keys": keys}
        try:
            response = webpush(
                subscription,
                delivery.push.payload,
                vapid_private_key=self.keys.vapid,
                vapid_claims={"sub": self.keys.subject},
                ttl=ttl,
                headers={"Urgency": "high"},
                timeout=REQUEST_TIMEOUT,
                requests_session=self._session(),
            )
        except WebPushException as exc:
            response = exc.response
        except requests.RequestException as exc:
            log.info("push: no answer", extra={"fields": {"error": type(exc).__name__}})
            return None, None
        except Exception as exc:  # the stored keys cannot be used: no retry helps
            log.warning("push: cannot encrypt", extra={"fields": {"error": type(exc).__name__}})
            return 0, None
        if not isinstance(response, requests.Response):
            return None, None
        return response.status_code, parse_retry_after(response.headers.get("Retry-After"), time.time())


async def _send_later(retries: trio.MemorySendChannel[Delivery], delivery: Delivery, delay: float) -> None:
    await trio.sleep(delay)
    await retries.send(delivery)
