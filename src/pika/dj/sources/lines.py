"""Line-based sources: an M3U/M3U8 playlist the DJ software appends to, a "now playing" text file it
rewrites, and stdin. `parse_m3u` also reads VirtualDJ's `#EXTVDJ:` history lines.
"""

from __future__ import annotations

import html
import queue
import re
import sys
import threading
from pathlib import Path
from typing import TextIO

from . import Play, SourceError
from .follow import (
    LineTail,
    NewEntries,
    StartFilter,
    WrittenFile,
    decode_line,
    file_stem,
    play_or_none,
    split_artist_title,
)

_VDJ_TAG = re.compile(r"<(\w+)>(.*?)</\1>", re.DOTALL)


def parse_m3u(lines: list[str]) -> list[tuple[tuple[str, ...], Play]]:
    """(key, play) for each complete entry: a path line with the `#EXTINF`/`#EXTVDJ` lines before it.

    The key is the entry's text, so a re-read tells old entries from new ones. Without tags the track is
    taken from `#EXTINF:len,Artist - Title`, else from the file name ("Artist - Title.mp3").
    """
    entries: list[tuple[tuple[str, ...], Play]] = []
    meta: list[str] = []
    for line in lines:
        if not line or line.upper() == "#EXTM3U":
            continue
        if line.startswith("#"):
            meta.append(line)
            continue
        play = _m3u_entry(meta, line)
        if play is not None:
            entries.append(((*meta, line), play))
        meta = []
    return entries


def vdj_tags(line: str) -> dict[str, str]:
    """The `<tag>value</tag>` pairs of an `#EXTVDJ:` line, unescaped."""
    return {tag.lower(): html.unescape(value).strip() for tag, value in _VDJ_TAG.findall(line)}


def _m3u_entry(meta: list[str], path_line: str) -> Play | None:
    for line in meta:
        if line.startswith("#EXTVDJ:"):
            tags = vdj_tags(line)
            title = tags.get("title", "")
            remix = tags.get("remix", "")
            if remix and remix.lower() not in title.lower():
                title = f"{title} ({remix})"
            played_at = float(tags["lastplaytime"]) if tags.get("lastplaytime", "").isdigit() else None
            if tags.get("artist") or tags.get("title"):
                return play_or_none(tags.get("artist"), title, played_at)
    for line in meta:
        if line.startswith("#EXTINF:"):
            _, _, text = line.partition(",")
            if text.strip():
                return play_or_none(*split_artist_title(text), None)
    return play_or_none(*split_artist_title(file_stem(path_line)), None)


class M3USource:
    """Follows one M3U/M3U8 file that the software appends to (or rewrites with more entries)."""

    name = "m3u"

    def __init__(self, path: Path, started_at: float, catch_up: bool) -> None:
        self._file = WrittenFile(path, "playlist")
        self._filter = StartFilter(started_at, catch_up)
        self._entries: NewEntries[tuple[str, ...]] = NewEntries()
        self._tail = LineTail()
        self._first = True

    def poll(self) -> list[Play]:
        data = self._file.read()
        first, self._first = self._first, False
        fresh = [] if data is None else self._entries.new(parse_m3u(self._tail.complete_lines(data)))
        return self._filter.admit([play for _, play in fresh], baseline=first)


class TextSource:
    """Follows a "now playing" file rewritten with one `Artist - Title` line: each change is a new play.

    A changed line counts once it ends with a newline or reads the same on two polls in a row (a rewrite
    may be caught half-done). What the file says at the first poll is what was playing before the start.
    """

    name = "text"

    def __init__(self, path: Path, started_at: float, catch_up: bool) -> None:
        self._file = WrittenFile(path, "now-playing file")
        self._filter = StartFilter(started_at, catch_up)
        self._current: str | None = None
        self._last_read: str | None = None
        self._first = True

    def poll(self) -> list[Play]:
        data = self._file.read() or b""
        line = next((x.strip() for x in decode_line(data).splitlines() if x.strip()), None)
        complete = data.endswith(b"\n") or line == self._last_read
        self._last_read = line
        first, self._first = self._first, False
        if not first and (line is None or not complete or line == self._current):
            return []
        self._current = line
        play = play_or_none(*split_artist_title(line), None) if line else None
        return self._filter.admit([play] if play else [], baseline=first)


class StdinSource:
    """One `Artist - Title` line per track, typed or piped in; a thread reads, `poll` drains."""

    name = "stdin"

    def __init__(self, stream: TextIO) -> None:
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(stream,), name="pika-dj-stdin", daemon=True).start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            self._lines.put(line)

    def poll(self) -> list[Play]:
        plays = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return plays
            play = play_or_none(*split_artist_title(line.strip()), None)
            if play is not None:
                plays.append(play)


def open_m3u(path: Path | None, started_at: float, catch_up: bool) -> M3USource:
    return M3USource(_required(path, "m3u"), started_at, catch_up)


def open_text(path: Path | None, started_at: float, catch_up: bool) -> TextSource:
    return TextSource(_required(path, "text"), started_at, catch_up)


def open_stdin(path: Path | None, started_at: float, catch_up: bool) -> StdinSource:
    return StdinSource(sys.stdin)


def _required(path: Path | None, name: str) -> Path:
    if path is None:
        raise SourceError(f"--source {name} needs --path FILE (the file the DJ software writes)")
    return path
