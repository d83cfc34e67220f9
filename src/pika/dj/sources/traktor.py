"""Traktor: its history playlists `History/history_YYYY_MM_DD_HHhMMmSSs.nml`, rewritten as the set goes on.

The NML's `COLLECTION/ENTRY` elements carry each track (ARTIST, TITLE, `LOCATION`, `TEMPO BPM`,
`MUSICAL_KEY VALUE`); the history playlist's entries, in play order, point at them by
`PRIMARYKEY KEY` (volume + dir + file) and say when and whether the track went out
(`EXTENDEDDATA STARTDATE/STARTTIME`, `PLAYEDPUBLIC="0"` for a track only cued in the headphones).
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

from . import Play, find_default
from .follow import HistoryFolder, StartFilter, Unreported, play_or_none, xml_elements

LABEL = "Traktor history"
# MUSICAL_KEY VALUE: 0-11 the major keys from C up by semitones, 12-23 the minor ones.
_PITCHES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

Ident = tuple[str, str, str, str, int]


def parse_history(entries: list[ET.Element]) -> list[tuple[Ident, Play]]:
    """(identity, play) for each history entry played out loud, in play order, from the NML's complete
    `ENTRY` elements (collection and playlist alike)."""
    tracks: dict[str, tuple[str | None, str | None, float | None, str | None]] = {}
    plays: list[tuple[Ident, Play]] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for elem in entries:
        location, primary = elem.find("LOCATION"), elem.find("PRIMARYKEY")
        if location is not None:
            tracks[_location_key(location)] = _track(elem)
        elif primary is not None:
            extended = elem.find("EXTENDEDDATA")
            if extended is not None and extended.get("PLAYEDPUBLIC") == "0":
                continue
            key = primary.get("KEY", "")
            times = ("", "", "") if extended is None else tuple(extended.get(a, "") for a in _WHEN)
            ident_base = (key, *times)
            seen[ident_base] = seen.get(ident_base, 0) + 1
            artist, title, bpm, musical_key = tracks.get(key, (None, None, None, None))
            play = play_or_none(artist, title, _played_at(extended), bpm=bpm, key=musical_key)
            if play is not None:
                plays.append(((*ident_base, seen[ident_base]), play))
    return plays


_WHEN = ("STARTDATE", "STARTTIME", "DECK")


def _location_key(location: ET.Element) -> str:
    return location.get("VOLUME", "") + location.get("DIR", "") + location.get("FILE", "")


def _track(entry: ET.Element) -> tuple[str | None, str | None, float | None, str | None]:
    tempo, musical_key = entry.find("TEMPO"), entry.find("MUSICAL_KEY")
    bpm = None
    if tempo is not None:
        try:
            bpm = round(float(tempo.get("BPM", "")), 2)
        except ValueError:
            bpm = None
    key = None
    if musical_key is not None and musical_key.get("VALUE", "").isdigit():
        value = int(musical_key.get("VALUE", ""))
        key = _PITCHES[value % 12] + ("m" if value >= 12 else "") if value < 24 else None
    return entry.get("ARTIST"), entry.get("TITLE"), bpm if bpm and 40 <= bpm <= 300 else None, key


def _played_at(extended: ET.Element | None) -> float | None:
    """STARTDATE packs the local date: year << 16 | month << 8 | day; STARTTIME: seconds since midnight."""
    if extended is None:
        return None
    try:
        packed, seconds = int(extended.get("STARTDATE", "")), int(extended.get("STARTTIME", ""))
        day = dt.datetime(packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF)
    except ValueError:
        return None
    return day.timestamp() + seconds


class TraktorSource:
    name = "traktor"

    def __init__(self, path: Path, started_at: float, catch_up: bool) -> None:
        start = StartFilter(started_at, catch_up)
        self._history = HistoryFolder(path, "history_*.nml", LABEL, _by_name, start, Unreported, _fresh)

    def poll(self) -> list[Play]:
        return self._history.poll()


def _fresh(path: Path, data: bytes, reported: Unreported[Ident]) -> list[Play]:
    return reported.new(parse_history(xml_elements(data, "ENTRY", path, LABEL)))


def _by_name(path: Path) -> str:
    return path.name  # history_YYYY_MM_DD_HHhMMmSSs.nml: the name sorts by time


def open_traktor(path: Path | None, started_at: float, catch_up: bool) -> TraktorSource:
    return TraktorSource(path or find_default("traktor", LABEL), started_at, catch_up)
