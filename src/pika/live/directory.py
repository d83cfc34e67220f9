"""The live rooms other server processes own, as SESSIONS_LIST and VALIDATE_SESSION show them.

Kept from the frames the relay (live/relay.py) already carries to every process — SESSION_STARTED,
SESSION_ENDED/EXPIRED, NOW_PLAYING, METADATA_UPDATED, TRACK_STOPPED, ANNOUNCEMENT_* — and read afresh from
PostgreSQL's live sessions at start and whenever the bus missed batches, so a dancer on any
process sees and validates every live room without a query per request.
"""

from __future__ import annotations

import json
from typing import Any

from pika.db import Database, Tx
from pika.live.announcements import Announcement
from pika.protocol import TrackInfo, iso, safe_dj_name
from pika.queries import query

LIVE_SESSIONS = query("live_sessions")
LIVE_ANNOUNCEMENTS = query("live_announcements")

_STARTED = '{"type":"SESSION_STARTED"'
_GONE = ('{"type":"SESSION_ENDED"', '{"type":"SESSION_EXPIRED"')
_TRACK = ('{"type":"NOW_PLAYING"', '{"type":"METADATA_UPDATED"')
_STOPPED = '{"type":"TRACK_STOPPED"'
_ANNOUNCED = '{"type":"ANNOUNCEMENT_RECEIVED"'
_CANCELLED = '{"type":"ANNOUNCEMENT_CANCELLED"'


class Directory:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Any]] = {}  # session id -> its SESSIONS_LIST entry, but the count
        self._announcements: dict[str, dict[str, Any]] = {}  # session id -> {message, timestamp, endsAt?}

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._rooms

    async def reload(self, db: Database) -> None:
        """Every live session as PostgreSQL holds it (raises `DatabaseStalled`)."""

        def load(tx: Tx) -> tuple[list[Any], list[Any]]:
            return tx.all(LIVE_SESSIONS), tx.all(LIVE_ANNOUNCEMENTS)

        rows, announcements = await db.run(load)
        rooms = {}
        for row in rows:
            entry: dict[str, Any] = {
                "sessionId": row["id"],
                "djName": safe_dj_name(row["dj_name"]),
                "startedAt": iso(row["started_at"]),
            }
            if row["play_id"] is not None:
                entry["currentTrack"] = TrackInfo.from_row(row).to_wire()
            rooms[row["id"]] = entry
        self._rooms = rooms
        self._announcements = {a["session_id"]: Announcement.from_row(a).summary() for a in announcements}

    def seen(self, session_id: str, text: str, now: float) -> None:
        """One frame the room's owner sent (only the few kinds above are parsed)."""
        if text.startswith(_STARTED):
            dj_name = json.loads(text)["djName"]
            self._rooms[session_id] = {"sessionId": session_id, "djName": dj_name, "startedAt": iso(now)}
        elif text.startswith(_GONE):
            self._rooms.pop(session_id, None)
            self._announcements.pop(session_id, None)
        elif text.startswith(_TRACK):
            entry = self._rooms.get(session_id)
            if entry is not None:
                entry["currentTrack"] = json.loads(text)["track"]
        elif text.startswith(_STOPPED):
            entry = self._rooms.get(session_id)
            if entry is not None:
                entry.pop("currentTrack", None)
        elif text.startswith(_ANNOUNCED):
            message = json.loads(text)
            self._announcements[session_id] = {
                key: message[key] for key in ("message", "timestamp", "endsAt") if key in message
            }
        elif text.startswith(_CANCELLED):
            self._announcements.pop(session_id, None)

    def summaries(self, counts: dict[str, int], skip: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """The SESSIONS_LIST entries of the rooms not in `skip` (this process's own)."""
        entries = []
        at = iso(now)  # compared as text: the same fixed-width UTC format as `endsAt`
        for sid, entry in self._rooms.items():
            if sid in skip:
                continue
            entry = {**entry, "listenerCount": counts.get(sid, 0)}
            announcement = self._announcements.get(sid)
            if announcement is not None and at < announcement.get("endsAt", "~"):
                entry["activeAnnouncement"] = announcement
            entries.append(entry)
        return entries
