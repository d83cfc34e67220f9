"""Session rules: the DJ's grace while away, and the end of a session (by the DJ, grace,
expiry, an admin), after which the room accepts nothing.  Listeners are counted by the room
(listeners.py), outside the turn: a subscriber's arrival is no decision of the room's.
"""

from __future__ import annotations

from dataclasses import replace

from pika.live.core.commands import DjBack, DjLeft, EndSession
from pika.live.core.effects import (
    ANNOUNCEMENT_TIMER,
    GRACE_TIMER,
    POLL_TIMER,
    Audience,
    CancelTimer,
    Effect,
    Send,
    SetTimer,
    TempoClosed,
    Write,
)
from pika.live.core.state import RoomState
from pika.live.core.writes import clear_announcements, close_poll, end_play
from pika.queries import query

END_SESSION = query("end_session")

Decision = tuple[RoomState, tuple[Effect, ...]]


def dj_left(state: RoomState, cmd: DjLeft, now: float) -> Decision:
    return replace(state, dj_away_since=now), (SetTimer(GRACE_TIMER, now + cmd.grace),)


def dj_back(state: RoomState, cmd: DjBack, now: float) -> Decision:
    back = replace(state, dj_name=cmd.dj_name, dj_away_since=None, last_activity=now)
    return back, (CancelTimer(GRACE_TIMER),)


def grace_over(state: RoomState, now: float) -> Decision:
    if state.dj_away_since is None:
        return state, ()
    return end(state, EndSession("grace_expired"), now)


def end(state: RoomState, cmd: EndSession, now: float) -> Decision:
    """Close the poll, clear the announcement, store the tally and `ended_at` (one transaction),
    then tell everyone; the room's timers stop."""
    poll, current, sid = state.poll, state.current, state.session_id
    tempo = state.tempo.counts(now, state.tempo_lapse)
    effects: list[Effect] = []
    if poll is not None:
        effects.append(close_poll(poll.id, "closed"))
    effects.append(clear_announcements(sid))
    if current is not None:
        effects.append(end_play(current.play_id, tempo))
    effects.append(Write(END_SESSION, {"session_id": sid, "reason": cmd.reason}))
    effects += [CancelTimer(POLL_TIMER), CancelTimer(ANNOUNCEMENT_TIMER), CancelTimer(GRACE_TIMER)]
    if poll is not None:
        effects.append(Send((poll.close("closed").ended_message(),), Audience.ROOM))
    if current is not None:
        effects.append(TempoClosed(tempo))
    effects.append(Send(({"type": "SESSION_ENDED", "sessionId": sid},), Audience.EVERYONE))
    if cmd.expired:
        expired = {"type": "SESSION_EXPIRED", "sessionId": sid, "reason": cmd.reason}
        effects.append(Send((expired,), Audience.EVERYONE))
    ended = replace(state, ended=True, end_reason=cmd.reason, poll=None, announcement=None)
    return ended, tuple(effects)
