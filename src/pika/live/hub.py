"""The hub: every open connection, every live room, and the session lifecycle around them.

The hub owns one nursery.  Each room's nursery is started inside it, as are the telemetry
writer, the group commit of dancer actions (group_commit.py), the loop guard (loop_guard.py),
the housekeeping loop (session expiry, forgetting old message ids), the daily retention
(retention.py) and the pinger (one timer for every live-listener socket: a ping per
`ping_interval`, and the silent ones dropped).  At start the hub
rebuilds every live session from PostgreSQL that no other server process owns (bus/ownership.py),
so a restart loses nothing a client saw; later, a room whose owner died is taken over when its DJ
resumes here (`take_over`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from pika.bus.ownership import Ownership
from pika.config import Settings
from pika.db import Database, DatabaseStalled, Tx, timestamptz
from pika.live.announcements import Announcement
from pika.live.applied import AppliedIds
from pika.live.clock import Clock
from pika.live.connection import CLOSE_RESTARTING, CLOSE_REVOKED, Connection
from pika.live.core import commands as core
from pika.live.core.effects import ANNOUNCEMENT_TIMER, POLL_TIMER
from pika.live.fanout import LocalFanOut
from pika.live.group_commit import GroupCommit
from pika.live.listener_journal import ListenerJournal
from pika.live.loop_guard import LoopGuard
from pika.live.polls import Poll
from pika.live.room import NowPlaying, Room, RoomInfo, Windows
from pika.live.shell import RoomShell
from pika.live.tempo import TempoTally
from pika.live.track_pace import TrackPace
from pika.live.wire import EVERYONE, frame
from pika.protocol import TrackInfo, safe_dj_name
from pika.push.sender import PushSender
from pika.queries import query
from pika.retention import prune, run_daily
from pika.security.admission import UpgradeRefusal, WsAdmission
from pika.security.ratelimit import KeyedLimiter
from pika.telemetry import Telemetry

if TYPE_CHECKING:
    from pika.live.forward import Forwarder
    from pika.live.relay import Relay

log = logging.getLogger("pika.hub")

LIVE_SESSIONS = query("live_sessions")
LIVE_TEMPO_VOTES = query("live_tempo_votes")
LIVE_POLLS = query("live_polls")
LIVE_POLL_VOTES = query("live_poll_votes")
LIVE_ANNOUNCEMENTS = query("live_announcements")
RECENT_APPLIED_MESSAGES = query("recent_applied_messages")
SET_DJ_DISCONNECTED = query("set_dj_disconnected")
PURGE_APPLIED_MESSAGES = query("purge_applied_messages")
LIVE_SESSION_LISTENERS = query("live_session_listeners")
PURGE_SESSION_LISTENERS = query("purge_session_listeners")
REPLICA_SESSION = query("replica_session")

RESTORE_DEADLINE = 300.0  # s: reading every live room back at start may take longer than a call
HOUSEKEEPING_INTERVAL = 30.0  # at most; shorter when sessions expire sooner (tests)
PING_TICK = 0.25  # s between two slices of the connections being pinged
# A killed process's advisory locks go when PostgreSQL notices its connection closed: usually at
# once, but a worker restarted right away may ask first.  Rooms it found locked at start are
# asked for again this often, this many times (a running owner keeps them).
REAP_WAIT = 0.5  # s
REAP_TRIES = 10


class OwnedElsewhere(Exception):
    """A live room another running process owns: its DJ is served there (try again)."""


class Limits:
    """The per-client rate limits of PROTOCOL.md §9 (in memory, never blocking); the tracks'
    flood guard is per room (live/track_pace.py)."""

    def __init__(self, s: Settings) -> None:
        self.likes = KeyedLimiter(s.likes_per_minute, 60.0, name="likes")
        self.bulk_likes = KeyedLimiter(s.bulk_likes_per_minute, 60.0, name="bulk likes")
        self.tempo = KeyedLimiter(s.tempo_per_minute, 60.0, name="tempo votes")
        self.reactions = KeyedLimiter(s.reactions_per_window, s.reactions_window, name="reactions")


class Hub:
    def __init__(self, settings: Settings, db: Database, ownership: Ownership | None = None) -> None:
        self.settings = settings
        self.db = db
        self.ownership = ownership  # rooms this process decides for (bus/ownership.py); None: all
        self.relay: Relay | None = None  # to and from the other processes (live/relay.py); None: alone
        self.forward: Forwarder | None = None  # DJ-side connections served by another process's room
        self.clock = Clock()  # the one `now` of every room rule (live/clock.py)
        self.limits = Limits(settings)
        self.ws_admission = WsAdmission(settings)
        self.applied = AppliedIds()
        self.telemetry = Telemetry(db)
        self.writes = GroupCommit(db)
        self.shell = RoomShell(self.writes, self.clock, LocalFanOut(self.broadcast_all), self._room_ended)
        self.listener_journal = ListenerJournal(
            db, settings.listener_flush_seconds, self._connected_sessions, self.clock
        )
        self.guard = LoopGuard()
        self.push = PushSender(settings, db)
        self.connections: set[Connection] = set()
        self.rooms: dict[str, Room] = {}
        self._audiences: dict[str, set[Connection]] = {}
        self.closing = False
        self._nursery: trio.Nursery | None = None
        self._drained = trio.Event()
        self._taking_over = trio.Lock()
        self._windows = Windows(
            listener_count=settings.listener_count_window,
            tempo_feedback=settings.tempo_feedback_window,
            poll_update_dj=settings.poll_update_dj_window,
            poll_update=settings.poll_update_window,
            large_room=settings.large_room_members,
            tempo_lapse=settings.tempo_lapse_seconds,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.telemetry.run)
            await nursery.start(self.writes.run)
            await nursery.start(self.guard.run)
            await nursery.start(self.listener_journal.run)
            await nursery.start(self.push.run)
            locked = await self._restore()
            if locked:
                nursery.start_soon(self._take_over_when_released, locked)
            nursery.start_soon(self._housekeeping)
            nursery.start_soon(self._ping_everyone)
            days = self.settings.retention_days
            nursery.start_soon(run_daily, partial(prune, self.db, days), days)
            task_status.started()
            await trio.sleep_forever()

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Close every socket with 1012 (clients reconnect and resume); sessions stay live."""
        if self.closing:
            return
        self.closing = True
        for conn in list(self.connections):
            conn.close_soon(CLOSE_RESTARTING, "server restarting")
        if self.forward is not None:
            self.forward.shutdown()
        with trio.move_on_after(timeout):
            if self.connections:
                await self._drained.wait()

    @property
    def live_session_count(self) -> int:
        return len(self.rooms)

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    def admission(self, scope: dict[str, Any], *, peek: bool = False) -> UpgradeRefusal | None:
        """Why a WebSocket upgrade must be refused before accept; None to accept.  `peek`: only
        say what an upgrade would get now (GET /ws without an upgrade), counting nothing."""
        if self.closing:
            return UpgradeRefusal(503, "Server is restarting; reconnect shortly", retry_after=1)
        return self.ws_admission.peek(scope) if peek else self.ws_admission.check(scope)

    # -- connections and audiences --------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)

    async def remove(self, conn: Connection) -> None:
        """A socket closed: leave its audience; a DJ's session enters its grace period."""
        self.connections.discard(conn)
        self.unsubscribe(conn)
        if self.forward is not None:
            self.forward.closed(conn)
        room = conn.dj_room
        if room is not None:
            room.controllers.discard(conn)  # a controller leaving starts no grace and ends nothing
        if room is not None and room.dj_conn is conn:
            self.dj_left(room, "server_shutdown" if self.closing else "connection_closed")
        if self.closing and not self.connections:
            self._drained.set()

    def subscribe(self, conn: Connection, session_id: str) -> Room | None:
        """Move `conn` into `session_id`'s audience; returns the room when the session is live."""
        if conn.subscribed == session_id:
            return self.rooms.get(session_id)
        self.unsubscribe(conn)
        conn.subscribed = session_id
        self._audiences.setdefault(session_id, set()).add(conn)
        room = self.rooms.get(session_id)
        if room is not None:
            room.listener_joined(conn)
        elif self.relay is not None:  # a member of a room another process owns
            self.relay.members_changed(session_id)
        return room

    def unsubscribe(self, conn: Connection) -> None:
        session_id = conn.subscribed
        if session_id is None:
            return
        conn.subscribed = None
        audience = self._audiences.get(session_id)
        if audience is not None:
            audience.discard(conn)
            if not audience and session_id not in self.rooms:
                del self._audiences[session_id]
        room = self.rooms.get(session_id)
        if room is not None:
            room.listener_left(conn)
        elif self.relay is not None:
            self.relay.members_changed(session_id)

    def audience(self, session_id: str) -> set[Connection]:
        """This process's connections subscribed to `session_id`."""
        return self._audiences.get(session_id, set())

    def remote_sessions(self) -> list[str]:
        """Sessions this process has members of but does not own (their owner is elsewhere)."""
        return [sid for sid, members in self._audiences.items() if members and sid not in self.rooms]

    def broadcast_all(self, message: dict[str, Any]) -> None:
        """Discovery events (SESSION_STARTED/ENDED/EXPIRED) go to every open connection."""
        encoded = frame(message)
        for conn in self.connections:
            conn.send(encoded)
        if self.relay is not None:  # and to every other process's connections
            self.relay.outward(message["sessionId"], EVERYONE, encoded)

    def sessions_list(self) -> dict[str, Any]:
        """This process's rooms, then those other processes own (live/directory.py)."""
        sessions = [room.summary() for room in self.rooms.values()]
        if self.relay is not None:
            sessions.extend(self.relay.directory.summaries(self.relay.counts, self.rooms, self.clock.now()))
        return {"type": "SESSIONS_LIST", "sessions": sessions}

    def is_live(self, session_id: str) -> bool:
        """Live here, or on another process as far as the relay has heard."""
        return session_id in self.rooms or (self.relay is not None and session_id in self.relay.directory)

    # -- rooms ----------------------------------------------------------------------------------

    async def open_room(self, info: RoomInfo) -> Room:
        """Make a live session's room and start its nursery inside the hub's."""
        assert self._nursery is not None
        s = self.settings
        if self.ownership is not None:  # a new session, or one restored after a claim: this one's
            await self.ownership.adopt(info.session_id)
        audience = self._audiences.setdefault(info.session_id, set())
        room = Room(
            info,
            audience,
            clock=self.clock,
            linger=self.settings.listener_linger_seconds,
            windows=self._windows,
            journal=self.listener_journal,
            track_pace=TrackPace(s.track_burst, s.track_rate, s.track_backlog_seconds),
        )
        if self.relay is not None:
            room.relay = self.relay.outward
        self.rooms[info.session_id] = room
        await self._nursery.start(room.run)
        return room

    def dj_left(self, room: Room, reason: str) -> None:
        """The DJ connection closed or moved to another session: from now on nothing reaches it
        and the grace period runs; its disconnection is stored in the room's turn."""
        room.dj_conn = None
        now = self.clock.now()
        self.telemetry.emit(room.session_id, "disconnect", reason=reason)
        if not self.closing:  # after a restart, the rebuilt room starts a fresh grace period
            self.shell.now(room, core.DjLeft(self.settings.dj_grace_seconds))
            room.start_timer(0.0, lambda: self._store_dj_away(room, now))

    async def _store_dj_away(self, room: Room, since: float) -> None:
        if room.dj_conn is not None:
            return  # back already: its resume came first
        try:
            await self.db.execute(SET_DJ_DISCONNECTED, session_id=room.session_id, at=timestamptz(since))
        except DatabaseStalled:  # only informative: a rebuilt room starts its grace period afresh
            log.warning("DJ disconnection not stored", extra={"fields": {"session": room.session_id}})

    async def end_session(
        self,
        room: Room,
        reason: str,
        *,
        expired: bool = False,
        sender: str = "",
        message_id: str | None = None,
    ) -> None:
        """End a live session: close its poll, clear its announcement, store its tempo tally and
        `ended_at` (one transaction), then tell everyone and close the room with its timers.
        The caller holds the room's turn; `message_id` (of `sender`) is claimed with the end."""
        if not room.ended:
            await self.shell.settle(room, core.EndSession(reason, expired), sender, message_id)

    def _room_ended(self, room: Room) -> None:
        """The room's session ended (stored, and told): forget the room and close it."""
        self.rooms.pop(room.session_id, None)
        if self.ownership is not None and self._nursery is not None:
            self._nursery.start_soon(self.ownership.release, room.session_id)
        if not self._audiences.get(room.session_id):
            self._audiences.pop(room.session_id, None)
        if room.dj_conn is not None and room.dj_conn.dj_room is room:
            room.dj_conn.dj_room = None
        self.telemetry.emit(room.session_id, "end", reason=room.state.end_reason)
        log.info(
            "session ended", extra={"fields": {"session": room.session_id, "reason": room.state.end_reason}}
        )
        for controller in room.controllers:
            controller.dj_room = None
        room.controllers.clear()
        room.close()

    def tokens_revoked(self, dj_id: int) -> int:
        """Every token of account `dj_id` was revoked: close its live DJ connections and
        controllers with 4003 (each DJ's session enters its grace period); returns how many."""
        closing = [
            conn
            for room in self.rooms.values()
            if room.dj_id == dj_id
            for conn in (room.dj_conn, *room.controllers)
            if conn is not None
        ]
        for conn in closing:
            conn.close_soon(CLOSE_REVOKED, "token revoked; log in again")
        return len(closing)

    def _connected_sessions(self) -> list[str]:
        """Live sessions with a client connected now (their listeners' flush time is stamped)."""
        return [sid for sid, room in self.rooms.items() if room.listeners.connected]

    def room_of_poll(self, poll_id: int) -> Room | None:
        """The live room whose active poll this is (a handful of rooms with polls: a scan is fine)."""
        for room in self.rooms.values():
            if room.poll is not None and room.poll.id == poll_id:
                return room
        return None

    async def take_over(self, session_id: str) -> Room | None:
        """A live room no running process owns any more (its owner was killed, or lost its
        database connection): claimed and rebuilt here from PostgreSQL, so its DJ can resume
        here.  None when it is not live; raises `OwnedElsewhere` when a running process owns it
        (or its killed owner's lock is not released yet)."""
        if self.ownership is None or await self.db.one(REPLICA_SESSION, session_id=session_id) is None:
            return None  # alone, or not live (a new session's id: nothing to read back)
        async with self._taking_over:  # one rebuild of a room, however many ask at once
            if session_id not in self.rooms:
                await self._restore(only=session_id)
            room = self.rooms.get(session_id)
        if room is None:
            raise OwnedElsewhere(session_id)
        return room

    async def _take_over_when_released(self, session_ids: list[str]) -> None:
        """Ask again for the live rooms another process's lock held at start (`REAP_WAIT`)."""
        waiting = set(session_ids)
        for _ in range(REAP_TRIES):
            await trio.sleep(REAP_WAIT)
            for session_id in sorted(waiting):
                with contextlib.suppress(OwnedElsewhere, DatabaseStalled):
                    await self.take_over(session_id)  # rebuilt here, or no longer live
                    waiting.discard(session_id)
            if not waiting:
                return

    async def _restore(self, only: str | None = None) -> list[str]:
        """Rebuild every live session's room from PostgreSQL (after a restart or a crash), or
        only session `only`: current track, tempo votes, active poll with its votes, active
        announcement, timers.  Returns the live sessions left alone because another process
        holds their lock."""

        since = timestamptz(self.clock.now() - self.settings.listener_linger_seconds)

        def load(tx: Tx) -> tuple[list, list, list, list, list, list, list]:
            return (
                # the dedupe mirror of every room, once at start; a room taken over needs none of
                # it: each claim is checked in PostgreSQL as it is written (group_commit.py)
                tx.all(RECENT_APPLIED_MESSAGES) if only is None else [],
                tx.all(LIVE_SESSIONS),
                tx.all(LIVE_TEMPO_VOTES),
                tx.all(LIVE_POLLS),
                tx.all(LIVE_POLL_VOTES),
                tx.all(LIVE_ANNOUNCEMENTS),
                tx.all(LIVE_SESSION_LISTENERS, since=since),
            )

        applied, sessions, tempo_votes, polls, poll_votes, announcements, listeners = await self.db.run(
            load, deadline=RESTORE_DEADLINE
        )
        self.applied.load((r["sender"], r["message_id"], r["applied_at"]) for r in applied)
        locked: list[str] = []
        if self.ownership is not None:  # with other processes: only the rooms no other one owns
            candidates, sessions = [row for row in sessions if only is None or row["id"] == only], []
            for row in candidates:
                if await self.ownership.claim(row["id"]):
                    sessions.append(row)
                else:
                    locked.append(row["id"])
        restored = {row["id"] for row in sessions}
        tallies: dict[str, list[tuple[str, str, float]]] = {}
        for v in tempo_votes:
            tallies.setdefault(v["session_id"], []).append(
                (v["client_id"], v["preference"], v["cast_at"].timestamp())
            )
        lingering: dict[str, list[tuple[str, float]]] = {}
        for v in listeners:
            lingering.setdefault(v["session_id"], []).append((v["client_id"], v["left_at"].timestamp()))
        ballots: dict[int, dict[str, int]] = {}
        for v in poll_votes:
            ballots.setdefault(v["poll_id"], {})[v["client_id"]] = v["option_index"]
        for row in sessions:
            current = None
            if row["play_id"] is not None:
                current = NowPlaying(row["play_id"], TrackInfo.from_row(row))
            room = await self.open_room(
                RoomInfo(
                    session_id=row["id"],
                    dj_name=safe_dj_name(row["dj_name"]),
                    dj_id=row["dj_id"],
                    resume_key_sha256=row["resume_key_sha256"],
                    started_at=row["started_at"].timestamp(),
                    last_activity=row["last_activity_at"].timestamp(),
                    current=current,
                    tempo=TempoTally.from_votes(tallies.get(row["id"], [])),
                    lingering=lingering.get(row["id"], []),
                )
            )
            self.shell.now(room, core.DjLeft(self.settings.dj_grace_seconds))
        for p in polls:
            room = self.rooms.get(p["session_id"])
            if room is None or p["session_id"] not in restored:
                continue
            poll = Poll.from_row(p, ballots.get(p["id"], {}))
            room.state.poll = poll
            if poll.ends_at is not None:  # closed at once if its endsAt passed meanwhile
                room.set_timer(
                    POLL_TIMER, poll.ends_at - self.clock.now(), self.shell.timer(room, POLL_TIMER)
                )
        for a in announcements:
            room = self.rooms.get(a["session_id"])
            if room is not None and a["session_id"] in restored:
                room.state.announcement = Announcement.from_row(a)
                ends_at = room.state.announcement.ends_at
                if ends_at is not None:
                    timer = self.shell.timer(room, ANNOUNCEMENT_TIMER)
                    room.set_timer(ANNOUNCEMENT_TIMER, ends_at - self.clock.now(), timer)
        if sessions:
            log.info(
                "live sessions restored", extra={"fields": {"count": len(sessions), "polls": len(polls)}}
            )
        return locked

    async def _ping_everyone(self) -> None:
        """Once per `ping_interval`, ping every socket the live listener owns and drop those
        that sent nothing (pongs included) for `idle_timeout`; hypercorn pings its own.

        The pings are spread evenly over the interval, a slice every tick: sent all at once,
        their pongs come back all at once and delay a broadcast behind them.
        """
        interval = self.settings.ping_interval
        idle = self.settings.idle_timeout
        tick = min(PING_TICK, interval / 4)
        while True:
            sweep_ends = trio.current_time() + interval
            everyone = list(self.connections)
            per_tick = max(1, math.ceil(len(everyone) * tick / interval))
            for start in range(0, len(everyone), per_tick):
                await trio.sleep(tick)
                now = trio.current_time()
                for conn in everyone[start : start + per_tick]:
                    conn.keep_alive(now, idle)  # a connection closed meanwhile ignores it
            await trio.sleep_until(max(sweep_ends, trio.current_time() + tick))

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self.expire_sessions(self.clock.now())
            except DatabaseStalled:
                log.warning("session expiry waits for the database")
            self.applied.prune(self.clock.now())
            try:
                await self.db.execute(PURGE_APPLIED_MESSAGES)
                await self.db.execute(PURGE_SESSION_LISTENERS)
            except Exception:
                log.exception("could not purge applied message ids or ended sessions' listeners")
            await trio.sleep(min(HOUSEKEEPING_INTERVAL, self.settings.session_idle_seconds / 4))

    async def expire_sessions(self, now: float) -> None:
        """End sessions idle too long (no DJ action) or too old (PROTOCOL.md §5)."""
        for room in list(self.rooms.values()):
            async with room.turn:  # after the command in progress, which may be the DJ's action
                if now - room.started_at >= self.settings.session_max_age_seconds:
                    await self.end_session(room, "max_age", expired=True)
                elif now - room.last_activity >= self.settings.session_idle_seconds:
                    await self.end_session(room, "idle", expired=True)
