"""A stand-in for Google's GCM check-in and registration servers on 127.0.0.1, so that Chromium
gets its own, real push subscription without the internet.

Chromium's push goes through GCM: a device check-in (protobuf), then one registration per
subscription, whose token ends the endpoint.  `switches` point Chromium at this server; with a
registration URL of its own, Chromium names its staging endpoint `STAGING_ENDPOINT` + token.
"""

from __future__ import annotations

import itertools
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

STAGING_ENDPOINT = "https://jmt17.google.com/fcm/send/"

# AndroidCheckinResponse: stats_ok = true (1), android_id (7) and security_token (8), fixed64.
CHECKIN_RESPONSE = (
    b"\x08\x01"
    + b"\x39"
    + struct.pack("<Q", 0x5049_4B41_0000_0001)
    + b"\x41"
    + struct.pack("<Q", 0x0DAB_CE55)
)


@dataclass
class Gcm:
    switches: list[str]
    registrations: list[dict[str, str]] = field(default_factory=list)  # the forms Chromium posted
    tokens: list[str] = field(default_factory=list)  # handed out, in order


@contextmanager
def fake_gcm() -> Iterator[Gcm]:
    numbers = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/checkin":
                self.answer(CHECKIN_RESPONSE)
                return
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            gcm.registrations.append(form)
            if form.get("delete") == "true":
                self.answer(f"deleted={form.get('app', '')}".encode())
                return
            gcm.tokens.append(f"pika-test-token-{next(numbers)}")
            self.answer(f"token={gcm.tokens[-1]}".encode())

        def answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    gcm = Gcm(
        switches=[
            f"--gcm-checkin-url={base}/checkin",
            f"--gcm-registration-url={base}/register",
            f"--gcm-mcs-endpoint={base.replace('http:', 'https:')}",  # no TLS there: nothing arrives
        ]
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield gcm
    finally:
        httpd.shutdown()
        httpd.server_close()
