"""The `push` scenario's side process: a Web Push service on 127.0.0.1 and its subscriptions.

It subscribes `count` browsers (one P-256 key, endpoints of its own) to the room, then answers
every push with 201 and notes when it arrived, so the coordinator can set the room's NOW_PLAYING
fan-out during the push against the fan-out without one.  The server must accept http://
endpoints (PIKA_PUSH_ALLOW_HTTP; set when spawned).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from loadtest.side import answer_commands

SUBSCRIBERS = 8  # concurrent POST /api/push/subscribe while setting up (not measured)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Sink:
    """The push service: 201 to every POST, with the wall-clock time it arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        lock = threading.Lock()
        times = self.times

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    times.append(time.time())
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def subscribe(host: str, port: int, session: str, base: str, count: int) -> list[str]:
    """POST `count` subscriptions for `session`; the errors of those refused."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = _b64url(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )

    def one(i: int) -> str | None:
        body = {
            "endpoint": f"{base}/push/{i}",
            "keys": {"p256dh": p256dh, "auth": _b64url(os.urandom(16))},
            "clientId": f"lt-push-{i:08d}",
            "sessionId": session,
        }
        req = urllib.request.Request(
            f"http://{host}:{port}/api/push/subscribe",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30):
                return None
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)

    with ThreadPoolExecutor(SUBSCRIBERS) as pool:
        return [error for error in pool.map(one, range(count)) if error]


def pushes_main(args: dict[str, Any], pipe: Connection) -> None:
    """'subscribe' → 'subscribed'; 'collect' → 'pushed' (when all arrived or the time is up)."""
    sink = Sink()

    def subscribe_all(cmd: dict[str, Any]) -> tuple[str, Any]:
        failed = subscribe(args["host"], args["port"], cmd["session"], sink.base, cmd["count"])
        return "subscribed", {"failed": failed[:5], "n_failed": len(failed)}

    def collect(cmd: dict[str, Any]) -> tuple[str, Any]:
        until = time.monotonic() + cmd["timeout"]
        while len(sink.times) < cmd["expected"] and time.monotonic() < until:
            time.sleep(0.05)
        return "pushed", {"times": list(sink.times)}

    answer_commands(pipe, args["max_seconds"], {"subscribe": subscribe_all, "collect": collect})
