"""Helpers for the browser tests: Chromium via Playwright, a server process, and a DJ on a thread.

The tests are plain synchronous pytest functions (Playwright's sync API).  The server runs as
`python -m pika serve` (tests/procs.py); the DJ is a real protocol client (tests/wsclient.py) in
its own thread running `trio.run`, driven from the test with blocking calls that all time out.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.procs import ServerProcess, free_port
from tests.wsclient import Peer, connect

CHROMIUM = os.environ.get("PIKA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
# Screenshots land here (git-ignored); PIKA_TEST_ARTIFACTS moves them.
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("PIKA_TEST_ARTIFACTS") or REPO / "test-artifacts")


# -- browser ------------------------------------------------------------------------------------


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium; a missing browser fails the test (never a silent skip)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need it. "
            "Install it with `apt-get install -y chromium` (or set PIKA_CHROMIUM to its path)."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The Python package playwright is missing: `pip install playwright==1.65.2`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


# -- server -------------------------------------------------------------------------------------


class Server:
    """`python -m pika serve` on a fixed port; `stop()` and `start()` again keep port and database."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: ServerProcess | None = None

    def start(self) -> Server:
        self.proc = trio.run(ServerProcess.start, self.env, self.port, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.proc.poll() is None:
            trio.run(self.proc.stop, signal.SIGTERM)
        self.proc = None

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
        """Status, headers (case-insensitive) and body; an error status is returned, not raised."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def get_json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def post_json(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        data = json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        request = urllib.request.Request(self.url + path, data=data, headers=all_headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@contextmanager
def running_server(db_url: str, log: Path, **env: str) -> Iterator[Server]:
    server = Server({"PIKA_DATABASE_URL": db_url, **env}, log).start()
    try:
        yield server
    finally:
        server.stop()


# -- the DJ -------------------------------------------------------------------------------------


class Dj:
    """A DJ connection living in its own trio thread; every method blocks at most `timeout` s.

    Frames the DJ receives are kept in `frames` (in order), so a test can wait for LIKE_RECEIVED
    and count them afterwards.
    """

    def __init__(self, url: str, session_id: str, name: str = "DJ Test") -> None:
        self.url = url
        self.session_id = session_id
        self.name = name
        self.token: str | None = None
        self.resume_key: str | None = None
        self.frames: list[dict[str, Any]] = []
        self._peer: Peer | None = None
        self._link: tuple[trio.CancelScope, trio.Event] | None = None
        self._ids = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True, name="dj")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the DJ's trio thread did not start")

    async def _main(self) -> None:
        self._trio_token = trio.lowlevel.current_trio_token()
        self._closed = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await self._closed.wait()
            nursery.cancel_scope.cancel()

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return trio.from_thread.run(fn, *args, trio_token=self._trio_token)

    # -- connection

    def connect(self, timeout: float = 10.0) -> None:
        self._run(self._connect, timeout)

    async def _connect(self, timeout: float) -> None:
        with trio.fail_after(timeout):
            self._peer = await self._nursery.start(self._connection)

    async def _connection(self, task_status: Any) -> None:
        ended = trio.Event()
        try:
            with trio.CancelScope() as scope:
                async with connect(self.url) as peer:
                    self._link = (scope, ended)
                    task_status.started(peer)
                    while True:
                        self.frames.append(await peer.recv(timeout=math.inf))
        except Exception:  # closed by the server: the test decides what that means
            pass
        finally:
            ended.set()

    def drop(self) -> None:
        """Close the connection without END_SESSION (the session enters its grace period)."""
        self._peer = None
        self._run(self._drop)

    async def _drop(self) -> None:
        assert self._link is not None, "the DJ never connected"
        scope, ended = self._link
        scope.cancel()  # leaving `connect()` closes the socket
        with trio.fail_after(10):
            await ended.wait()

    def close(self) -> None:
        if self._thread.is_alive():
            trio.from_thread.run_sync(self._closed.set, trio_token=self._trio_token)
            self._thread.join(10)

    # -- messages

    def send(self, type: str, **fields: Any) -> None:
        assert self._peer is not None, "the DJ is not connected"
        self._run(self._send, type, fields)

    async def _send(self, type: str, fields: dict[str, Any]) -> None:
        assert self._peer is not None
        await self._peer.send(type, **fields)

    def request(self, type: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send with a messageId and return its ACK (a NACK fails the test)."""
        self._ids += 1
        message_id = f"dj{self._ids}_{time.monotonic_ns()}"
        self.send(type, messageId=message_id, **fields)
        reply = self.wait_for(lambda m: m.get("messageId") == message_id, timeout, f"ACK for {type}")
        assert reply["type"] == "ACK", reply
        return reply

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0, what: str = "a frame"
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for frame in self.frames[seen:]:
                if match(frame):
                    return frame
            seen = len(self.frames)
            if time.monotonic() > deadline:
                raise AssertionError(f"the DJ got no {what} within {timeout} s; got {self.frames[-10:]}")
            time.sleep(0.05)

    def received(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    # -- what a DJ does

    def go_live(self) -> dict[str, Any]:
        self.connect()
        fields: dict[str, Any] = {"sessionId": self.session_id, "djName": self.name}
        if self.token:
            fields["token"] = self.token
        self.request("REGISTER_SESSION", **fields)
        registered = next(f for f in self.frames if f["type"] == "SESSION_REGISTERED")
        self.resume_key = registered["resumeKey"]
        return registered

    def resume(self) -> None:
        self.connect()
        self.request("REGISTER_SESSION", sessionId=self.session_id, resumeKey=self.resume_key)

    def play(self, title: str, artist: str = "Test Artist", **extra: Any) -> None:
        track = {"title": title, "artist": artist, **extra}
        self.request("BROADCAST_TRACK", sessionId=self.session_id, track=track)

    def start_poll(self, question: str, options: list[str], **extra: Any) -> int:
        self.request("START_POLL", sessionId=self.session_id, question=question, options=options, **extra)
        started = self.wait_for(lambda m: m["type"] == "POLL_STARTED", what="POLL_STARTED")
        return started["pollId"]

    def end_poll(self, poll_id: int) -> None:
        self.request("END_POLL", pollId=poll_id)

    def announce(self, message: str, seconds: int) -> None:
        self.request("SEND_ANNOUNCEMENT", sessionId=self.session_id, message=message, durationSeconds=seconds)

    def end(self) -> None:
        self.request("END_SESSION", sessionId=self.session_id)


@contextmanager
def dj_live(url: str, session_id: str, name: str = "DJ Test", token: str | None = None) -> Iterator[Dj]:
    dj = Dj(url, session_id, name)
    dj.token = token
    try:
        dj.go_live()
        yield dj
    finally:
        dj.close()


# -- dancers ------------------------------------------------------------------------------------


class Dancer:
    """One phone: its own browser context (own localStorage, so its own clientId) and page;
    with `profile` (a directory and Chromium switches), a persistent one in a browser of its own.

    `errors` collects uncaught page errors and CSP violations; `sent` every WebSocket frame the
    page sent.
    """

    def __init__(
        self,
        browser: Any,
        base_url: str,
        viewport: dict[str, int] = PHONE,
        profile: tuple[Path, list[str]] | None = None,
    ) -> None:
        options = {"viewport": viewport, "base_url": base_url, "device_scale_factor": 1}
        if profile is None:
            self.context = browser.new_context(**options)
        else:  # a browser of its own with a profile on disk (push is off in incognito contexts)
            directory, switches = profile
            self.context = browser.browser_type.launch_persistent_context(
                directory, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + switches, **options
            )
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.sockets: list[str] = []  # the URL of every WebSocket the page opened, in order
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._watch_console)
        self.page.on("websocket", self._watch_socket)

    def _watch_console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:  # a CSP violation is a bug in the page
            self.errors.append(message.text)

    def _watch_socket(self, ws: Any) -> None:
        self.sockets.append(ws.url)

        def sent(payload: str | bytes) -> None:
            with suppress(ValueError):
                self.sent.append(json.loads(payload))

        ws.on("framesent", sent)

    def goto(self, path: str) -> Any:
        self.page.goto(path)
        return self.page

    def sent_types(self) -> list[str]:
        return [frame.get("type") for frame in self.sent]

    def client_id(self) -> str:
        return self.page.evaluate("() => JSON.parse(localStorage.getItem('pika.clientId'))")

    def close(self) -> None:
        self.context.close()
