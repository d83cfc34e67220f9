"""VirtualDJ: the day's history `History/YYYY-MM-DD.m3u`, appended to as each track is played.

Each entry is an `#EXTVDJ:` line (`<artist>`, `<title>`, `<remix>`, `<lastplaytime>` epoch seconds, …)
followed by the file's path. BPM and key come from VirtualDJ's `database.xml` (next to `History/`) when
it knows the file; it stores BPM as the length of a beat in seconds.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from . import Play, SourceError, find_default
from .follow import HistoryFolder, LineTail, NewEntries, StartFilter, complete_elements, read_bytes
from .lines import parse_m3u

LABEL = "VirtualDJ history"
_DAY_FILE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclasses.dataclass(frozen=True, slots=True)
class Analysis:
    """What VirtualDJ's database knows of a file."""

    bpm: float | None
    key: str | None


def bpm_from_vdj(raw: str | None) -> float | None:
    """VirtualDJ's `Bpm` attribute (seconds per beat, e.g. 0.46875) as beats per minute; None when absent or
    outside 40-300 (what a track can carry)."""
    try:
        value = float(raw or "")
    except ValueError:
        return None
    if not 0 < value < 1e6:
        return None
    bpm = value if value >= 40 else 60.0 / value
    return round(bpm, 2) if 40 <= bpm <= 300 else None


def parse_database(data: bytes) -> dict[str, Analysis]:
    """File path -> analysis, for every `<Song>` with a scanned BPM or key. A file cut short (VirtualDJ
    writing it) gives the songs read before the cut."""
    songs: dict[str, Analysis] = {}
    try:
        for song in complete_elements(data, "Song"):
            analysis = _analysis_of(song)
            if analysis is not None:
                songs[song.get("FilePath", "")] = analysis
            song.clear()  # a big library stays small in memory
    except ET.ParseError:
        pass  # not (or no longer) a database VirtualDJ wrote: what was read before the fault is kept
    return songs


def _analysis_of(song: ET.Element) -> Analysis | None:
    scan, tags = song.find("Scan"), song.find("Tags")
    bpm = bpm_from_vdj(scan.get("Bpm") if scan is not None else None)
    if bpm is None and tags is not None:
        bpm = bpm_from_vdj(tags.get("Bpm"))
    key = (scan.get("Key") if scan is not None else None) or (tags.get("Key") if tags is not None else None)
    return Analysis(bpm, key or None) if (bpm or key) and song.get("FilePath") else None


class VirtualDJSource:
    name = "virtualdj"

    def __init__(self, path: Path, started_at: float, catch_up: bool) -> None:
        start = StartFilter(started_at, catch_up)
        self._history = HistoryFolder(path, "*.m3u", LABEL, _day_order, start, _DayFile, self._fresh)
        home = path if path.is_dir() else path.parent
        self._database_path = home.parent / "database.xml"
        self._database: dict[str, Analysis] = {}
        self._database_stamp: tuple[int, int] | None = None

    def poll(self) -> list[Play]:
        return self._history.poll()

    def _fresh(self, path: Path, data: bytes, day: _DayFile) -> list[Play]:
        new = day.entries.new(parse_m3u(day.tail.complete_lines(data)))
        if not new:
            return []
        database = self._analysis()
        return [_with(play, database.get(key[-1])) for key, play in new]

    def _analysis(self) -> dict[str, Analysis]:
        try:
            stat = self._database_path.stat()
        except OSError:
            return self._database
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._database_stamp:
            try:
                data = read_bytes(self._database_path, "VirtualDJ database")
            except SourceError:
                return self._database  # BPM and key are a bonus; the plays go out without them
            self._database = parse_database(data or b"")
            self._database_stamp = stamp
        return self._database


def open_virtualdj(path: Path | None, started_at: float, catch_up: bool) -> VirtualDJSource:
    return VirtualDJSource(path or find_default("virtualdj", LABEL), started_at, catch_up)


@dataclasses.dataclass
class _DayFile:
    entries: NewEntries[tuple[str, ...]] = dataclasses.field(default_factory=NewEntries)
    tail: LineTail = dataclasses.field(default_factory=LineTail)


def _day_order(path: Path) -> tuple[bool, str]:
    return bool(_DAY_FILE.fullmatch(path.stem)), path.stem


def _with(play: Play, analysis: Analysis | None) -> Play:
    if analysis is None:
        return play
    return dataclasses.replace(play, bpm=analysis.bpm, key=analysis.key)
