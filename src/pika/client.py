"""`python -m pika.client dj | listen …`: a tiny WebSocket client for people and tests.

A DJ can go live and play a few tracks from a shell, and anyone can watch a session's frames
scroll by, without a browser or the desktop app. It speaks the wire protocol (PROTOCOL.md §1-§4)
over trio-websocket, prints one line per event and never a traceback for a problem a person can fix.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from pika import __version__
from pika.backoff import parse_retry_after, reconnect_delay
from pika.protocol import encode

__all__ = ["DEFAULT_URL", "ClientError", "Track", "build_parser", "main", "parse_track", "ws_url"]

DEFAULT_URL = "ws://127.0.0.1:3002/ws"  # the live listener; the HTTP port's /ws works too
TOKEN_ENV = "PIKA_DJ_TOKEN"
PROG = "pika.client"

EXIT_OK = 0
EXIT_REFUSED = 1  # the server said no (NACK), closed on us, or did not answer in time
EXIT_USAGE = 2  # a mistake on the command line, or no server to talk to
EXIT_INTERRUPTED = 130  # Ctrl-C during `dj`: the set may be half played

BUSY_STATUSES = frozenset({429, 503})  # refusals that say "later", with Retry-After
BUSY_RETRIES = 5


class ClientError(Exception):
    """A problem to report as one line on stderr, ending the command with `code`."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Track:
    """A track as typed on the command line: "Artist - Title"."""

    artist: str
    title: str

    def to_wire(self) -> dict[str, str]:
        return {"title": self.title, "artist": self.artist}

    def __str__(self) -> str:
        return f"{self.artist} - {self.title}"


def parse_track(text: str) -> Track:
    """Split on the first " - ": artists rarely contain it, titles often do ("Song - Remix")."""
    artist, sep, title = text.partition(" - ")
    artist, title = artist.strip(), title.strip()
    if not sep or not artist or not title:
        raise ClientError(f'--track {text!r}: must be "Artist - Title" (with " - " between)', EXIT_USAGE)
    return Track(artist=artist, title=title)


def ws_url(url: str) -> str:
    """The WebSocket URL for `url`: http(s) becomes ws(s) and a bare host gets `/ws`, so the
    server's own address (as printed by `python -m pika serve`) works as it is."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in {"ws", "wss"} or not parts.hostname:
        raise ClientError(
            f"cannot connect to {url}: expected a URL like {DEFAULT_URL} (ws://, wss://, http:// or https://)",
            EXIT_USAGE,
        )
    path = parts.path if parts.path not in {"", "/"} else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description="Pika! command-line client: go live as a DJ, or watch a session's frames.",
        epilog=(
            "exit codes: 0 done, 1 refused by the server (or connection lost), "
            "2 bad arguments or cannot connect"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{dj,listen}")

    dj = commands.add_parser(
        "dj",
        help="go live and broadcast tracks",
        description=(
            "Register a session, broadcast each --track in order and wait for the server to confirm "
            "each one (ACK) before the next. Prints 'live: …', then 'now playing: …' or 'refused: …' "
            "per track."
        ),
        epilog=(
            f'example: python -m {PROG} dj --session friday_social --name "DJ Kool" '
            '--track "Michael Jackson - Billie Jean" --track "Prince - Kiss" --interval 180 --end'
        ),
    )
    dj.add_argument("--session", required=True, metavar="ID", help="session id: 8-64 of A-Z a-z 0-9 _ -")
    dj.add_argument("--name", metavar="NAME", help='DJ name shown to dancers (server default "DJ")')
    dj.add_argument(
        "--token",
        metavar="pk_dj_…",
        default=os.environ.get(TOKEN_ENV) or None,
        help=(
            f"DJ API token: the session belongs to your account and shows its name "
            f"(default: ${TOKEN_ENV}, which keeps the token out of shell history and `ps`)"
        ),
    )
    _add_url(dj)
    dj.add_argument(
        "--track",
        dest="tracks",
        action="append",
        required=True,
        metavar='"ARTIST - TITLE"',
        help="a track to broadcast; repeat for a set, played in order (split on the first ' - ')",
    )
    dj.add_argument(
        "--interval",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="pause between tracks (default 0)",
    )
    dj.add_argument("--end", action="store_true", help="end the session after the last track")
    dj.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for each reply from the server (default 10)",
    )

    listen = commands.add_parser(
        "listen",
        help="subscribe to a session and print every frame",
        description=(
            "Subscribe to a session as a dancer would and print each frame the server sends as one line: "
            "TYPE {json}. A status line goes to stderr once the subscription is in place."
        ),
        epilog=f"example: python -m {PROG} listen --session friday_social --type NOW_PLAYING",
    )
    listen.add_argument("--session", required=True, metavar="ID", help="session id to subscribe to")
    _add_url(listen)
    listen.add_argument(
        "--client-id",
        metavar="ID",
        help="clientId to subscribe with, 8-256 characters (default: client_cli_ + random hex)",
    )
    listen.add_argument(
        "--type",
        dest="types",
        action="append",
        metavar="TYPE",
        help="print only frames of this type, e.g. NOW_PLAYING; repeat for several (default: all)",
    )
    listen.add_argument(
        "--count", type=_positive_int, metavar="N", help="stop after printing N frames (default: never)"
    )
    listen.add_argument(
        "--timeout", type=_positive, metavar="SECONDS", help="stop after SECONDS (default: never)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code. Errors are one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    tolerate_any_text(sys.stdout)
    try:
        if args.command == "dj":
            tracks = [parse_track(text) for text in args.tracks]  # all checked before going live
            return trio.run(_run_dj, args, tracks)
        return trio.run(_run_listen, args)
    except ClientError as exc:
        _status(exc.message)
        return exc.code
    except KeyboardInterrupt:
        if args.command == "listen":
            return EXIT_OK  # Ctrl-C is how a person stops listening
        _status("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `listen | head`: the reader has gone; leave quietly (and stop Python complaining at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


# -- the commands --------------------------------------------------------------------------------


async def _run_dj(args: argparse.Namespace, tracks: list[Track]) -> int:
    async def session(link: _Link) -> int:
        reply = await link.request(
            "REGISTER_SESSION",
            sessionId=args.session,
            djName=args.name,
            token=args.token,
            version=f"pika-cli/{__version__}",
        )
        if reply.refused:
            _say(f"refused: {reply.error}")
            return EXIT_REFUSED
        registered = reply.first("SESSION_REGISTERED") or {}
        _say(f"live: {registered.get('sessionId', args.session)} as {registered.get('djName', args.name)}")

        refused = False
        for i, track in enumerate(tracks):
            if i and args.interval:
                await trio.sleep(args.interval)
            reply = await link.request("BROADCAST_TRACK", sessionId=args.session, track=track.to_wire())
            if reply.refused:
                refused = True
                _say(f"refused: {reply.error}")
            else:
                _say(f"now playing: {track}")

        if args.end:
            reply = await link.request("END_SESSION", sessionId=args.session)
            if reply.refused:
                refused = True
                _say(f"refused: {reply.error}")
            else:
                _say(f"ended: {args.session}")
        return EXIT_REFUSED if refused else EXIT_OK

    return await _connected(args.url, args.timeout, session, on_ctrl_c=EXIT_INTERRUPTED)


async def _run_listen(args: argparse.Namespace) -> int:
    client_id = args.client_id or f"client_cli_{secrets.token_hex(6)}"
    wanted = {t.upper() for t in args.types} if args.types else None

    async def watch(link: _Link) -> int:
        # No messageId: the subscription needs no ACK, and an ACK line would only be noise.
        await link.send("SUBSCRIBE", sessionId=args.session, clientId=client_id)
        printed = 0
        subscribed = False
        with trio.move_on_after(args.timeout if args.timeout is not None else float("inf")):
            while args.count is None or printed < args.count:
                try:
                    text = await link.ws.get_message()
                except ConnectionClosed as exc:
                    _status(f"connection closed by the server ({_close_reason(exc)})")
                    break
                frame = _decode(text)
                kind = str(frame.get("type", "?"))
                if not subscribed and kind == "SESSIONS_LIST":
                    # The first reply to SUBSCRIBE: from here on no event of the session is missed.
                    subscribed = True
                    _status(f"listening to {args.session} as {client_id}")
                if wanted is None or kind in wanted:
                    _say(f"{kind} {_compact(frame)}")
                    printed += 1
        return EXIT_OK

    return await _connected(args.url, None, watch, on_ctrl_c=EXIT_OK)


# -- connection plumbing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    """Every frame received up to and including the ACK/NACK of one request."""

    frames: list[dict[str, Any]]

    @property
    def refused(self) -> bool:
        return self.frames[-1].get("type") == "NACK"

    @property
    def error(self) -> str:
        return str(self.frames[-1].get("error", "no reason given"))

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((f for f in self.frames if f.get("type") == kind), None)


class _Link:
    """One open connection: send a message, or send one with a messageId and wait for its answer."""

    def __init__(self, ws: WebSocketConnection, timeout: float | None) -> None:
        self.ws = ws
        self.timeout = timeout
        self._prefix = f"cli_{secrets.token_hex(4)}_"
        self._next = 0

    async def send(self, kind: str, **fields: Any) -> None:
        await self.ws.send_message(encode({"type": kind, **fields}))  # encode drops the None fields

    async def request(self, kind: str, **fields: Any) -> _Reply:
        """Send with a fresh messageId; the server answers once the effect is in PostgreSQL."""
        self._next += 1
        message_id = f"{self._prefix}{self._next}"
        await self.send(kind, messageId=message_id, **fields)
        frames: list[dict[str, Any]] = []
        with trio.move_on_after(self.timeout if self.timeout is not None else float("inf")):
            while True:
                frame = _decode(await self.ws.get_message())
                frames.append(frame)
                if frame.get("type") in {"ACK", "NACK"} and frame.get("messageId") == message_id:
                    return _Reply(frames)
        raise ClientError(f"no answer to {kind} within {self.timeout:g} s")


class _Busy(Exception):
    """The server refused the upgrade for now (429 or 503): try again after `retry_after` s."""

    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


async def _connected(
    url: str, timeout: float | None, body: Callable[[_Link], Awaitable[int]], *, on_ctrl_c: int
) -> int:
    """`_connected_once`, tried again while the server says it is busy: after its `Retry-After`
    plus jitter (pika.backoff), at most BUSY_RETRIES times, one stderr line per wait."""
    failures = 0
    while True:
        try:
            return await _connected_once(url, timeout, body, on_ctrl_c=on_ctrl_c)
        except _Busy as busy:
            failures += 1
            if failures > BUSY_RETRIES:
                raise ClientError(f"cannot connect to {url}: {busy.reason}", EXIT_USAGE) from None
            delay = reconnect_delay(failures, busy.retry_after)
            _status(f"server busy: {busy.reason}; trying again in {delay:.1f} s")
            await trio.sleep(delay)


async def _connected_once(
    url: str, timeout: float | None, body: Callable[[_Link], Awaitable[int]], *, on_ctrl_c: int
) -> int:
    """Open the WebSocket, run `body` on it, close it. Turns the network's exceptions into one-line
    ClientErrors: exit 2 when no connection could be made, 1 when an open one was lost. Ctrl-C while
    connected stops `body` and still closes the socket properly; the command then exits `on_ctrl_c`."""
    target = ws_url(url)
    opened = False
    try:
        async with open_websocket_url(target, connect_timeout=10, disconnect_timeout=2) as ws:
            opened = True
            result = await _stop_on_ctrl_c(body, _Link(ws, timeout))
    except ConnectionClosed as exc:
        raise ClientError(f"connection closed by the server ({_close_reason(exc)})") from None
    except HandshakeError as exc:
        if not opened and isinstance(exc, ConnectionRejected) and exc.status_code in BUSY_STATUSES:
            retry_after = parse_retry_after(dict(exc.headers).get(b"retry-after"), time.time())
            raise _Busy(_handshake_reason(exc), retry_after) from None
        if not opened:
            raise ClientError(f"cannot connect to {url}: {_handshake_reason(exc)}", EXIT_USAGE) from None
        result = EXIT_OK  # only the closing handshake timed out: everything that mattered is done
    except (OSError, ValueError) as exc:  # DNS and malformed ports surface here, before any handshake
        if opened:
            raise
        raise ClientError(f"cannot connect to {url}: {exc}", EXIT_USAGE) from None
    if result is None:
        if on_ctrl_c != EXIT_OK:
            raise ClientError("interrupted", on_ctrl_c)
        return EXIT_OK
    return result


async def _stop_on_ctrl_c(body: Callable[[_Link], Awaitable[int]], link: _Link) -> int | None:
    """`body(link)`, or None if Ctrl-C cancelled it. Trio would otherwise raise KeyboardInterrupt in
    whichever task is running, and when that is trio-websocket's reader task the connection dies
    with a traceback instead of closing."""
    result: int | None = None
    async with trio.open_nursery() as nursery:
        work = trio.CancelScope()

        async def watch(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with trio.open_signal_receiver(signal.SIGINT) as signals:
                task_status.started()
                async for _ in signals:
                    work.cancel()
                    return

        await nursery.start(watch)
        with work:
            result = await body(link)
        nursery.cancel_scope.cancel()
    return result


def _handshake_reason(exc: HandshakeError) -> str:
    if isinstance(exc, ConnectionRejected):
        detail = ""
        try:
            body = json.loads(exc.body or b"")
            detail = f" {body['error']}" if isinstance(body, dict) and "error" in body else ""
        except ValueError:
            pass
        return f"the server refused the upgrade (HTTP {exc.status_code}){detail}"
    if isinstance(exc, ConnectionTimeout):
        return "timed out"
    cause = exc.__cause__
    if cause is None:
        return type(exc).__name__
    # trio reports "all attempts to connect … failed" with the real reasons grouped in its cause.
    leaves = _os_errors(cause.__cause__) if isinstance(cause.__cause__, BaseExceptionGroup) else []
    reasons = dict.fromkeys(leaf.strerror or str(leaf) for leaf in leaves)
    return "; ".join(reasons) if reasons else str(cause) or type(cause).__name__


def _os_errors(group: BaseExceptionGroup[Any]) -> list[OSError]:
    found: list[OSError] = []
    for item in group.exceptions:
        if isinstance(item, BaseExceptionGroup):
            found.extend(_os_errors(item))
        elif isinstance(item, OSError):
            found.append(item)
    return found


def _close_reason(exc: ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "no close code"
    return f"code {reason.code}: {reason.reason}" if reason.reason else f"code {reason.code}"


def _decode(text: str | bytes) -> dict[str, Any]:
    """A frame as a dict; anything else is kept visible as `{"type": "?", "raw": …}`."""
    try:
        frame = json.loads(text)
    except ValueError:
        frame = None
    if isinstance(frame, dict):
        return frame
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return {"type": "?", "raw": raw}


def _compact(frame: dict[str, Any]) -> str:
    """One-line JSON, exactly as received: unlike `encode`, a `null` stays visible (it is a bug to see)."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def _say(line: str) -> None:
    """One event on stdout, flushed at once so `listen | grep` and tests see it live."""
    print(line, flush=True)


def _status(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def tolerate_any_text(stream: TextIO) -> None:
    """A track title in any script must not crash a terminal set to ASCII."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def _add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"server WebSocket URL; http://host:port is accepted too (default {DEFAULT_URL})",
    )


def _positive(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if value != value or value in {float("inf"), float("-inf")}:
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return value


if __name__ == "__main__":
    sys.exit(main())
