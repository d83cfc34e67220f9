"""The login clients of `logins`: accounts registered first, then N clients logging in, in a loop.

Plain HTTP/1.1 on blocking sockets, one thread per client, one kept-alive connection each
(reopened when the server closes it): a login costs the server an argon2id verification (about
0.12 s of CPU in a worker thread), the client a few hundred bytes, so threads are plenty and the
generator stays cheap.  Runs in its own process (side.py); loopback only, every wait bounded.
The request and response codec is pure (`request_bytes`, `parse_head`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from loadtest.side import answer_commands

CLIENT_HEADER = "pika-e2e"  # X-Pika-Client: auth POSTs need one of the known clients
HTTP_TIMEOUT = 30.0
MAX_HEAD = 16_384
MAX_BODY = 1 << 20
REGISTER_THREADS = 4  # registrations at once (the server hashes at most two at a time anyway)
MAX_ATTEMPTS_PER_CLIENT = 10_000  # a bound on the count, whatever the window

#: one attempt: (t_start, t_end, HTTP status or None, error or None), wall-clock seconds
Attempt = tuple[float, float, int | None, str | None]


def request_bytes(host: str, port: int, path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"X-Pika-Client: {CLIENT_HEADER}\r\nContent-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + data


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, lower-cased headers) of a response head (without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class HttpClient:
    """One kept-alive HTTP/1.1 connection to the server (reopened as needed)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self._buf = b""

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(status, JSON body); raises OSError or ValueError on a broken exchange."""
        request = request_bytes(self.host, self.port, path, body)
        for attempt in (0, 1):  # a kept-alive connection the server has closed: reopen once
            fresh = self.sock is None
            if fresh:
                self._open()
            assert self.sock is not None
            try:
                self.sock.sendall(request)
                return self._response()
            except (ConnectionError, EOFError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    def _open(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=HTTP_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def _read(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self._buf += data

    def _response(self) -> tuple[int, dict[str, Any]]:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_HEAD:
                raise ValueError("response head too long")
            self._read()
        status, headers = parse_head(self._buf[:end])
        self._buf = self._buf[end + 4 :]
        if "content-length" not in headers:
            raise ValueError(f"HTTP {status} without Content-Length")
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise ValueError(f"HTTP {status} body of {length} bytes")
        while len(self._buf) < length:
            self._read()
        body, self._buf = self._buf[:length], self._buf[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {"error": body[:200].decode("utf-8", "replace")}
        return status, parsed if isinstance(parsed, dict) else {"body": parsed}

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None


def register(host: str, port: int, accounts: list[dict[str, str]]) -> list[tuple[int | None, str | None]]:
    """Register every account; (status, error) each, in order."""

    def one(account: dict[str, str]) -> tuple[int | None, str | None]:
        client = HttpClient(host, port)
        try:
            status, body = client.post("/api/auth/register", account)
            return status, None if status == 201 else str(body.get("error", body))
        except (OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            client.close()

    with ThreadPoolExecutor(REGISTER_THREADS) as pool:
        return list(pool.map(one, accounts))


def login_loop(
    host: str, port: int, account: dict[str, str], start_at: float, end_at: float, out: list[Attempt]
) -> None:
    """Log in with the right password, again and again, from monotonic `start_at` until `end_at`."""
    client = HttpClient(host, port)
    body = {"email": account["email"], "password": account["password"]}
    try:
        time.sleep(max(0.0, start_at - time.monotonic()))
        while time.monotonic() < end_at and len(out) < MAX_ATTEMPTS_PER_CLIENT:
            t_start = time.time()
            try:
                status, answer = client.post("/api/auth/login", body)
                error = None if status == 200 else str(answer.get("error", answer))
                out.append((t_start, time.time(), status, error))
            except (OSError, ValueError) as exc:
                client.close()
                out.append((t_start, time.time(), None, f"{type(exc).__name__}: {exc}"))
                time.sleep(0.05)  # a refused connection must not spin
    finally:
        client.close()


def logins(
    host: str, port: int, accounts: list[dict[str, str]], start_at: float, end_at: float
) -> list[Attempt]:
    """One thread per account, all logging in over [start_at, end_at); every attempt, sorted."""
    per_client: list[list[Attempt]] = [[] for _ in accounts]
    threads = [
        threading.Thread(
            target=login_loop,
            args=(host, port, account, start_at, end_at, out),
            name=f"login-{k}",
            daemon=True,
        )
        for k, (account, out) in enumerate(zip(accounts, per_client, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, end_at - time.monotonic()) + HTTP_TIMEOUT + 5)
    return sorted(a for out in per_client for a in out)


def logins_main(args: dict[str, Any], pipe: Connection) -> None:
    """The side process: 'register' → 'registered'; 'logins' → 'logged_in' (when the window ends)."""
    host, port = args["host"], args["port"]
    accounts: list[dict[str, str]] = []

    def register_all(cmd: dict[str, Any]) -> tuple[str, Any]:
        accounts[:] = cmd["accounts"]
        return "registered", {"results": register(host, port, accounts)}

    def log_in(cmd: dict[str, Any]) -> tuple[str, Any]:
        return "logged_in", {"attempts": logins(host, port, accounts, cmd["start_at"], cmd["end_at"])}

    answer_commands(pipe, args["max_seconds"], {"register": register_all, "logins": log_in})
