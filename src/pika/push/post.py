"""Encrypting and posting a batch of pushes: the part of Web Push that runs in worker processes.

Each push costs about a millisecond and a half of CPU under the GIL (RFC 8291 encryption, the VAPID
signature, and `requests`' own Python), so the sender hands whole batches to trio-parallel workers:
the server's loop pays one pickle per batch, never the crypto or the HTTP. Workers lower their own
priority, so on a busy machine the live path gets the CPU first.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from pika.backoff import parse_retry_after

__all__ = ["NO_ANSWER", "UNUSABLE", "Answer", "Outgoing", "lower_priority", "post_batch"]

NICENESS = 10
REQUEST_TIMEOUT = 10.0
NO_ANSWER = None  # Answer.status: no HTTP answer (refused, timed out): worth a retry
UNUSABLE = 0  # Answer.status: the subscription's keys cannot be used: no retry helps


@dataclass(frozen=True)
class Outgoing:
    endpoint: str
    p256dh: str
    auth: str
    payload: str
    ttl: int  # seconds the push service may keep it


@dataclass(frozen=True)
class Answer:
    status: int | None  # the push service's HTTP status, or NO_ANSWER / UNUSABLE
    retry_after: float | None = None  # seconds, from a Retry-After header
    error: str | None = None  # the exception's name when there is no status


def lower_priority() -> None:
    """The workers' init: pushes give way to the live path when both want a core."""
    os.nice(NICENESS)


def post_batch(private_key: str, subject: str, concurrency: int, batch: list[Outgoing]) -> list[Answer]:
    """Encrypt and POST every push of `batch`, `concurrency` at a time; the answers, in order."""
    return list(_pool(concurrency).map(functools.partial(_post, private_key, subject), batch))


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """The worker's threads, kept between batches with their sessions (kept connections)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="push")


@functools.cache
def _vapid(private_key: str) -> Vapid:
    return Vapid.from_string(private_key)


_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _post(private_key: str, subject: str, push: Outgoing) -> Answer:
    subscription = {"endpoint": push.endpoint, "keys": {"p256dh": push.p256dh, "auth": push.auth}}
    try:
        response = webpush(
            subscription,
            push.payload,
            vapid_private_key=_vapid(private_key),
            vapid_claims={"sub": subject},
            ttl=push.ttl,
            headers={"Urgency": "high"},
            timeout=REQUEST_TIMEOUT,
            requests_session=_session(),
        )
    except WebPushException as exc:
        response = exc.response
    except requests.RequestException as exc:
        return Answer(NO_ANSWER, error=type(exc).__name__)
    except Exception as exc:
        return Answer(UNUSABLE, error=type(exc).__name__)
    if not isinstance(response, requests.Response):
        return Answer(NO_ANSWER, error="no response")
    return Answer(response.status_code, parse_retry_after(response.headers.get("Retry-After"), time.time()))
