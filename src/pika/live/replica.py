"""A live room owned by another server process, as PostgreSQL holds it: what this process's
subscribers of that room are shown when they join, and again when the relay (live/relay.py)
missed some of the owner's frames, so nobody is left with a stale track.
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
