"""The running agent: follows the source, queues each play on disk, and keeps one WebSocket to the
server through which the queue is sent in order, each track retried with its own messageId until
ACKed. It reconnects with jittered backoff (honouring a 429's Retry-After), resumes the session
with the resumeKey kept in the queue file, shows the crowd, and takes the DJ's typed commands.

The decisions live in `rules`, `crowd` and `commands`; this module is the trio edge that runs them.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from pika import __version__
from pika.backoff import parse_retry_after, reconnect_delay
from pika.dj import commands
from pika.dj.outbox import Outbox
from pika.dj.rules import Close, Nack, close_verdict, nack_verdict, track_of
from pika.dj.sources import Source, SourceError
from pika.dj.view import View
from pika.protocol import encode, iso

__all__ = ["Agent", "AgentConfig", "LinkDown", "http_origin", "link_down"]

POLL_SECONDS = 1.0  # how often the source is asked for new plays
REPLY_SECONDS = 15.0  # no handshake, registration or pong within this: the link is dead
ACK_SECONDS = 30.0  # an ACK slower than this too (a saturated server still ACKs within seconds)
PING_SECONDS = 10.0  # a quiet link is checked this often (a pong must come within REPLY_SECONDS)
HEALTH_SECONDS = 5.0  # how often /health is asked whether the database is up
SYNC_CHUNK = 1000  # tracks per sync-fingerprints request (PROTOCOL.md §8)

EXIT_OK = 0
EXIT_FAILED = 1

_REFUSAL_HINTS = {
    "Invalid token": " (check PIKA_DJ_TOKEN: get a token at /dj/login)",
    "Session not available": " (it has ended, or belongs to another DJ: choose another --session)",
    "Session is live on another connection": " (another agent runs it: stop that one first)",
}


@dataclass(frozen=True)
class AgentConfig:
    session_id: str
    ws_url: str
    dj_name: str | None
    token: str | None
    end_on_exit: bool
    read_commands: bool


class LinkDown(Exception):
    """The connection is gone or useless; `retry_after` is the server's ask, when it gave one."""

    def __init__(self, reason: str, *, retry_after: float | None = None, replaced: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.replaced = replaced


class Agent:
    def __init__(self, config: AgentConfig, outbox: Outbox, source: Source, view: View) -> None:
        self.config = config
        self.outbox = outbox
        self.source = source
        self.view = view
        self.crowd = view.crowd
        self._wake = trio.Event()
        self._link: _Link | None = None
        self._everything = trio.CancelScope()
        self._failures = 0
        self._dj_name = config.dj_name or "DJ"
        self._replaced = False
        self._end_requested = False

    async def run(self) -> int:
        """Until Ctrl-C, SIGTERM, `end` or another connection taking the session over."""
        self.crowd.queued = len(self.outbox.pending(self.config.session_id))
        with self.view.running():
            async with trio.open_nursery() as nursery:
                self._everything = nursery.cancel_scope
                nursery.start_soon(self._on_signals)
                nursery.start_soon(self._follow_source)
                nursery.start_soon(self._stay_connected)
                nursery.start_soon(self._watch_health)
                if self.config.read_commands:
                    nursery.start_soon(self._read_commands)
            if self._replaced:
                return EXIT_FAILED
            if self.crowd.ended:  # ended elsewhere (the console, an admin): the recap still gets the set
                return await self._sync_fingerprints()
            if self._end_requested or self.config.end_on_exit:
                return await self._finish()
            pending = len(self.outbox.pending(self.config.session_id))
            self.view.event(
                f"stopped; session {self.config.session_id} stays live for the grace period "
                f"({pending} queued track(s) kept for the next start)"
            )
            return EXIT_OK

    # -- the source ------------------------------------------------------------------------------

    async def _follow_source(self) -> None:
        first = True
        while True:
            try:
                plays = await trio.to_thread.run_sync(self.source.poll, abandon_on_cancel=True)
            except SourceError as exc:
                self.view.problem(str(exc))
                plays = []
            else:
                if plays:
                    self.view.clear_problem()
            for play in plays:
                track = track_of(play)
                played_at = time.time() if play.played_at is None else play.played_at
                entry = None if track is None else self.outbox.add(self.config.session_id, track, played_at)
                if entry is not None:
                    self.crowd.queued += 1
                    self.view.event(f"queued: {entry}")
                    self._wake.set()
            if first:  # from here on, every new play in the history is the agent's to send
                first = False
                hint = "; type help for commands" if self.config.read_commands else ""
                self.view.event(
                    f"following {self.source.name} for session {self.config.session_id}; "
                    f"queue {self.outbox.path} ({self.crowd.queued} waiting){hint}"
                )
            await trio.sleep(POLL_SECONDS)

    # -- the connection --------------------------------------------------------------------------

    async def _stay_connected(self) -> None:
        while True:
            try:
                await self._connected(self._send_queue)
            except LinkDown as down:
                if down.replaced:
                    self.view.problem(down.reason)
                    self._replaced = True
                    self._everything.cancel()
                    return
                self._failures += 1
                delay = reconnect_delay(self._failures, down.retry_after)
                self.view.problem(f"offline: {down.reason}; retrying")
                await trio.sleep(delay)

    async def _connected(self, work: Callable[[_Link], Awaitable[None]]) -> None:
        """Connect, register (or resume) the session, then run `work` beside the reader and the
        heartbeat until the link goes down (raised as LinkDown).

        A link found dead (no answer to the handshake or the registration, no ACK, no pong) is torn
        down by cancelling it whole: a polite close or trio-websocket's own connect timeout over a
        dead Wi-Fi would leave its reader task waiting on the socket for ever."""
        dead = trio.CancelScope(deadline=trio.current_time() + REPLY_SECONDS)
        link: _Link | None = None
        try:
            with dead:
                async with open_websocket_url(
                    self.config.ws_url, connect_timeout=2 * REPLY_SECONDS, disconnect_timeout=2
                ) as ws:
                    link = _Link(ws, self, dead)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(link.read)
                        await self._register(link)
                        dead.deadline = math.inf  # live: from here on the heartbeat watches the link
                        self._link, self._failures = link, 0
                        self.crowd.connected = True
                        self.view.clear_problem()
                        self.view.event(f"live: {self.config.session_id} as {self._dj_name}")
                        nursery.start_soon(link.heartbeat)
                        await work(link)
                        nursery.cancel_scope.cancel()
            if dead.cancelled_caught:
                timed_out = f"no answer from the server within {REPLY_SECONDS:g} s"
                raise LinkDown((link and link.dead_because) or timed_out)
        except BaseException as exc:
            down = link_down(exc)
            if down is None:
                raise
            raise down from None
        finally:
            self._link = None
            self.crowd.connected = False
            self.view.refresh()

    async def _register(self, link: _Link) -> None:
        fields: dict[str, Any] = {
            "sessionId": self.config.session_id,
            "djName": self.config.dj_name,
            "token": self.config.token,
            "resumeKey": self.outbox.resume_key(self.config.session_id),
            "version": f"pika-dj/{__version__}",
        }
        frames = await link.request("REGISTER_SESSION", fields)
        if frames[-1]["type"] == "NACK":
            error = str(frames[-1].get("error", "refused"))
            hint = _REFUSAL_HINTS.get(error, "")
            raise LinkDown(f"the server refused the session: {error}{hint}")
        registered = next((f for f in frames if f.get("type") == "SESSION_REGISTERED"), {})
        if registered.get("resumeKey"):
            self.outbox.keep_resume_key(self.config.session_id, str(registered["resumeKey"]))
        self._dj_name = str(registered.get("djName") or self._dj_name)

    async def _send_queue(self, link: _Link, *, until_empty: bool = False) -> None:
        """Send what is queued, oldest first, one at a time: the next goes once this one is ACKed.
        Runs for as long as the link lives, or `until_empty`."""
        nack_failures = 0
        while True:
            self._wake = trio.Event()
            pending = self.outbox.pending(self.config.session_id)
            self.crowd.queued = len(pending)
            self.view.refresh()
            if not pending:
                if until_empty:
                    return
                await self._wake.wait()
                continue
            entry = pending[0]
            reply = await link.request(
                "BROADCAST_TRACK",
                {"sessionId": entry.session_id, "track": entry.track, "playedAt": iso(entry.played_at)},
                message_id=entry.message_id,
            )
            last = reply[-1]
            if last["type"] == "ACK":
                nack_failures = 0
                self.outbox.confirmed(entry)
                self.view.event(f"sent: {entry}")
                continue
            error = str(last.get("error", "refused"))
            if nack_verdict(error) is Nack.RETRY:
                nack_failures += 1
                self.view.problem(f"server says {error!r} for {entry}; retrying")
                await trio.sleep(reconnect_delay(nack_failures))
            else:
                self.outbox.dropped(entry)
                self.view.problem(f"dropped {entry}: {error}")

    async def _watch_health(self) -> None:
        url = http_origin(self.config.ws_url) + "/health"
        while True:
            status = await trio.to_thread.run_sync(_http_status, url, abandon_on_cancel=True)
            down = status == 503
            if down != self.crowd.database_down:
                self.crowd.database_down = down
                self.view.event(f"the server's database is {'unavailable' if down else 'back'}")
            await trio.sleep(HEALTH_SECONDS)

    # -- the DJ's commands and signals -----------------------------------------------------------

    async def _read_commands(self) -> None:
        while True:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return  # no terminal (stdin closed): the agent runs on without commands
            try:
                command = commands.parse(line, None if self.crowd.poll is None else self.crowd.poll.poll_id)
            except commands.CommandError as exc:
                self.view.problem(str(exc))
                continue
            if command is None:
                continue
            if command.kind == "help":
                self.view.event(commands.HELP)
            elif command.kind == "end":
                self._end_requested = True
                self._everything.cancel()
                return
            elif self._link is None:
                self.view.problem("offline: the command was not sent; try again once live")
            else:
                fields = {"sessionId": self.config.session_id, **command.fields}
                try:
                    reply = await self._link.request(command.kind, fields)
                except (LinkDown, ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
                    self.view.problem("the link dropped before the command was confirmed; try again")
                    continue
                if reply[-1]["type"] == "NACK":
                    self.view.problem(f"{command.kind}: {reply[-1].get('error', 'refused')}")

    async def _on_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                self._everything.cancel()
                return

    # -- the end of the set ----------------------------------------------------------------------

    async def _finish(self) -> int:
        """Send what is still queued, end the session, then post the set's tracks for the recap."""

        async def end(link: _Link) -> None:
            with trio.fail_after(60):
                await self._send_queue(link, until_empty=True)
                reply = await link.request("END_SESSION", {"sessionId": self.config.session_id})
                if reply[-1]["type"] == "NACK":
                    raise LinkDown(f"END_SESSION refused: {reply[-1].get('error')}")

        try:
            await self._connected(end)
        except LinkDown as down:
            self.view.problem(
                f"could not end the session ({down.reason}); it ends by itself after the grace period"
            )
            return EXIT_FAILED
        self.view.event(f"ended: {self.config.session_id}")
        return await self._sync_fingerprints()

    async def _sync_fingerprints(self) -> int:
        tracks = self.outbox.setlist(self.config.session_id)
        synced = await trio.to_thread.run_sync(self._post_setlist, tracks)
        if synced is None:
            return EXIT_FAILED
        self.view.event(f"recap: BPM and keys of {synced} of {len(tracks)} track(s) synced")
        return EXIT_OK

    def _post_setlist(self, tracks: list[dict[str, Any]]) -> int | None:
        """POST the set to sync-fingerprints in chunks; the count synced, or None after a failure."""
        url = f"{http_origin(self.config.ws_url)}/api/sessions/{self.config.session_id}/sync-fingerprints"
        headers = {"Content-Type": "application/json"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        synced = 0
        for start in range(0, max(len(tracks), 1), SYNC_CHUNK):
            body = json.dumps({"tracks": tracks[start : start + SYNC_CHUNK]}).encode()
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=REPLY_SECONDS) as response:
                    synced += int(json.loads(response.read()).get("synced", 0))
            except (OSError, ValueError) as exc:
                self.view.problem(f"could not send the set's BPM and keys for the recap: {_http_reason(exc)}")
                return None
        return synced


class _Link:
    """One open connection: requests wait for their ACK/NACK; every other frame goes to the crowd."""

    def __init__(self, ws: WebSocketConnection, agent: Agent, dead: trio.CancelScope) -> None:
        self.ws = ws
        self.agent = agent
        self.dead_because: str | None = None
        self._dead = dead
        self._waiting: dict[str, tuple[trio.Event, list[dict[str, Any]]]] = {}
        self._ids = itertools.count(1)
        self._prefix = f"pika-dj-{secrets.token_hex(4)}-"

    async def request(
        self, kind: str, fields: dict[str, Any], message_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Send with a messageId; every frame the reader saw up to its ACK/NACK (the last one)."""
        message_id = message_id or f"{self._prefix}{next(self._ids)}"
        done, frames = trio.Event(), []
        self._waiting[message_id] = (done, frames)
        try:
            await self.ws.send_message(encode({"type": kind, "messageId": message_id, **fields}))
            with trio.move_on_after(ACK_SECONDS):
                await done.wait()
        finally:
            self._waiting.pop(message_id, None)
        if not done.is_set():
            self.died(f"no answer to {kind} within {ACK_SECONDS:g} s")
        return frames

    def died(self, reason: str) -> NoReturn:
        """The link is dead: tear the whole connection down now (see Agent._connected)."""
        self.dead_because = reason
        self._dead.cancel()
        raise LinkDown(reason)

    async def read(self) -> None:
        while True:
            text = await self.ws.get_message()
            try:
                frame = json.loads(text)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            for _done, frames in self._waiting.values():
                frames.append(frame)
            if frame.get("type") in {"ACK", "NACK"}:
                waiter = self._waiting.get(str(frame.get("messageId")))
                if waiter is not None:
                    waiter[0].set()
                continue
            line = self.agent.crowd.apply(frame)
            if line:
                self.agent.view.event(line)
            else:
                self.agent.view.refresh()
            if self.agent.crowd.ended:
                self.agent._everything.cancel()

    async def heartbeat(self) -> None:
        while True:
            await trio.sleep(PING_SECONDS)
            with trio.move_on_after(REPLY_SECONDS) as waited:
                await self.ws.ping()
            if waited.cancelled_caught:
                self.died(f"no pong within {REPLY_SECONDS:g} s")


def http_origin(ws_url: str) -> str:
    """The HTTP origin of the server behind a WebSocket URL: ws → http, wss → https, no path."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def link_down(exc: BaseException) -> LinkDown | None:
    """The reason a connection failed or ended, from whatever trio and trio-websocket raised
    (possibly grouped); None for something that is not about the link (a bug: re-raised)."""
    if isinstance(exc, BaseExceptionGroup):
        found = [link_down(inner) for inner in exc.exceptions]
        downs = [d for d in found if d is not None]
        if len(downs) != len(found) or not downs:
            return None
        return next((d for d in downs if d.replaced), downs[0])
    if isinstance(exc, LinkDown):
        return exc
    if isinstance(exc, ConnectionClosed):
        code = exc.reason.code if exc.reason is not None else None
        said = f": {exc.reason.reason}" if exc.reason is not None and exc.reason.reason else ""
        detail = f"closed by the server (code {code}{said})"
        if close_verdict(code) is Close.REPLACED:
            return LinkDown(f"another connection of this DJ took the session over ({detail})", replaced=True)
        return LinkDown(detail)
    if isinstance(exc, ConnectionRejected):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in exc.headers}
        return LinkDown(
            f"the server refused the connection (HTTP {exc.status_code})",
            retry_after=parse_retry_after(headers.get("retry-after"), time.time()),
        )
    if isinstance(exc, HandshakeError):
        cause = exc.__cause__
        return LinkDown(f"cannot reach the server: {_os_reason(cause) if cause else type(exc).__name__}")
    if isinstance(exc, OSError):
        return LinkDown(f"cannot reach the server: {_os_reason(exc)}")
    if isinstance(exc, trio.BrokenResourceError | trio.TooSlowError):
        return LinkDown("the connection broke")
    return None


def _os_reason(exc: BaseException) -> str:
    """The deepest OSError's words: trio wraps "Connection refused" in "all attempts … failed"."""
    while True:
        inner = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc.__cause__
        if inner is None:
            break
        exc = inner
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def _http_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        try:
            return f"HTTP {exc.code} {json.loads(exc.read()).get('error', '')}".strip()
        except ValueError:
            return f"HTTP {exc.code}"
    return _os_reason(exc)
