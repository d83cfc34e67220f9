"""The agent's decisions, without I/O: which play becomes which track, and what a NACK or a close
code means for the queue (how long to wait is pika.backoff's rule, shared by every client).

Pure functions, so the reliability rules are tested in microseconds; the agent only carries them out.
"""

from __future__ import annotations

from enum import Enum

from pika.dj.sources import Play
from pika.protocol import TrackInfo

__all__ = [
    "Close",
    "Nack",
    "close_verdict",
    "nack_verdict",
    "track_of",
]

_TEXT_MAX = 500
_KEY_MAX = 10


def track_of(play: Play) -> TrackInfo | None:
    """The wire track for a play: text trimmed to the protocol's 500 characters, a BPM outside
    40-300 or a key over 10 characters left out (a track is worth more than its tag). None when
    the software gave no artist or no title."""
    artist, title = play.artist.strip()[:_TEXT_MAX], play.title.strip()[:_TEXT_MAX]
    if not artist or not title:
        return None
    bpm = play.bpm if play.bpm is not None and 40 <= play.bpm <= 300 else None
    key = play.key.strip() if play.key and len(play.key.strip()) <= _KEY_MAX else None
    return TrackInfo(title=title, artist=artist, bpm=round(bpm, 2) if bpm else None, key=key or None)


class Nack(Enum):
    RETRY = "retry"  # send again later with the same messageId
    DROP = "drop"  # the server will never take it: show why and take it off the queue


_RETRYABLE = ("Database unavailable", "Rate limit exceeded", "Server busy")


def nack_verdict(error: str) -> Nack:
    """A refused BROADCAST_TRACK: the server's passing troubles are retried (same messageId, safe
    by PROTOCOL.md's idempotent retries); anything about the track itself drops it."""
    return Nack.RETRY if error.startswith(_RETRYABLE) else Nack.DROP


class Close(Enum):
    RECONNECT = "reconnect"  # come back later and resume
    REPLACED = "replaced"  # another connection of this DJ took the session: stop, do not fight it


def close_verdict(code: int | None) -> Close:
    """1012 (restarting), 1013 (busy), 4003 (token revoked: grace starts), a lost network: all
    mean "come back later". Only 4001, another agent or console taking over, stops this one."""
    return Close.REPLACED if code == 4001 else Close.RECONNECT
