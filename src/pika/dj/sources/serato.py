"""Serato DJ: the session files `_Serato_/History/Sessions/<n>.session`, one per time Serato is started.

A chunked binary format: a chunk is a 4-letter ASCII tag, a big-endian uint32 length and that many bytes.
The file holds `vrsn` (the version, UTF-16-BE), then `oses` (the session) and one `oent` per deck load,
each holding an `adat` whose fields are (uint32 id, uint32 length, bytes). Field ids, as documented by
What's Now Playing's Serato reader: 1 row, 2 path, 4 file name, 6 title, 7 artist, 15 BPM, 28 start time
(epoch), 31 deck, 50 played (a byte: a track loaded but never played has 0), 51 key. Strings are UTF-16-BE,
NUL-terminated. Serato updates a row (same id) as the track plays, so rows are reported once, when played.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import Play, SourceError, find_default
from .follow import HistoryFolder, StartFilter, Unreported, file_stem, play_or_none, split_artist_title

LABEL = "Serato session history"

ROW, PATH, FILE_NAME, TITLE, ARTIST, BPM, START_TIME, DECK, PLAYED, KEY = 1, 2, 4, 6, 7, 15, 28, 31, 50, 51


class NotASession(ValueError):
    """The bytes are not (the start of) a Serato chunk file."""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One `oent` record: its row id and its fields by id."""

    row: int
    fields: dict[int, bytes]


def chunks(data: bytes) -> list[tuple[str, bytes]]:
    """The complete chunks of `data`, in order; a chunk cut short (Serato writing it) ends the list.
    Raises NotASession when a tag is not four ASCII letters."""
    found: list[tuple[str, bytes]] = []
    offset = 0
    while offset + 8 <= len(data):
        tag = data[offset : offset + 4]
        if not (tag.isascii() and tag.isalpha()):
            raise NotASession(f"no chunk tag at byte {offset}")
        length = int.from_bytes(data[offset + 4 : offset + 8], "big")
        if offset + 8 + length > len(data):
            break
        found.append((tag.decode("ascii"), data[offset + 8 : offset + 8 + length]))
        offset += 8 + length
    return found


def fields(adat: bytes) -> dict[int, bytes]:
    """The fields of an `adat` payload by id (a field cut short is left out)."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(adat):
        field_id = int.from_bytes(adat[offset : offset + 4], "big")
        length = int.from_bytes(adat[offset + 4 : offset + 8], "big")
        if offset + 8 + length > len(adat):
            break
        found[field_id] = adat[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return found


def parse_session(data: bytes) -> list[Entry]:
    """The session's rows, each with its latest fields, in the order they first appear."""
    session = chunks(data)
    if session and session[0][0] != "vrsn":
        raise NotASession(f"starts with {session[0][0]!r}, not 'vrsn'")
    rows: dict[int, dict[int, bytes]] = {}
    for index, (tag, payload) in enumerate(session):
        if tag != "oent":
            continue
        adat = next((body for inner, body in chunks(payload) if inner == "adat"), None)
        if adat is None:
            continue
        record = fields(adat)
        row = _uint(record.get(ROW)) or -index
        rows.setdefault(row, {}).update(record)
    return [Entry(row, record) for row, record in rows.items()]


def play_of(entry: Entry) -> Play | None:
    """The play an entry stands for, or None when it was loaded but never played (or has no title)."""
    record = entry.fields
    if not any(record.get(PLAYED, b"")):
        return None
    artist, title = _text(record.get(ARTIST)), _text(record.get(TITLE))
    if not title:
        artist, title = split_artist_title(file_stem(_text(record.get(FILE_NAME)) or _text(record.get(PATH))))
    started = _uint(record.get(START_TIME))
    return play_or_none(
        artist,
        title,
        float(started) if started else None,
        bpm=_bpm(record.get(BPM)),
        key=_text(record.get(KEY)),
    )


class SeratoSource:
    name = "serato"

    def __init__(self, path: Path, started_at: float, catch_up: bool) -> None:
        start = StartFilter(started_at, catch_up)
        self._history = HistoryFolder(path, "*.session", LABEL, _session_order, start, Unreported, _fresh)

    def poll(self) -> list[Play]:
        return self._history.poll()


def _fresh(path: Path, data: bytes, reported: Unreported[int]) -> list[Play]:
    try:
        entries = parse_session(data)
    except NotASession as err:
        raise SourceError(f"{LABEL} {path} is not a Serato session file ({err})") from None
    played = [(e.row, p) for e in entries if (p := play_of(e)) is not None]
    return sorted(reported.new(played), key=lambda p: p.played_at or 0.0)


def open_serato(path: Path | None, started_at: float, catch_up: bool) -> SeratoSource:
    return SeratoSource(path or find_default("serato", LABEL), started_at, catch_up)


def _session_order(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (-1, path.stem)


def _text(raw: bytes | None) -> str:
    if not raw:
        return ""
    return raw[: len(raw) // 2 * 2].decode("utf-16-be", errors="replace").strip("\x00").strip()


def _uint(raw: bytes | None) -> int:
    return int.from_bytes(raw, "big") if raw and len(raw) <= 8 else 0


def _bpm(raw: bytes | None) -> float | None:
    """BPM is a uint32 in the sessions we know; some versions write it as UTF-16 text."""
    text = _text(raw)
    try:
        bpm = float(text) if text and text.replace(".", "", 1).isdigit() else float(_uint(raw))
    except ValueError:
        return None
    return round(bpm, 2) if 40 <= bpm <= 300 else None
