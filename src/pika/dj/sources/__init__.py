"""Sources: what the DJ software says was played, read from its own files.

Each source follows one program's history (a file, a folder of files, a database, stdin) and hands the agent
the plays that are new since its last poll. Parsing is pure (bytes or text in, plays out) in each module;
reading files stays at the edge, so a half-written or unreadable file never loses an entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Play:
    """One track the DJ software reports as played."""

    artist: str
    title: str
    played_at: float | None  # epoch seconds the software says it started; None when it does not say
    bpm: float | None = None
    key: str | None = None


class SourceError(Exception):
    """A one-line message a DJ can act on: which file, what is wrong, what to do."""


class Source(Protocol):
    """Follows one DJ program. `poll` returns the plays new since the last call, in play order.

    Synchronous and cheap (called from a worker thread about once a second). Raises SourceError when the
    history cannot be read; the next poll after the cause is gone returns everything missed meanwhile.
    """

    name: str

    def poll(self) -> list[Play]: ...


SOURCES: tuple[str, ...] = ("virtualdj", "serato", "traktor", "mixxx", "m3u", "text", "stdin")


def default_paths(name: str) -> list[Path]:
    """Where `name` looks when no --path is given, in order (home-relative; Linux, macOS and Windows
    places in one list, the first that exists wins). A `*` in a path part is a glob (Traktor's version)."""
    home = Path.home()
    return [home / rel for rel in _DEFAULT_PLACES.get(_known(name), ())]


def open_source(name: str, path: Path | None, *, started_at: float, catch_up: bool) -> Source:
    """The source `name` following `path` (or its usual place). Plays that started before `started_at`
    are left out, except that with `catch_up` the latest of them is reported by the first poll.
    Raises SourceError for an unknown name or when nothing can be found to follow."""
    opener = _openers()[_known(name)]
    return opener(path, started_at, catch_up)


def find_default(name: str, label: str) -> Path:
    """The first of `default_paths(name)` that exists (a glob: its most recently modified match)."""
    candidates = default_paths(name)
    for candidate in candidates:
        if "*" in str(candidate):
            anchor = Path(candidate.anchor)
            matches = list(anchor.glob(str(candidate.relative_to(anchor))))
            if matches:
                return max(matches, key=lambda m: m.stat().st_mtime)
        elif candidate.exists():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise SourceError(f"{label} not found in {tried}; pass --path")


_DEFAULT_PLACES: dict[str, tuple[str, ...]] = {
    "virtualdj": (
        "Documents/VirtualDJ/History",  # Windows and macOS default home folder
        "Library/Application Support/VirtualDJ/History",  # macOS, newer installs
        "AppData/Local/VirtualDJ/History",  # Windows, newer installs
    ),
    "serato": ("Music/_Serato_/History/Sessions",),  # macOS and Windows alike
    "traktor": ("Documents/Native Instruments/Traktor */History",),  # Traktor 3.x.y on macOS and Windows
    "mixxx": (
        ".mixxx/mixxxdb.sqlite",  # Linux up to 2.4
        ".local/share/mixxx/mixxxdb.sqlite",  # Linux, XDG data dir
        "Library/Containers/org.mixxx.mixxx/Data/Library/Application Support/Mixxx/mixxxdb.sqlite",  # macOS
        "Library/Application Support/Mixxx/mixxxdb.sqlite",  # macOS, unsandboxed builds
        "AppData/Local/Mixxx/mixxxdb.sqlite",  # Windows
    ),
}


def _known(name: str) -> str:
    if name not in SOURCES:
        raise SourceError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
    return name


def _openers() -> dict[str, Callable[[Path | None, float, bool], Source]]:
    # Imported here: each module imports Play/SourceError from this one.
    from . import lines, mixxx, serato, traktor, virtualdj

    return {
        "virtualdj": virtualdj.open_virtualdj,
        "serato": serato.open_serato,
        "traktor": traktor.open_traktor,
        "mixxx": mixxx.open_mixxx,
        "m3u": lines.open_m3u,
        "text": lines.open_text,
        "stdin": lines.open_stdin,
    }
