"""The agent's on-disk queue (stdlib sqlite3): every play not yet ACKed, in play order, with the
messageId it will be sent with until the server confirms it; the set's confirmed tracks (for the
end-of-set sync); and each session's resumeKey, so a restarted agent resumes its session.

A play is written here before anything is sent, in one transaction with the dedupe check, so a
crash, a Wi-Fi cut or a laptop lid never loses or doubles a track.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from pika.protocol import TrackInfo

__all__ = ["Entry", "Outbox", "default_queue_path"]

_SQL = files(__package__) / "outbox_sql"


def _sql(name: str) -> str:
    """A statement of the queue file, from `outbox_sql/<name>.sql` (no SQL lives in Python)."""
    return (_SQL / f"{name}.sql").read_text(encoding="utf-8")


SCHEMA, LAST_MATCH, SET_LAST_MATCH, INSERT_ENTRY, PENDING = map(
    _sql, ("schema", "last_match", "set_last_match", "insert_entry", "pending")
)
DELETE_ENTRY, INSERT_SETLIST, SETLIST, RESUME_KEY, KEEP_RESUME_KEY = map(
    _sql, ("delete_entry", "insert_setlist", "setlist", "resume_key", "keep_resume_key")
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued BROADCAST_TRACK: sent, and re-sent, always with this messageId."""

    seq: int
    session_id: str
    message_id: str
    track: dict[str, Any]  # the wire TrackInfo: title, artist, bpm?, key?
    played_at: float  # epoch seconds the DJ played it: the server's flood guard judges this timeline

    def __str__(self) -> str:
        return f"{self.track['artist']} - {self.track['title']}"


def default_queue_path() -> Path:
    """The queue file in the user's data folder: `$XDG_DATA_HOME/pika` or `~/.local/share/pika` on
    Linux, `~/Library/Application Support/Pika` on macOS, `%LOCALAPPDATA%\\Pika` on Windows."""
    home = Path.home()
    if sys.platform == "darwin":
        folder = home / "Library" / "Application Support" / "Pika"
    elif sys.platform == "win32":
        folder = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "Pika"
    else:
        folder = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "pika"
    return folder / "dj-queue.sqlite"


class Outbox:
    """The queue file, open for one agent. Calls are short local transactions (made in the trio
    thread: a few hundred microseconds each, fsync included, a handful per track)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, session_id: str, track: TrackInfo, played_at: float) -> Entry | None:
        """Queue a play, unless it is the same track as the session's last one (reported twice in a
        row: sent once). Returns the new entry, or None when it was a repeat."""
        with self._transaction():
            row = self._db.execute(LAST_MATCH, (session_id,)).fetchone()
            if row is not None and row[0] == track.match_key:
                return None
            self._db.execute(SET_LAST_MATCH, (session_id, track.match_key))
            message_id = f"pika-dj-{secrets.token_hex(12)}"
            wire = json.dumps(track.to_wire(), ensure_ascii=False)
            cur = self._db.execute(INSERT_ENTRY, (session_id, message_id, wire, played_at))
            assert cur.lastrowid is not None
            return Entry(cur.lastrowid, session_id, message_id, track.to_wire(), played_at)

    def pending(self, session_id: str) -> list[Entry]:
        """Everything not yet confirmed for this session, oldest first."""
        rows = self._db.execute(PENDING, (session_id,)).fetchall()
        return [Entry(seq, sid, mid, json.loads(track), at) for seq, sid, mid, track, at in rows]

    def confirmed(self, entry: Entry) -> None:
        """The server ACKed it: off the queue, onto the set list."""
        with self._transaction():
            if self._db.execute(DELETE_ENTRY, (entry.seq,)).rowcount:
                self._db.execute(
                    INSERT_SETLIST,
                    (entry.session_id, json.dumps(entry.track, ensure_ascii=False)),
                )

    def dropped(self, entry: Entry) -> None:
        """The server refused it for good (a NACK that a retry cannot fix)."""
        with self._transaction():
            self._db.execute(DELETE_ENTRY, (entry.seq,))

    def setlist(self, session_id: str) -> list[dict[str, Any]]:
        """The session's confirmed tracks, in play order."""
        rows = self._db.execute(SETLIST, (session_id,)).fetchall()
        return [json.loads(track) for (track,) in rows]

    def resume_key(self, session_id: str) -> str | None:
        row = self._db.execute(RESUME_KEY, (session_id,)).fetchone()
        return None if row is None else row[0]

    def keep_resume_key(self, session_id: str, resume_key: str) -> None:
        with self._transaction():
            self._db.execute(KEEP_RESUME_KEY, (session_id, resume_key))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
