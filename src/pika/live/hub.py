"""The hub: every open connection, every live room, and the session lifecycle around them.

The hub owns one nursery.  Each room's nursery is started inside it, as are the telemetry
writer and the housekeeping loop (session expiry, forgetting old message ids).  At start the
hub rebuilds every live session from PostgreSQL, so a restart loses nothing a client saw.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import trio

from pika.config import Settings
from pika.db import Database
from pika.live.connection import CLOSE_RESTARTING, Connection
from pika.live.room import NowPlaying, Room, RoomInfo
from pika.protocol import TrackInfo, encode, safe_dj_name
from pika.queries import query
from pika.telemetry import Telemetry

log = logging.getLogger("pika.hub")

LIVE_SESSIONS = query("live_sessions")
SET_DJ_DISCONNECTED = query("set_dj_disconnected")
END_SESSION = query("end_session")
PURGE_APPLIED_MESSAGES = query("purge_applied_messages")

HOUSEKEEPING_INTERVAL = 30.0  # at most; shorter when sessions expire sooner (tests)


class Hub:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.telemetry = Telemetry(db)
        self.connections: set[Connection] = set()
        self.rooms: dict[str, Room] = {}
        self._audiences: dict[str, set[Connection]] = {}
        self.closing = False
        self._nursery: trio.Nursery | None = None
        self._drained = trio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.telemetry.run)
            await self._restore()
            nursery.start_soon(self._housekeeping)
            task_status.started()
            await trio.sleep_forever()

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Close every socket with 1012 (clients reconnect and resume); sessions stay live."""
        if self.closing:
            return
        self.closing = True
        for conn in list(self.connections):
            conn.close_soon(CLOSE_RESTARTING, "server restarting")
        with trio.move_on_after(timeout):
            if self.connections:
                await self._drained.wait()

    @property
    def live_session_count(self) -> int:
        return len(self.rooms)

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    def admission(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """Why a WebSocket upgrade must be refused before accept, as (status, error); None to accept."""
        if self.closing:
            return 503, "Server is restarting; reconnect shortly"
        return None

    # -- connections and audiences --------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)

    async def remove(self, conn: Connection) -> None:
        """A socket closed: leave its audience; a DJ's session enters its grace period."""
        self.connections.discard(conn)
        self.unsubscribe(conn)
        room = conn.dj_room
        if room is not None and room.dj_conn is conn:
            reason = "server_shutdown" if self.closing else "connection_closed"
            await self.dj_left(room, reason)
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

    def broadcast_all(self, message: dict[str, Any]) -> None:
        """Discovery events (SESSION_STARTED/ENDED/EXPIRED) go to every open connection."""
        frame = encode(message)
        for conn in self.connections:
            conn.send(frame)

    def sessions_list(self) -> dict[str, Any]:
        return {"type": "SESSIONS_LIST", "sessions": [room.summary() for room in self.rooms.values()]}

    # -- rooms ----------------------------------------------------------------------------------

    async def open_room(self, info: RoomInfo) -> Room:
        """Make a live session's room and start its nursery inside the hub's."""
        assert self._nursery is not None
        audience = self._audiences.setdefault(info.session_id, set())
        room = Room(info, audience, linger=self.settings.listener_linger_seconds)
        self.rooms[info.session_id] = room

        def window() -> float:
            doubled = room.member_count > self.settings.large_room_members
            return self.settings.listener_count_window * (2 if doubled else 1)

        await self._nursery.start(room.run, window)
        return room

    async def dj_left(self, room: Room, reason: str) -> None:
        room.dj_conn = None
        now = time.time()
        room.dj_disconnected_at = now
        self.telemetry.emit(room.session_id, "disconnect", reason=reason)
        if self.closing:
            return  # after the restart, the rebuilt room starts a fresh grace period
        await self.db.execute(
            SET_DJ_DISCONNECTED, session_id=room.session_id, at=datetime.fromtimestamp(now).astimezone()
        )
        room.start_grace(self.settings.dj_grace_seconds, lambda: self.end_session(room, "grace_expired"))

    async def end_session(self, room: Room, reason: str, *, expired: bool = False) -> None:
        """End a live session: store it, tell everyone, close the room (and its timers)."""
        if room.ended:
            return
        room.ended = True
        await self.db.execute(END_SESSION, session_id=room.session_id, reason=reason)
        self.rooms.pop(room.session_id, None)
        if not self._audiences.get(room.session_id):
            self._audiences.pop(room.session_id, None)
        if room.dj_conn is not None and room.dj_conn.dj_room is room:
            room.dj_conn.dj_room = None
        self.broadcast_all({"type": "SESSION_ENDED", "sessionId": room.session_id})
        if expired:
            self.broadcast_all({"type": "SESSION_EXPIRED", "sessionId": room.session_id, "reason": reason})
        self.telemetry.emit(room.session_id, "end", reason=reason)
        log.info("session ended", extra={"fields": {"session": room.session_id, "reason": reason}})
        room.close()

    async def _restore(self) -> None:
        """Rebuild every live session's room from PostgreSQL (after a restart or a crash)."""
        rows = await self.db.all(LIVE_SESSIONS)
        for row in rows:
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
                    dj_disconnected_at=time.time(),
                )
            )
            room.start_grace(
                self.settings.dj_grace_seconds, lambda room=room: self.end_session(room, "grace_expired")
            )
        if rows:
            log.info("live sessions restored", extra={"fields": {"count": len(rows)}})

    async def _housekeeping(self) -> None:
        while True:
            await self.expire_sessions(time.time())
            try:
                await self.db.execute(PURGE_APPLIED_MESSAGES)
            except Exception:
                log.exception("could not purge applied message ids")
            await trio.sleep(min(HOUSEKEEPING_INTERVAL, self.settings.session_idle_seconds / 4))

    async def expire_sessions(self, now: float) -> None:
        """End sessions idle too long (no DJ action) or too old (PROTOCOL.md §5)."""
        for room in list(self.rooms.values()):
            if now - room.started_at >= self.settings.session_max_age_seconds:
                await self.end_session(room, "max_age", expired=True)
            elif now - room.last_activity >= self.settings.session_idle_seconds:
                await self.end_session(room, "idle", expired=True)
