"""The relay between server processes sharing live rooms (issue 17).

What a room's owner sends its audience (and the discovery events) also goes onto the bus
(bus/postgres.py): one NOTIFY per room per flush, numbered per room.  Every other process hands
those frames to its own members of the room, encoded once; when it missed some (a gap, a new
owner, its listener was away) its members get the room afresh from PostgreSQL (live/replica.py).
Each process also reports who its members of a room owned elsewhere are, when they change and
every few seconds, and the owner counts them with its own (PROTOCOL.md §7) until the reports
stop (a killed process: live/listeners.py).  The same bus carries the lines of DJ-side connections
forwarded to their room's owner (live/forward.py), and what passes through keeps the directory of
rooms owned elsewhere (live/directory.py) current.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
import trio

from pika.backoff import reconnect_delay
from pika.bus.postgres import PgBus
from pika.db import DatabaseStalled, Tx
from pika.live.core.commands import CastTempo, Like, PollVote, Thanks
from pika.live.core.effects import Write
from pika.live.directory import Directory
from pika.live.forward import REPLIES, REQUESTS, Forwarder
from pika.live.group_commit import Notice
from pika.live.listeners import REPORT_EVERY
from pika.live.replica import Replicas
from pika.live.requests import Refusal
from pika.live.shell import DancerAction
from pika.live.wire import EVERYONE, Frame, joined, text_frame
from pika.protocol import TrackInfo

if TYPE_CHECKING:
    from pika.live.hub import Hub

log = logging.getLogger("pika.relay")

MEMBERS = "M"  # a line reporting one process's members of a room to its owner
ACTION = "A"  # a line with a dancer action another process committed, for the room's owner
_COUNT = '{"type":"LISTENER_COUNT"'  # how the owner's listener counts begin (protocol.encode)
_ENDED = '{"type":"SESSION_ENDED"'
# Prefixes of the bus keys a process numbers its reports and its actions for one room under:
_REPORT = "members "
_ACTIONS = "actions "


class Relay:
    def __init__(self, hub: Hub, url: str, process: str) -> None:
        self.hub = hub
        self.bus = PgBus(url, hub.db, self, process, self._in_group_commit)
        hub.writes.notify = self.bus.notify_in  # dancer actions are announced as they commit
        self._pending: dict[str, list[str]] = {}  # bus key -> lines, in the order they were sent
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.counts: dict[str, int] = {}  # the last LISTENER_COUNT each room's owner sent
        self.directory = Directory()  # the live rooms other processes own (live/directory.py)
        self.replicas = Replicas(hub.db)  # their state, for dancer actions and subscribers here
        self.forward = Forwarder(hub, self)  # DJ-side connections whose room is owned elsewhere

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the bus and send what the rooms queued, one flush at a time (in order)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.bus.run)
            await self.reload_directory()  # after LISTEN: no room starts unseen
            nursery.start_soon(self.forward.run)
            nursery.start_soon(self._report_members)
            task_status.started()
            failures = 0
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                batches, self._pending = self._pending, {}
                try:
                    await self.bus.publish(list(batches.items()), _owed)
                    failures = 0
                except DatabaseStalled:  # a room's receivers see a gap and re-read; the owed are kept
                    failures += 1
                    log.warning("relay: batches not sent", extra={"fields": {"rooms": len(batches)}})
                    if self.bus.owes:  # sent again, with what comes meanwhile, once the database answers
                        await trio.sleep(reconnect_delay(failures))
                        self._wake.set()

    async def _in_group_commit(self, work: Callable[[Tx], None]) -> None:
        """A flush's NOTIFYs, in the next group-commit batch with the dancers' writes: no
        transaction of their own.  Stopped (the server is going down): nothing is sent."""
        try:
            await self.hub.writes.write("", None, work)
        except Refusal as exc:
            raise DatabaseStalled from exc

    def queue(self, key: str, line: str) -> None:
        """One line for the other processes, numbered under `key` (live/forward.py's)."""
        self._pending.setdefault(key, []).append(line)
        self._wake.set()

    # -- from this process's rooms ----------------------------------------------------------------

    def outward(self, session_id: str, kind: str, encoded: Frame) -> None:
        """Frames this process sent its own members of `session_id` (`kind`: who they are for)."""
        self._pending.setdefault(session_id, []).extend(kind + text for text in encoded.texts)
        self._wake.set()
        now = self.hub.clock.now()
        for text in encoded.texts:  # kept for when the room is owned elsewhere (after a takeover)
            self.directory.seen(session_id, text, now)

    def members(self, session_id: str) -> set[str]:
        """This process's members of a room, as the owner counts them (distinct clients)."""
        # a connection without a clientId is only this process's: named so none of another's is taken for it
        origin = self.bus.origin
        return {c.client_id or f"{origin}/{c.listener_id}" for c in self.hub.audience(session_id)}

    def members_changed(self, session_id: str) -> None:
        """This process's members of a room owned elsewhere changed: report them to the owner."""
        origin = self.bus.origin
        members = sorted(self.members(session_id))
        report = MEMBERS + json.dumps([origin, session_id, members], separators=(",", ":"))
        # numbered under a key of its own per process and room: reports from several processes
        # are not one numbering, and a room's frames are another
        self._pending[f"{_REPORT}{origin} {session_id}"] = [report]  # the latest one counts
        self._wake.set()

    async def _report_members(self) -> None:
        """Report this process's members of every live room owned elsewhere again, every
        `REPORT_EVERY` s: the owner stops counting them when the reports stop (a killed process)."""
        while True:
            await trio.sleep(REPORT_EVERY)
            if self.bus.owes:  # the database did not answer: the reports kept go first, not more
                continue
            for session_id in self.hub.remote_sessions():
                if session_id in self.directory:
                    self.members_changed(session_id)

    def notice(self, session_id: str, action: DancerAction, write: Write | None) -> Notice:
        """A dancer action for the owner of a room owned elsewhere, sent by the group commit in
        the transaction that writes it (`GroupCommit`'s notices): heard once it is durable."""
        play_id = None if write is None else write.params.get("play_id")
        line = ACTION + json.dumps([session_id, _action_wire(action), play_id], separators=(",", ":"))
        return f"{_ACTIONS}{self.bus.origin} {session_id}", line

    # -- from other processes (the bus's Subscriber) -----------------------------------------------

    def deliver(self, session_id: str, frames: tuple[str, ...]) -> None:
        if session_id.startswith(REQUESTS):
            self.forward.requests(session_id, frames)
            return
        if session_id.startswith(REPLIES):
            self.forward.replies(session_id, frames)
            return
        if session_id.startswith(_ACTIONS):
            for line in frames:
                room_id, wire, play_id = json.loads(line[1:])
                room = self.hub.rooms.get(room_id)
                if room is not None:
                    self.hub.shell.told(room, _action(wire), play_id)
            return
        if session_id.startswith(_REPORT):
            for line in frames:
                origin, room_id, members = json.loads(line[1:])
                room = self.hub.rooms.get(room_id)
                if room is not None:
                    room.remote_members(origin, members)
            return
        if session_id in self.hub.rooms:
            return  # this process owns the room now: what it decides is what its members see
        now = self.hub.clock.now()
        for kind, texts in _runs(frames):
            for text in texts:
                self.directory.seen(session_id, text, now)
                if text.startswith(_COUNT):
                    self.counts[session_id] = json.loads(text)["count"]
                    continue
                self.replicas.changed(session_id)
                if text.startswith(_ENDED):
                    self.counts.pop(session_id, None)
            encoded = joined([text_frame(text) for text in texts])
            recipients = self.hub.connections if kind == EVERYONE else self.hub.audience(session_id)
            for conn in recipients:  # no DJ side here: the room's DJ is on its owner
                conn.send(encoded)

    def reread(self, session_ids: Collection[str] | None) -> None:
        """Batches were missed: send these rooms' members (None: of every room owned elsewhere)
        the room's state afresh, and report them to the (maybe new) owner again."""
        if session_ids is None:
            self.forward.missed(None)
        else:
            for key in session_ids:
                if key.startswith((REQUESTS, REPLIES)):
                    self.forward.missed(key)
        remote = self.hub.remote_sessions()
        wanted = remote if session_ids is None else [sid for sid in session_ids if sid in remote]
        if self._nursery is None:
            return
        if session_ids is None:
            self._nursery.start_soon(self.reload_directory)
        for session_id in wanted:
            self._nursery.start_soon(self.refresh, session_id)

    async def reload_directory(self) -> None:
        try:
            await self.directory.reload(self.hub.db)
        except (DatabaseStalled, psycopg.OperationalError):  # re-read when the bus is back
            log.warning("relay: live rooms not re-read")

    async def refresh(self, session_id: str) -> None:
        """Show this process's members of `session_id` its state as PostgreSQL holds it."""
        self.replicas.changed(session_id)
        try:
            replica = await self.replicas.get(session_id)
        except DatabaseStalled:
            log.warning("relay: room not re-read", extra={"fields": {"session": session_id}})
            return
        now = self.hub.clock.now()
        for conn in list(self.hub.audience(session_id)):
            if replica is None:
                conn.send_message({"type": "SESSION_ENDED", "sessionId": session_id})
            else:
                for message in replica.state_messages(conn.listener_id, now):
                    conn.send_message(message)
        if replica is not None:
            self.members_changed(session_id)


def _owed(key: str) -> bool:
    """Lines no re-read restores: member reports (counted until the next one).  Dancer actions
    for their owner need not be kept: they are sent with their own writes (`notice`)."""
    return key.startswith(_REPORT)


def _action_wire(action: DancerAction) -> list[Any]:
    if isinstance(action, Like):
        return ["like", action.client, action.track.to_wire()]
    if isinstance(action, CastTempo):
        return ["tempo", action.client, action.preference]
    if isinstance(action, Thanks):
        return ["thanks", action.client, action.reaction]
    return ["vote", action.client, action.poll_id, action.option_index]


def _action(wire: list[Any]) -> DancerAction:
    kind, client, *rest = wire
    if kind == "like":
        return Like(client, TrackInfo.from_row(rest[0]))
    if kind == "tempo":
        return CastTempo(client, rest[0])
    if kind == "thanks":
        return Thanks(client, rest[0])
    return PollVote(client, rest[0], rest[1])


def _runs(lines: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """Consecutive lines for the same audience, as (kind, texts): each run is one write per member."""
    kind, texts = "", []
    for line in lines:
        if line[:1] != kind and texts:
            yield kind, texts
            texts = []
        kind = line[:1]
        texts.append(line[1:])
    if texts:
        yield kind, texts
