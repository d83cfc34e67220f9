"""`decide`: one command against a room's state at `now`, by a dispatch table of the rule modules.

An ended room accepts nothing.  While a DJ-side command's write is pending, the shell holds the
room's turn, so no other DJ-side command arrives until its outcome (`Stored`, `WriteFailed`);
dancer actions go on meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pika.live.core import dancers, polls, session, tracks
from pika.live.core.commands import (
    Announce,
    BroadcastTrack,
    CancelAnnouncement,
    CastTempo,
    ClosePoll,
    Command,
    Committed,
    DjBack,
    DjLeft,
    EndSession,
    Like,
    OpenPoll,
    PollVote,
    Rejected,
    StopTrack,
    Stored,
    Thanks,
    TimerFired,
    UpdateMetadata,
    WriteFailed,
)
from pika.live.core.effects import ANNOUNCEMENT_TIMER, GRACE_TIMER, POLL_TIMER, Effect, Refuse
from pika.live.core.state import PendingAnnouncement, PendingPoll, PendingTrack, RoomState

Decision = tuple[RoomState, tuple[Effect, ...]]
Rule = Callable[[RoomState, Any, float], Decision]

NOT_DJ = "Not the DJ of this session"
NOT_LIVE = "Session is not live"

RULES: dict[type, Rule] = {
    BroadcastTrack: tracks.broadcast,
    StopTrack: tracks.stop,
    Like: dancers.like,
    CastTempo: dancers.tempo,
    Thanks: dancers.thanks,
    OpenPoll: polls.open_poll,
    ClosePoll: polls.end_poll,
    PollVote: dancers.vote,
    Committed: dancers.committed,
    UpdateMetadata: tracks.metadata,
    Announce: polls.announce,
    CancelAnnouncement: polls.cancel_announcement,
    EndSession: session.end,
    DjLeft: session.dj_left,
    DjBack: session.dj_back,
}

DANCER = frozenset({Like, CastTempo, Thanks, PollVote})
DJ_SIDE = frozenset(
    {BroadcastTrack, UpdateMetadata, StopTrack, OpenPoll, ClosePoll, Announce, CancelAnnouncement, EndSession}
)
QUIET_WHEN_ENDED = frozenset({TimerFired, DjLeft, DjBack, Committed})
TIMERS: dict[str, Callable[[RoomState, float], Decision]] = {
    POLL_TIMER: polls.poll_due,
    ANNOUNCEMENT_TIMER: polls.announcement_due,
    GRACE_TIMER: session.grace_over,
}


def decide(state: RoomState, command: Command, now: float) -> Decision:
    """The room's next state and the effects to carry out, in order."""
    kind = type(command)
    if kind is Stored or kind is WriteFailed:
        return _settled(state, command, now)
    if kind is Rejected:  # answered even after the end: its sender waits for a NACK
        return dancers.rejected(state, command, now)
    assert state.pending is None or kind not in DJ_SIDE, f"{kind.__name__} while a DJ write is pending"
    if state.ended:
        if kind in QUIET_WHEN_ENDED:
            return state, ()
        return state, (Refuse(NOT_LIVE if kind in DANCER else NOT_DJ),)
    if kind is TimerFired:
        assert isinstance(command, TimerFired)
        return TIMERS[command.name](state, now)
    return RULES[kind](state, command, now)


def _settled(state: RoomState, command: Command, now: float) -> Decision:
    pending = state.pending
    if isinstance(command, WriteFailed):
        if isinstance(pending, PendingTrack):
            return tracks.failed(state, now)
        return replace(state, pending=None), ()
    assert isinstance(command, Stored)
    if isinstance(pending, PendingTrack):
        return tracks.stored(state, pending, command.row, now)
    if isinstance(pending, PendingPoll):
        return polls.poll_stored(state, pending, command.row, now)
    assert isinstance(pending, PendingAnnouncement)
    return polls.announcement_stored(state, pending, command.row, now)
