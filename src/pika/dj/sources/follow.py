"""The parts every file-following source shares: reading a file without losing entries to a half-written
end or a passing error, telling new entries from ones already reported, and the start-time rule.

Kept apart from the parsers so that each format module is only its format.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import unquote
from xml.etree import ElementTree as ET

from . import Play, SourceError

UNKNOWN_ARTIST = "Unknown artist"
K = TypeVar("K", bound=Hashable)
S = TypeVar("S")


class StartFilter:
    """Leaves out plays from before the agent started.

    A play is from before the start when its software time is earlier than `started_at`, or, having no
    time, when it was already in the history at the first poll (`baseline=True`). With `catch_up`, the
    latest such play is kept, so the dancers see what is on the decks right now: the first time there are
    any, as long as nothing newer has gone out (programs log a track some seconds after it started, so the
    one playing at the start may appear only after it).
    """

    def __init__(self, started_at: float, catch_up: bool) -> None:
        self.started_at = started_at
        self._catching_up = catch_up

    def admit(self, plays: Sequence[Play], *, baseline: bool = False) -> list[Play]:
        def early(play: Play) -> bool:
            return baseline if play.played_at is None else play.played_at < self.started_at

        keep = None
        if self._catching_up:
            keep = next((i for i in range(len(plays) - 1, -1, -1) if early(plays[i])), None)
        admitted = [p for i, p in enumerate(plays) if i == keep or not early(p)]
        self._catching_up = self._catching_up and not admitted
        return admitted


class NewEntries(Generic[K]):
    """Which entries of a history that is re-read whole are new since the last read.

    Each entry comes with a key (its raw text or record). The history grows at its end; when it no longer
    starts with what was seen, it was replaced (rotated, rewritten), and all of it is new. A last entry that
    changed (it was read while still being written) is not reported again.
    """

    def __init__(self) -> None:
        self._seen: list[K] = []

    def new(self, entries: Sequence[tuple[K, Play]]) -> list[tuple[K, Play]]:
        keys = [key for key, _ in entries]
        seen = len(self._seen)
        if keys[:seen] == self._seen or (seen and keys[: seen - 1] == self._seen[:-1] and len(keys) >= seen):
            start = seen  # grown; or its last entry was still being written when it was first read
        else:
            start = 0
        self._seen = keys
        return list(entries[start:])


class Unreported(Generic[K]):
    """Which entries of a history whose records may be rewritten in place (a *played* flag set later)
    have not been reported yet: each record has an identity, and is reported once."""

    def __init__(self) -> None:
        self._reported: set[K] = set()

    def new(self, entries: Sequence[tuple[K, Play]]) -> list[Play]:
        fresh = [(ident, play) for ident, play in entries if ident not in self._reported]
        self._reported.update(ident for ident, _ in fresh)
        return [play for _, play in fresh]


class LineTail:
    """Complete lines of a file written line by line.

    A last line without its newline may still be being written: it counts once it is read unchanged on two
    polls in a row (some programs never end the file with a newline).
    """

    def __init__(self) -> None:
        self._partial: bytes | None = None

    def complete_lines(self, data: bytes) -> list[str]:
        raw = data.split(b"\n")
        tail = raw.pop()
        if tail.strip():
            if tail == self._partial:
                raw.append(tail)
            self._partial = tail
        else:
            self._partial = None
        return [decode_line(line).strip() for line in raw]


def complete_elements(data: bytes, tag: str) -> Iterator[ET.Element]:
    """The complete `tag` elements of an XML document, in document order, parsed as they are reached (a
    caller may `clear()` each one it is done with). A document cut short (still being written) gives those
    before the cut; one that is not XML raises ET.ParseError when the iteration reaches the fault."""
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start not in (b"", b"<"):
        raise ET.ParseError("it does not start with '<'")
    parser = ET.XMLPullParser(events=("end",))
    for offset in range(0, len(data), _XML_STEP):
        parser.feed(data[offset : offset + _XML_STEP])  # a fault comes out of read_events, in its place
        yield from (elem for _, elem in parser.read_events() if elem.tag == tag)


_XML_STEP = 1 << 16


def decode_line(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, the two encodings DJ programs write playlists in."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


class WrittenFile:
    """One file the software writes, read whole each poll. A file written anew (deleted, then created) may
    be missing for a moment: that is no error; missing on two polls in a row is, so a wrong --path or a
    program that stopped writing shows."""

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        self._missed = 0

    def read(self) -> bytes | None:
        data = read_bytes(self.path, self.label)
        self._missed = 0 if data is not None else self._missed + 1
        if self._missed >= 2:
            raise SourceError(
                f"{self.label} {self.path} not found; check --path (is the DJ software writing it?)"
            )
        return data


def xml_elements(data: bytes, tag: str, path: Path, label: str) -> list[ET.Element]:
    """complete_elements, with a document that is not XML as a SourceError naming the file."""
    try:
        return list(complete_elements(data, tag))
    except ET.ParseError as err:
        raise SourceError(f"{label} {path} is not readable XML ({err}); is it the right file?") from None


def read_bytes(path: Path, label: str) -> bytes | None:
    """The file's bytes; None while it does not exist; SourceError when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise SourceError(f"{label} {path} is a folder, not a file; pass the file with --path") from None
    except OSError as err:
        raise SourceError(
            f"cannot read {label} {path}: {err.strerror}; check the file's permissions"
        ) from None


def split_artist_title(text: str) -> tuple[str, str]:
    """'Artist - Title' -> (artist, title); without a separator the whole text is the title."""
    for sep in (" - ", " – ", " — "):
        artist, found, title = text.partition(sep)
        if found and artist.strip() and title.strip():
            return artist.strip(), title.strip()
    return UNKNOWN_ARTIST, text.strip()


def file_stem(path: str) -> str:
    """The name of a track's file without folder and extension, from a path or file:// URL of any OS."""
    name = re.split(r"[\\/]", unquote(path.removeprefix("file://")))[-1]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and len(ext) <= 5 else name


def play_or_none(
    artist: str | None,
    title: str | None,
    played_at: float | None,
    *,
    bpm: float | None = None,
    key: str | None = None,
) -> Play | None:
    """A Play with trimmed fields, or None when there is no title to show."""
    title = (title or "").strip()
    if not title:
        return None
    artist = (artist or "").strip() or UNKNOWN_ARTIST
    return Play(artist=artist, title=title, played_at=played_at, bpm=bpm, key=key or None)


class HistoryFolder(Generic[S]):
    """The poll of a source whose software starts a new history file now and then (a new day, a new
    session) in one folder: it follows the newest by `order`, and a path to one file follows that file.

    Each poll reads the files whole and asks `fresh(path, data, state)` for their new plays (`state` is
    the file's own, made by `new_state`); when a newer file appears, the old one is read a last time, so
    nothing written to it at the switch is lost.
    """

    def __init__(
        self,
        path: Path,
        pattern: str,
        label: str,
        order: Callable[[Path], Any],
        start: StartFilter,
        new_state: Callable[[], S],
        fresh: Callable[[Path, bytes, S], list[Play]],
    ) -> None:
        self.path = path
        self.pattern = pattern
        self.label = label
        self.order = order
        self._start = start
        self._new_state = new_state
        self._fresh = fresh
        self._states: dict[Path, S] = {}
        self._current: Path | None = None
        self._first = True

    def poll(self) -> list[Play]:
        files = self._files()
        # What is learnt from the files is kept only if the whole poll succeeds: a SourceError from one
        # file must not swallow the new plays already read from another.
        states = copy.deepcopy(self._states)
        plays: list[Play] = []
        for path in files:
            data = read_bytes(path, self.label)
            if data is not None:
                plays += self._fresh(path, data, states.setdefault(path, self._new_state()))
        admitted = self._start.admit(plays, baseline=self._first)
        self._first = False
        self._current = files[-1] if files else None
        self._states = {p: s for p, s in states.items() if p == self._current}
        return admitted

    def _files(self) -> list[Path]:
        """The files to read, oldest first: the one followed so far and, if another, the newest."""
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise SourceError(f"{self.label} {self.path} not found; check --path")
        try:
            newest = max(self.path.rglob(self.pattern), key=self.order, default=None)
        except OSError as err:
            raise SourceError(f"cannot list {self.label} folder {self.path}: {err.strerror}") from None
        return list(dict.fromkeys(f for f in (self._current, newest) if f is not None))
