"""The live listener: `/ws` on `PIKA_LIVE_PORT`, a WebSocket server of Pika!'s own (trio sockets,
h11 for the upgrade request, wsproto for frames), so writing into a socket is ours to do.

Admission (PROTOCOL.md §1) answers before the upgrade, as an HTTP error with a JSON body.  Each
connection is one reader task; a writer exists only while frames wait (connection.py).  The hub
pings every socket on one timer and drops the silent ones (`Connection.keep_alive`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

import h11
import trio
from wsproto.connection import Connection as WsFrames
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError, generate_accept_token

from pika import metrics
from pika.config import Settings
from pika.live.connection import CLOSE_TOO_BIG, Connection
from pika.live.handlers import receive
from pika.live.hub import Hub
from pika.live.wire import Frame
from pika.security.admission import UPGRADE_REQUIRED, UpgradeRefusal, admitted_ip

log = logging.getLogger("pika.listener")

RECV_BYTES = 65536
HANDSHAKE_SECONDS = 10.0  # to send a whole upgrade request: slow ones are dropped
MAX_REQUEST_BYTES = 16384
BACKLOG = 4096
UNSENT_BYTES = 16384
ACCEPT_RETRY_SECONDS = 0.1  # after running out of file descriptors
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}

Headers = list[tuple[bytes, bytes]]


def refusal_response(
    refusal: UpgradeRefusal, headers: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[int, Headers, bytes]:
    """A refused upgrade as (status, headers, JSON body), for both transports (PROTOCOL.md §1):
    the error, `Retry-After` when the refusal has one, and any `headers` of the listener's own."""
    body = json.dumps({"error": refusal.error}).encode()
    answer = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if refusal.retry_after is not None:
        answer.append((b"retry-after", str(refusal.retry_after).encode()))
    return refusal.status, answer + list(headers), body


class OwnedSocket:
    """A connection's transport on the live listener: frame bytes straight into the socket."""

    __slots__ = ("_sock", "_stall", "reading", "ws")
    direct = True

    def __init__(self, sock: trio.socket.SocketType, ws: WsFrames, stall: float) -> None:
        self._sock = sock
        self._stall = stall
        self.ws = ws
        self.reading = trio.CancelScope()  # the reader's: cancelled to drop the connection

    def try_write(self, data: bytes | memoryview) -> int | None:
        fd = self._sock.fileno()  # asked each time: -1 once closed (a cached number could be reused)
        if fd < 0:
            return None
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            return None

    async def write(self, frames: list[Frame] | bytes, close_by: float) -> bytes | None:
        if isinstance(frames, bytes):
            data = frames
        else:
            data = frames[0].wire if len(frames) == 1 else b"".join(f.wire for f in frames)
        view = memoryview(data)
        while True:
            written = self.try_write(view)
            if written is None:
                return None
            view = view[written:]
            if not view:
                return b""
            with trio.move_on_at(min(trio.current_time() + self._stall, close_by)):
                try:
                    await trio.lowlevel.wait_writable(self._sock)
                except (OSError, ValueError, trio.ClosedResourceError):
                    return None
                continue
            return bytes(view)  # the peer took no byte in time

    async def close(self, code: int, reason: str, close_by: float) -> None:
        try:
            data = self.ws.send(CloseConnection(code=code, reason=reason or None))
        except LocalProtocolError:  # the close handshake is already over
            data = b""
        if data and await self.write(data, close_by) != b"":
            self.abort()
        elif self.ws.state is ConnectionState.CLOSED:
            self.abort()  # both close frames are out: the server closes TCP first (RFC 6455 §7.1.1)
        else:
            self.reading.deadline = min(self.reading.deadline, close_by)  # wait for the reply

    def abort(self) -> None:
        self.reading.cancel()


class LiveListener:
    """Accepts connections on the live port and serves each until it closes."""

    def __init__(self, settings: Settings, hub: Hub, sock: socket.socket | None = None) -> None:
        self.settings = settings
        self.hub = hub
        self.sock = sock  # a listening socket made for it (serve --workers, pika/sockets.py)
        self.port = 0
        self.http_port: int | None = None  # set once hypercorn listens (its pages' origin)
        self._partial: dict[Connection, _Fragments] = {}  # messages still arriving, by connection
        self._nursery: trio.Nursery | None = None

    async def run(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        if self.sock is not None:
            self.sock.setblocking(False)
            listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(self.sock))]
        else:
            listeners = await trio.open_tcp_listeners(
                self.settings.live_port, host=self.settings.host, backlog=BACKLOG
            )
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for listener in listeners:
                nursery.start_soon(self._accept, listener.socket)
            task_status.started(self.port)

    async def _accept(self, sock: trio.socket.SocketType) -> None:
        assert self._nursery is not None
        with sock:
            while True:
                try:
                    client, address = await sock.accept()
                except OSError as exc:
                    if exc.errno not in _OUT_OF_RESOURCES:
                        continue  # the peer gave up before we took it (ECONNABORTED and the like)
                    log.warning("out of file descriptors: accepting again shortly")
                    await trio.sleep(ACCEPT_RETRY_SECONDS)
                    continue
                self._nursery.start_soon(self._serve, client, address)

    async def _serve(self, sock: trio.socket.SocketType, address: Any) -> None:
        try:
            await self._serve_socket(sock, address)
        except Exception:  # one connection's bug must not end the others
            log.exception("live connection failed", extra={"fields": {"peer": f"{address[0]}:{address[1]}"}})

    async def _serve_socket(self, sock: trio.socket.SocketType, address: Any) -> None:
        with sock:
            scope: dict[str, Any] = {"client": (address[0], address[1]), "headers": []}
            ws = None
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if hasattr(socket, "TCP_NOTSENT_LOWAT"):
                    # at most 16 KiB unsent in the kernel (as trio's own streams): a phone that stops
                    # reading backs up into its outbox, where the 1013 rules see it
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, UNSENT_BYTES)
                with trio.move_on_after(HANDSHAKE_SECONDS):
                    ws = await self._handshake(sock, scope)
            except OSError:
                ws = None
            if ws is None:
                self.hub.ws_admission.release(scope)  # does nothing unless it was admitted
                return
            transport = OwnedSocket(sock, ws, self.settings.write_stall_seconds)
            conn = Connection(transport, self.settings.outbox_frames, peer=f"{address[0]}:{address[1]}")
            conn.client_ip = admitted_ip(scope)
            self.hub.add(conn)
            try:
                conn.serve_in(self._nursery)
                with transport.reading:
                    await self._read(conn, sock, ws)
            finally:
                conn.serve_in(None)
                self._partial.pop(conn, None)
                with trio.CancelScope(shield=True):
                    await self.hub.remove(conn)
                self.hub.ws_admission.release(scope)

    async def _handshake(self, sock: trio.socket.SocketType, scope: dict[str, Any]) -> WsFrames | None:
        """Read the upgrade request; refuse it (HTTP error, JSON body) or accept it (101).
        Returns the WebSocket frame protocol of an accepted connection."""
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        while True:
            try:
                event = http.next_event()
            except h11.RemoteProtocolError:
                await _respond(sock, http, UpgradeRefusal(400, "Bad request"))
                return None
            if event is h11.NEED_DATA:
                data = await sock.recv(RECV_BYTES)
                if not data:
                    return None
                http.receive_data(data)
                continue
            if not isinstance(event, h11.Request):
                return None
            break
        headers = {name: value for name, value in event.headers}
        scope["headers"] = self._admission_headers(event.headers)
        if _is_probe(event, headers):  # GET /ws without an upgrade: what would an upgrade get now?
            refusal = self.hub.admission(scope, peek=True)
            if refusal is None:
                await _respond(
                    sock, http, UpgradeRefusal(426, UPGRADE_REQUIRED), [(b"upgrade", b"websocket")]
                )
            else:
                await _respond(sock, http, refusal)
            return None
        problem = _upgrade_problem(event, headers)
        if problem is not None:
            await _respond(sock, http, *problem)
            return None
        refusal = self.hub.admission(scope)
        if refusal is not None:
            metrics.REJECTED_UPGRADES.labels(str(refusal.status)).inc()
            await _respond(sock, http, refusal)
            return None
        scope["headers"] = []  # admitted: the request's headers are not kept for the connection's life
        response = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", generate_accept_token(headers[b"sec-websocket-key"])),
        ]
        extensions = []
        if self.settings.ws_compression:  # declined unless asked for: it costs memory and CPU
            deflate = PerMessageDeflate()
            offers = [o.strip() for o in headers.get(b"sec-websocket-extensions", b"").decode().split(",")]
            accepted = server_extensions_handshake([o for o in offers if o], [deflate])
            if accepted:
                response.append((b"sec-websocket-extensions", accepted))
                extensions.append(deflate)
        await _send_all(sock, http.send(h11.InformationalResponse(status_code=101, headers=response)) or b"")
        return WsFrames(ConnectionType.SERVER, extensions, http.trailing_data[0])

    def _admission_headers(self, headers: Sequence[tuple[bytes, bytes]]) -> Headers:
        """The request's headers for the admission rules.  A page served by the HTTP port that
        connects here straight (no proxy) sends `Origin: …:<http port>` to `Host: …:<live port>`:
        that origin is the server's own, so the Host is read as the HTTP port's."""
        live = f":{self.port}".encode()
        result = []
        for name, value in headers:
            if name == b"host" and value.endswith(live) and self.http_port is not None:
                value = value[: -len(live)] + f":{self.http_port}".encode()
            result.append((name, value))
        return result

    async def _read(self, conn: Connection, sock: trio.socket.SocketType, ws: WsFrames) -> None:
        """Feed the socket's bytes to wsproto and handle its events in order, until the peer
        leaves or the close handshake ends."""
        while await self._handle_events(conn, ws):
            try:
                data = await sock.recv(RECV_BYTES)
            except OSError:  # reset by the peer: as good as gone
                return
            if not data or ws.state is ConnectionState.CLOSED:
                return
            conn.heard = trio.current_time()
            ws.receive_data(data)

    async def _handle_events(self, conn: Connection, ws: WsFrames) -> bool:
        """Handle what wsproto has parsed; False once the close handshake is over."""
        limit = self.settings.max_frame_bytes
        for event in ws.events():
            kind = type(event)
            if kind is CloseConnection:
                if conn.close_code is None:  # the peer's close, or wsproto's verdict on a bad frame
                    conn.close_soon(event.code)  # type: ignore[attr-defined]
                    return True
                return ws.state is ConnectionState.REMOTE_CLOSING  # else: the reply to our close
            if conn.close_code is not None:
                continue  # closing: frames are no longer handled
            if kind is Ping:
                conn.send(Frame((), ws.send(event.response())))  # type: ignore[attr-defined]
            elif kind is TextMessage or kind is BytesMessage:
                message = self._message(conn, event, limit)  # type: ignore[arg-type]
                if message is not None:
                    await receive(self.hub, conn, message)
        return True

    def _message(self, conn: Connection, event: TextMessage | BytesMessage, limit: int) -> str | bytes | None:
        """A whole message, or None while it is incomplete (or too big: then closed with 1009)."""
        partial = self._partial.get(conn)
        if event.message_finished and partial is None:
            message = event.data
        else:
            if partial is None:
                partial = self._partial[conn] = _Fragments()
            partial.chunks.append(event.data)
            partial.size += len(event.data)
            if partial.size > limit:  # characters or bytes: over the byte limit either way
                del self._partial[conn]
                conn.close_soon(CLOSE_TOO_BIG, "message too big")
                return None
            if not event.message_finished:
                return None
            del self._partial[conn]
            message = ("" if isinstance(event, TextMessage) else b"").join(partial.chunks)
        if len(message) * 4 > limit and _size(message) > limit:
            conn.close_soon(CLOSE_TOO_BIG, "message too big")
            return None
        return message


class _Fragments:
    """A message arriving in several frames (or reads): held only until it is whole."""

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.size = 0


def _size(message: str | bytes) -> int:
    return len(message.encode("utf-8", "surrogatepass")) if isinstance(message, str) else len(message)


def _is_probe(request: h11.Request, headers: dict[bytes, bytes]) -> bool:
    """A plain GET of /ws: a page asking how long to wait after a refused upgrade (whose status
    a browser never sees), answered as the HTTP port's GET /ws is (http/ws_probe.py)."""
    return (
        request.method == b"GET"
        and request.target.split(b"?", 1)[0] == b"/ws"
        and headers.get(b"upgrade", b"").lower() != b"websocket"
    )


def _upgrade_problem(
    request: h11.Request, headers: dict[bytes, bytes]
) -> tuple[UpgradeRefusal, Headers] | None:
    """Why this request is not a WebSocket upgrade of `/ws` this server speaks (the refusal and
    headers of its own), or None."""
    if request.target.split(b"?", 1)[0] != b"/ws":
        return UpgradeRefusal(404, "Not found: this port serves the WebSocket at /ws"), []
    if request.method != b"GET":
        return UpgradeRefusal(405, "Method not allowed: upgrade with GET /ws"), []
    connection = {token.strip().lower() for token in headers.get(b"connection", b"").split(b",")}
    if b"upgrade" not in connection:
        return UpgradeRefusal(400, "Bad request: an upgrade needs Connection: Upgrade"), []
    if headers.get(b"sec-websocket-version") != b"13":
        version = [(b"sec-websocket-version", b"13")]
        return UpgradeRefusal(426, "Unsupported WebSocket version: use 13"), version
    if not headers.get(b"sec-websocket-key"):
        return UpgradeRefusal(400, "Bad request: no Sec-WebSocket-Key"), []
    return None


async def _respond(
    sock: trio.socket.SocketType,
    http: h11.Connection,
    refusal: UpgradeRefusal,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    status, answer, body = refusal_response(refusal, headers)
    answer.append((b"connection", b"close"))
    try:
        data = http.send(h11.Response(status_code=status, headers=answer)) or b""
        data += (http.send(h11.Data(data=body)) or b"") + (http.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError:  # the request was too broken to answer in HTTP
        return
    await _send_all(sock, data)


async def _send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await sock.send(view) :]
