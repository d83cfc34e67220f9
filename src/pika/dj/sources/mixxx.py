"""Mixxx: its library database `mixxxdb.sqlite`, whose history ("set log") playlists gain a row per play.

Read without getting in Mixxx's way: a read-only connection (`mode=ro`) opened for each poll and closed
again, a short busy timeout, one SELECT and no transaction left open; a database Mixxx is writing just
now is read on the next poll. Rows are followed by their id, so a poll that fails loses nothing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from importlib.resources import files
from pathlib import Path

from . import Play, SourceError, find_default
from .follow import StartFilter, play_or_none

LABEL = "Mixxx database"
HISTORY_QUERY = (files(__package__) / "mixxx_history.sql").read_text(encoding="utf-8")
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def played_at(added: str | None) -> float | None:
    """PlaylistTracks.pl_datetime_added (UTC, `2026-12-01 21:04:05` or ISO 8601) as epoch seconds."""
    try:
        when = dt.datetime.fromisoformat(str(added))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def plays_of(rows: list[tuple]) -> list[Play]:
    """Plays from rows of mixxx_history.sql: (id, added, artist, title, bpm, key)."""
    plays = []
    for _, added, artist, title, bpm, key in rows:
        tempo = round(float(bpm), 2) if isinstance(bpm, int | float) and 40 <= bpm <= 300 else None
        play = play_or_none(artist, title, played_at(added), bpm=tempo, key=key or None)
        if play is not None:
            plays.append(play)
    return plays


class MixxxSource:
    name = "mixxx"

    def __init__(self, path: Path, started_at: float, catch_up: bool) -> None:
        self.path = path
        self._filter = StartFilter(started_at, catch_up)
        self._after = 0

    def poll(self) -> list[Play]:
        if not self.path.is_file():
            raise SourceError(f"{LABEL} {self.path} not found; check --path")
        try:
            rows = self._read()
        except sqlite3.OperationalError as err:
            code = getattr(err, "sqlite_errorname", "")
            if code in _BUSY:
                return []  # Mixxx is writing; the rows are there next time
            if code != "SQLITE_ERROR":
                raise SourceError(f"cannot read {LABEL} {self.path}: {err}") from None
            raise SourceError(f"{LABEL} {self.path} is not a Mixxx library ({err})") from None
        except sqlite3.DatabaseError as err:
            raise SourceError(f"{LABEL} {self.path} is not a Mixxx library ({err})") from None
        if rows:
            self._after = rows[-1][0]
        return self._filter.admit(plays_of(rows))

    def _read(self) -> list[tuple]:
        connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.2)
        try:
            return connection.execute(HISTORY_QUERY, {"after": self._after}).fetchall()
        finally:
            connection.close()


def open_mixxx(path: Path | None, started_at: float, catch_up: bool) -> MixxxSource:
    return MixxxSource(path or find_default("mixxx", LABEL), started_at, catch_up)
