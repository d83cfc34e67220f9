"""A live room owned by another server process, as PostgreSQL holds it: what this process's
subscribers of that room are shown when they join, and again when the relay (live/relay.py)
missed some of the owner's frames, so nobody is left with a stale track.  `Replicas` keeps each
one until the owner's frames say the room changed, so a dancer frame does not read it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pika.db import Database, DatabaseStalled, Tx
from pika.live.announcements import Announcement
from pika.live.core.state import NowPlaying, RoomState
from pika.live.listeners import Listeners
from pika.live.polls import Poll
from pika.live.track_pace import TrackPace
from pika.protocol import TrackInfo, safe_dj_name
from pika.queries import query

REPLICA_SESSION = query("replica_session")
REPLICA_POLL = query("replica_poll")
REPLICA_ANNOUNCEMENT = query("replica_announcement")

READS = 3  # reads of a room whose owner keeps changing it meanwhile, before the last one answers


@dataclass(frozen=True)
class Replica:
    session_id: str
    dj_name: str
    current: NowPlaying | None
    poll: Poll | None
    announcement: Announcement | None

    def state(self) -> RoomState:
        """A room state to decide a dancer action on here (the owner's room does the rest)."""
        return RoomState(
            self.session_id,
            self.dj_name,
            pace=TrackPace(1, 1.0, 1.0),  # DJ-side only: never consulted for a dancer action
            listeners=Listeners(0.0),
            current=self.current,
            poll=self.poll,
            announcement=self.announcement,
        )

    def state_messages(self, listener_id: str, now: float) -> list[dict[str, Any]]:
        """What the owner's `Room.state_messages` would show."""
        return self.state().state_messages(listener_id, now)


async def read_replica(db: Database, session_id: str) -> Replica | None:
    """The live session's state (one transaction); None when it is not live."""

    def load(tx: Tx) -> Replica | None:
        session = tx.one(REPLICA_SESSION, session_id=session_id)
        if session is None:
            return None
        poll = tx.one(REPLICA_POLL, session_id=session_id)
        announcement = tx.one(REPLICA_ANNOUNCEMENT, session_id=session_id)
        play_id = session["play_id"]
        return Replica(
            session_id,
            safe_dj_name(session["dj_name"]),
            None if play_id is None else NowPlaying(play_id, TrackInfo.from_row(session)),
            None if poll is None else Poll.from_row(poll, poll["ballots"]),
            None if announcement is None else Announcement.from_row(announcement),
        )

    try:
        return await db.run(load)
    except psycopg.OperationalError as exc:  # a read: the connection lost to a restart is a stall
        raise DatabaseStalled from exc


class Replicas:
    """Rooms owned elsewhere as last read, each kept until `changed` (the owner sent its
    audience something other than a listener count, or frames were missed).  A room that is not
    live is never kept: it may start any moment."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._kept: dict[str, Replica] = {}
        self._changes: dict[str, int] = {}  # per room: how often it changed (a few ints a session)

    async def get(self, session_id: str) -> Replica | None:
        """The room as the owner's frames so far leave it: a read that a change overtook is
        read again (a few times at most: then the last read answers, and is not kept)."""
        replica = self._kept.get(session_id)
        if replica is not None:
            return replica
        for _ in range(READS):
            changes = self._changes.get(session_id, 0)
            replica = await read_replica(self._db, session_id)
            if self._changes.get(session_id, 0) == changes:
                if replica is not None:
                    self._kept[session_id] = replica
                break
        return replica

    def with_poll(self, poll_id: int) -> Replica | None:
        """The kept room whose active poll this is (a handful of rooms with polls: a scan)."""
        return next((r for r in self._kept.values() if r.poll is not None and r.poll.id == poll_id), None)

    def changed(self, session_id: str) -> None:
        """The room changed (or ended, or moved here): read it afresh when next asked."""
        self._kept.pop(session_id, None)
        self._changes[session_id] = self._changes.get(session_id, 0) + 1
