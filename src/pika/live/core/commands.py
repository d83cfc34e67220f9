"""What can happen to a room, as typed values: the DJ's commands, dancers' actions, timers, stores.

A command carries only what the sender said (already parsed and validated by pika.protocol) and
who said it; `now` comes separately from the one clock.  `Stored`/`WriteFailed` close a DJ
command whose write returns what the room needs (a play id, a poll id, a timestamp);
`Committed`/`Rejected` close a dancer action once its group-commit batch is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pika.live.core.effects import Write
from pika.protocol import TrackInfo


@dataclass(frozen=True, slots=True)
class BroadcastTrack:
    track: TrackInfo
    played_at: float | None = None


@dataclass(frozen=True, slots=True)
class UpdateMetadata:
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class StopTrack:
    pass


@dataclass(frozen=True, slots=True)
class Like:
    client: str
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class CastTempo:
    client: str
    preference: str  # faster | perfect | slower | clear


@dataclass(frozen=True, slots=True)
class Thanks:
    client: str
    reaction: str


@dataclass(frozen=True, slots=True)
class OpenPoll:
    question: str
    options: tuple[str, ...]
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class ClosePoll:
    poll_id: int | None  # None: whichever poll is active
    status: str = "closed"  # closed | cancelled


@dataclass(frozen=True, slots=True)
class PollVote:
    client: str
    poll_id: int
    option_index: int


@dataclass(frozen=True, slots=True)
class Announce:
    message: str
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class CancelAnnouncement:
    pass


@dataclass(frozen=True, slots=True)
class EndSession:
    reason: str = "dj_ended"
    expired: bool = False


@dataclass(frozen=True, slots=True)
class DjLeft:
    """The DJ's connection closed: the session survives `grace` seconds without it."""

    grace: float


@dataclass(frozen=True, slots=True)
class DjBack:
    """The DJ registered again (resumed), under `dj_name`."""

    dj_name: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    name: str


@dataclass(frozen=True, slots=True)
class Stored:
    """The row a `Write(feeds=True)` returned (None: the statement wrote nothing)."""

    row: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class WriteFailed:
    """The database did not answer in time: nothing of the pending command was kept."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A dancer action's batch committed: what it changes in the room happens now, in commit
    order (which is decision order), and its frames go out."""

    action: Like | CastTempo | Thanks | PollVote
    write: Write  # what was committed for it


@dataclass(frozen=True, slots=True)
class Rejected:
    """The database refused a dancer action's row (`reason`): nothing of it was kept."""

    action: Like | CastTempo | Thanks | PollVote
    reason: str


Command = (
    BroadcastTrack
    | UpdateMetadata
    | StopTrack
    | Like
    | CastTempo
    | Thanks
    | OpenPoll
    | ClosePoll
    | PollVote
    | Announce
    | CancelAnnouncement
    | EndSession
    | DjLeft
    | DjBack
    | TimerFired
    | Stored
    | WriteFailed
    | Committed
    | Rejected
)
