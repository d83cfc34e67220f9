"""A Web Push service for the tests, on 127.0.0.1: it receives what the server pushes, checks the
VAPID JWT (RFC 8292) against the server's public key, and decrypts the RFC 8291 payload with the
subscription's private key, as a browser's push service and the browser together would.

Each subscription is `Subscriber`: real P-256 keys and a 16-byte auth secret; the service answers
its pushes with the statuses it was told (then 201), so tests can make one gone (410) or busy (429).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscriber:
    """One browser's push subscription: its keys, and what its endpoint received."""

    name: str
    statuses: list[int] = field(default_factory=list)  # answers to give first, then 201
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    received: list[dict[str, Any]] = field(default_factory=list)  # decrypted payloads, in order
    answered: list[int] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)  # a push came in
    release: threading.Event | None = None  # set: its pushes wait for it before being answered

    def subscription(self, base: str, **extra: Any) -> dict[str, Any]:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{base}/push/{self.name}",
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
            **extra,
        }


@dataclass
class Received:
    subscriber: str
    headers: dict[str, str]
    payload: dict[str, Any]
    claims: dict[str, Any]


class PushService:
    """The HTTP server: POST /push/<name> for every `Subscriber` added."""

    def __init__(self, server_public_key: str) -> None:
        self.server_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), unb64url(server_public_key)
        )
        self.server_public_key = server_public_key
        self.subscribers: dict[str, Subscriber] = {}
        self.log: list[Received] = []
        self.problems: list[str] = []
        self.lock = threading.Lock()
        self.base = ""

    def add(self, name: str, *statuses: int) -> Subscriber:
        self.subscribers[name] = Subscriber(name, list(statuses))
        return self.subscribers[name]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        sub = self.subscribers.get(path.removeprefix("/push/"))
        if sub is None:
            return 404
        sub.arrived.set()
        if sub.release is not None:
            sub.release.wait(30)
        with self.lock:
            try:
                claims = self.check_vapid(headers.get("authorization", ""))
                plain = http_ece.decrypt(
                    body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
                )
                payload = json.loads(plain)
            except (ValueError, InvalidSignature, KeyError) as exc:
                self.problems.append(f"{sub.name}: {type(exc).__name__}: {exc}")
                return 400
            status = sub.statuses.pop(0) if sub.statuses else 201
            sub.answered.append(status)
            if status == 201:
                sub.received.append(payload)
            self.log.append(Received(sub.name, headers, payload, claims))
            return status

    def check_vapid(self, authorization: str) -> dict[str, Any]:
        """`vapid t=<JWT>, k=<key>` (RFC 8292 §3): the key is the server's and signed the JWT."""
        scheme, _, params = authorization.partition(" ")
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        if scheme != "vapid" or fields.get("k") != self.server_public_key:
            raise ValueError(f"not the server's VAPID key: {authorization[:80]!r}")
        head, claims, signature = fields["t"].split(".")
        raw = unb64url(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        self.server_key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        if json.loads(unb64url(head)) != {"typ": "JWT", "alg": "ES256"}:
            raise ValueError(f"JWT header: {unb64url(head)!r}")
        decoded = json.loads(unb64url(claims))
        if decoded["aud"] != self.base or not time.time() < decoded["exp"] <= time.time() + 86400:
            raise ValueError(f"JWT claims: {decoded}")
        return decoded


@contextmanager
def push_service(server_public_key: str) -> Iterator[PushService]:
    service = PushService(server_public_key)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = service.handle(self.path, headers, body)
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        httpd.shutdown()
        httpd.server_close()
