"""Sending `push: true` announcements as Web Push, off the live path.

`announce()` only puts the announcement on a bounded queue (full: dropped and counted), so a
broadcast never waits for it.  `run()` reads the session's subscriptions and feeds a second bounded
queue; its workers take what is waiting there in batches and have worker processes (pika.push.post)
encrypt and post them, PIKA_PUSH_CONCURRENCY requests in flight in all.  404/410 delete the
subscription; 429, 5xx and network errors retry by pika.backoff's rule while the announcement is
still current (its TTL).  The processes start at the first push and stop with `run()`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import trio
import trio_parallel

from pika.backoff import reconnect_delay
from pika.config import Settings
from pika.db import Database, DatabaseStalled
from pika.metrics import PUSH_RESULTS
from pika.push.endpoints import endpoint_allowed
from pika.push.keys import VapidKeys, load_keys
from pika.push.post import NO_ANSWER, Answer, Outgoing, lower_priority, post_batch
from pika.queries import query

__all__ = ["PushSender"]

READ_PUSH_SUBSCRIPTIONS = query("read_push_subscriptions")
DELETE_PUSH_SUBSCRIPTION = query("delete_push_subscription")

ANNOUNCEMENTS_QUEUED = 64
DELIVERIES_QUEUED = 256
BATCH = 50  # pushes per worker-process call: one pickle each way for all of them
PROCESSES = 2  # worker processes at most: two, so one slow batch does not hold up the next
IDLE_SECONDS = 600.0  # a worker process idle this long exits; the next push starts another
STOP_SECONDS = 5.0  # at shutdown, a worker process not gone after this is killed
OPEN_ENDED_TTL = 900.0  # an announcement without endsAt is pushed with this lifetime (s)

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
        self._processes = min(PROCESSES, settings.push_concurrency)
        self._threads = math.ceil(settings.push_concurrency / self._processes)  # per process

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
        async with (
            trio_parallel.open_worker_context(
                idle_timeout=IDLE_SECONDS, init=lower_priority, grace_period=STOP_SECONDS
            ) as workers,
            trio.open_nursery() as nursery,
        ):
            for _ in range(self._processes):
                nursery.start_soon(self._worker, workers, nursery, deliveries_in, deliveries_out)
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
        workers: trio_parallel.WorkerContext,
        nursery: trio.Nursery,
        retries: trio.MemorySendChannel[Delivery],
        deliveries: trio.MemoryReceiveChannel[Delivery],
    ) -> None:
        async for first in deliveries:
            batch = [first]
            with contextlib.suppress(trio.WouldBlock):
                while len(batch) < BATCH:
                    batch.append(deliveries.receive_nowait())
            await self._deliver(workers, nursery, retries, batch)

    async def _deliver(
        self,
        workers: trio_parallel.WorkerContext,
        nursery: trio.Nursery,
        retries: trio.MemorySendChannel[Delivery],
        batch: list[Delivery],
    ) -> None:
        assert self.keys is not None
        now = time.time()
        current = [d for d in batch if d.push.deadline - now >= 1]
        PUSH_RESULTS.labels("expired").inc(len(batch) - len(current))
        if not current:
            return
        outgoing = [
            Outgoing(d.endpoint, d.p256dh, d.auth, d.push.payload, int(d.push.deadline - now))
            for d in current
        ]
        try:
            answers = await workers.run_sync(
                post_batch,
                self.keys.private_key,
                self.keys.subject,
                self._threads,
                outgoing,
                kill_on_cancel=True,
            )
        except trio_parallel.BrokenWorkerError as exc:  # the process died: the next batch gets another
            log.warning("push: a worker process died", extra={"fields": {"error": repr(exc)}})
            PUSH_RESULTS.labels("failed").inc(len(current))
            return
        for delivery, answer in zip(current, answers, strict=True):
            await self._settle(nursery, retries, delivery, answer)

    async def _settle(
        self,
        nursery: trio.Nursery,
        retries: trio.MemorySendChannel[Delivery],
        delivery: Delivery,
        answer: Answer,
    ) -> None:
        """Count one push's answer; delete a gone subscription, retry a busy one while it is current."""
        status = answer.status
        if status is not None and 200 <= status < 300:
            PUSH_RESULTS.labels("sent").inc()
        elif status in (404, 410):
            PUSH_RESULTS.labels("gone").inc()
            with contextlib.suppress(DatabaseStalled):  # it is asked again at the next push
                await self.db.execute(DELETE_PUSH_SUBSCRIPTION, endpoint=delivery.endpoint)
        elif status is NO_ANSWER or status == 429 or status >= 500:
            if status is NO_ANSWER:
                log.info("push: no answer", extra={"fields": {"error": answer.error}})
            failures = delivery.failures + 1
            delay = reconnect_delay(failures, answer.retry_after)
            if time.time() + delay >= delivery.push.deadline:
                PUSH_RESULTS.labels("expired").inc()
                return
            PUSH_RESULTS.labels("retried").inc()
            again = Delivery(delivery.push, delivery.endpoint, delivery.p256dh, delivery.auth, failures)
            nursery.start_soon(_send_later, retries, again, delay)
        else:
            log.warning("push refused", extra={"fields": {"status": status, "error": answer.error}})
            PUSH_RESULTS.labels("failed").inc()


async def _send_later(retries: trio.MemorySendChannel[Delivery], delivery: Delivery, delay: float) -> None:
    await trio.sleep(delay)
    await retries.send(delivery)
