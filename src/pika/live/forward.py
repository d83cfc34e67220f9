"""A DJ-side connection on a process that does not own its room, forwarded to the owner (issue 17).

Behind a round-robin balancer a DJ's console, or its reconnect, lands on any process.  That one
(the near side) sends every frame the connection sends to the room's owner over the bus; the owner
dispatches them through its usual handlers for a `StandIn` seated in the room (same validation,
dedupe, durable-before-visible, ACK/NACK), and what it sends the stand-in comes back the same way
and is written to the socket, in order.  Numbered like the relay's lines: requests under a key per
near process and room, replies under a key per owner.  Both sides listen for silence: an owner
that stops answering gets the connection closed with 1012 (it reconnects and takes the room over,
live/hub.py `take_over`), and a near side that stops asking gets its stand-in removed (the grace).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import trio

from pika import metrics
from pika.live.connection import CLOSE_RESTARTING, Connection, Transport
from pika.live.handlers import receive
from pika.live.wire import Frame, joined, text_frame

if TYPE_CHECKING:
    from pika.live.hub import Hub
    from pika.live.relay import Relay

REQUESTS = "forward "  # + near origin + " " + session id: what one process's connections send
REPLIES = "replies "  # + owner origin: what an owner's stand-ins send back
HEARTBEAT = 2.0  # s of quiet after which the near side asks the owner whether it is there
ANSWER_WITHIN = 5.0  # s an owner has to answer before the connection is closed with 1012
SILENT = 12.0  # s without a word from the near side before the owner removes its stand-in
_QUERY, _LEFT, _REPLY = "Q", "L", "R"

Texts = tuple[str, ...]
Close = tuple[int, str, bool]  # code, reason, whether queued frames go first


@dataclass
class Link:
    """The near side of one forwarded connection."""

    conn: Connection
    key: str  # the bus key its requests go under
    sent: int = 0  # the number of its last request (a heartbeat is one)
    sent_at: float = 0.0
    waiting_since: float | None = None  # oldest request the owner has not answered yet
    owner: str | None = None  # the bus key its replies come under


class StandIn(Connection):
    """The owner's side of a forwarded connection: what the handlers send it goes to the bus."""

    __slots__ = ("done", "forward", "inbox", "link", "near", "outlet", "told")

    def __init__(self, forward: Forwarder, near: str, link: int, client_ip: str) -> None:
        super().__init__(cast(Transport, None), 0, peer=f"{near}/{link}")  # never written to
        self.forward = forward
        self.near = near
        self.link = link
        self.client_ip = client_ip
        self.done = 0  # the last request received
        self.told = 0  # the last `done` the near side was told
        # its frames in order (`heard`: when the near side last sent one, a heartbeat too)
        self.inbox, self.outlet = trio.open_memory_channel[tuple[int, str]](math.inf)

    def send(self, frame: Frame) -> None:
        if self.close_code is None and frame.texts:
            self.forward.reply(self.near, self.link, self.done, frame.texts)
            self.told = self.done

    def close_soon(self, code: int, reason: str = "", *, after_queued: bool = False) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self.forward.reply(self.near, self.link, self.done, (), (code, reason, after_queued))


class Forwarder:
    def __init__(self, hub: Hub, relay: Relay) -> None:
        self.hub = hub
        self.relay = relay
        self.links: dict[Connection, Link] = {}  # near side: this process's forwarded connections
        self._by_id: dict[int, Link] = {}
        self._stand_ins: dict[tuple[str, int], StandIn] = {}  # owner side, by (near origin, link)
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            while True:
                await trio.sleep(HEARTBEAT / 2)
                self._listen_for_silence(trio.current_time())

    # -- the near side ----------------------------------------------------------------------------

    def start(self, conn: Connection, session_id: str, frame: str | bytes) -> None:
        """`conn` asked for a room another process owns (`frame`: what it asked): from now on
        everything it sends goes to that owner.  It leaves what it held here first."""
        hub = self.hub
        room = conn.dj_room
        if room is not None:
            room.controllers.discard(conn)
            conn.dj_room = None
            if room.dj_conn is conn:
                hub.dj_left(room, "switched_session")
        hub.unsubscribe(conn)
        link = Link(conn, f"{REQUESTS}{self.relay.bus.origin} {session_id}")
        self.links[conn] = link
        self._by_id[conn.id] = link
        self.carry(link, frame)

    def carry(self, link: Link, frame: str | bytes | None) -> None:
        """One frame for the owner (None: a heartbeat, answered like any request)."""
        if isinstance(frame, bytes):  # a binary frame the parser takes as UTF-8 JSON
            frame = frame.decode("utf-8", "replace")
        conn = link.conn
        link.sent += 1
        link.sent_at = trio.current_time()
        if link.waiting_since is None:
            link.waiting_since = link.sent_at
        line = [conn.id, link.sent, frame, conn.client_ip, conn.client_id]
        self.relay.queue(link.key, _QUERY + _compact(line))
        if frame is not None:
            metrics.child(metrics.FORWARDED_FRAMES, "to_owner").inc()

    def closed(self, conn: Connection) -> None:
        """A forwarded connection closed: its stand-in leaves the room (a DJ's grace begins)."""
        link = self.links.pop(conn, None)
        if link is not None:
            del self._by_id[conn.id]
            self.relay.queue(link.key, _LEFT + _compact([conn.id]))

    def replies(self, key: str, lines: tuple[str, ...]) -> None:
        origin = self.relay.bus.origin
        for line in lines:
            near, link_id, done, texts, close = json.loads(line[1:])
            link = self._by_id.get(link_id) if near == origin else None
            if link is None or link.owner not in (None, key):
                continue
            link.owner = key
            link.waiting_since = None if done >= link.sent else trio.current_time()
            if texts:
                link.conn.send(joined([text_frame(text) for text in texts]))
                metrics.child(metrics.FORWARDED_FRAMES, "from_owner").inc(len(texts))
            if close is not None:
                code, reason, after_queued = close
                link.conn.close_soon(code, reason, after_queued=after_queued)

    # -- the owner's side -------------------------------------------------------------------------

    def requests(self, key: str, lines: tuple[str, ...]) -> None:
        near, session_id = key[len(REQUESTS) :].rsplit(" ", 1)
        for line in lines:
            if line[0] == _LEFT:
                stand_in = self._stand_ins.pop((near, json.loads(line[1:])[0]), None)
                if stand_in is not None:
                    stand_in.inbox.close()  # what it sent before is handled first
                continue
            link_id, number, frame, client_ip, client_id = json.loads(line[1:])
            stand_in = self._stand_ins.get((near, link_id))
            if stand_in is None:
                if session_id not in self.hub.rooms:
                    continue  # another process's room (or nobody's: the near side times out)
                if number != 1:  # its stand-in was on the room's previous owner
                    self.reply(near, link_id, number, (), (CLOSE_RESTARTING, "room moved; reconnect", False))
                    continue
                stand_in = self._seat(near, link_id, client_ip, client_id)
            stand_in.heard = trio.current_time()
            stand_in.done = number
            if frame is None:
                self.reply(near, link_id, number, ())
                stand_in.told = number
            else:
                stand_in.inbox.send_nowait((number, frame))  # closed only once it left the table
                metrics.child(metrics.FORWARDED_FRAMES, "served").inc()

    def reply(self, near: str, link: int, done: int, texts: Texts, close: Close | None = None) -> None:
        """To the near side of a forwarded connection: frames to write, or a close; `done`: the
        last of its requests this process received."""
        line = _REPLY + _compact([near, link, done, list(texts), close])
        self.relay.queue(f"{REPLIES}{self.relay.bus.origin}", line)

    def _seat(self, near: str, link: int, client_ip: str, client_id: str | None) -> StandIn:
        assert self._nursery is not None
        stand_in = StandIn(self, near, link, client_ip)
        stand_in.bind_client(client_id)
        self._stand_ins[(near, link)] = stand_in
        self._nursery.start_soon(self._serve, stand_in)
        return stand_in

    async def _serve(self, stand_in: StandIn) -> None:
        """A stand-in's frames, one at a time as a socket's reader handles them; then it leaves."""
        async for number, frame in stand_in.outlet:
            await receive(self.hub, stand_in, frame)
            if stand_in.told < number:  # nothing went back: say it was handled
                self.reply(stand_in.near, stand_in.link, number, ())
                stand_in.told = number
        with trio.CancelScope(shield=True):
            await self.hub.remove(stand_in)

    # -- either side ------------------------------------------------------------------------------

    def missed(self, key: str | None) -> None:
        """The bus lost lines under `key` (None: any): the connections they were for reconnect."""
        if key is None or key.startswith(REPLIES):
            for link in list(self.links.values()):
                if key is None or link.owner == key:
                    link.conn.close_soon(CLOSE_RESTARTING, "lost the room's owner; reconnect")
        if key is None or key.startswith(REQUESTS):
            near = None if key is None else key[len(REQUESTS) :].rsplit(" ", 1)[0]
            for (origin, _), stand_in in list(self._stand_ins.items()):
                if near is None or origin == near:
                    stand_in.close_soon(CLOSE_RESTARTING, "requests lost; reconnect")

    def shutdown(self) -> None:
        """This process stops: the connections its stand-ins serve reconnect (to another one)."""
        for stand_in in self._stand_ins.values():
            stand_in.close_soon(CLOSE_RESTARTING, "server restarting")

    def _listen_for_silence(self, now: float) -> None:
        for link in list(self.links.values()):
            if link.waiting_since is not None and now - link.waiting_since > ANSWER_WITHIN:
                link.conn.close_soon(CLOSE_RESTARTING, "the room's owner does not answer; reconnect")
                self.closed(link.conn)
            elif link.waiting_since is None and now - link.sent_at >= HEARTBEAT:
                self.carry(link, None)
        for key, stand_in in list(self._stand_ins.items()):
            if now - stand_in.heard > SILENT:  # the near process is gone
                del self._stand_ins[key]
                stand_in.inbox.close()


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
