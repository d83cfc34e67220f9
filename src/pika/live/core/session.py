"""Session rules: listeners joining and leaving (PROTOCOL.md §7), the DJ's grace while away,
and the end of a session (by the DJ, grace, expiry, an admin), after which the room accepts nothing.
"""

from __future__ import annotations

from dataclasses import replace

from pika.live.core.commands import DjBack, DjLeft, EndSession, Leave, Subscribe
from pika.live.core.effects import (
    ANNOUNCEMENT_TIMER,
    GRACE_TIMER,
    POLL_TIMER,
    Audience,
    CancelTimer,
    Effect,
    Poke,
    Send,
    SetTimer,
    TempoClosed,
    Write,
)
from pika.live.core.state import RoomState
from pika.live.core.writes import clear_announcements, close_poll, end_play
from pika.queries import query

END_SESSION = query("end_session")
LISTENERS_CHANGED = Poke("listeners")

Decision = tuple[RoomState, tuple[Effect, ...]]


def subscribe(state: RoomState, cmd: Subscribe, now: float) -> Decision:
    state.listeners.join(cmd.client)
    return state, (LISTENERS_CHANGED,)


def leave(state: RoomState, cmd: Leave, now: float) -> Decision:
    state.listeners.leave(cmd.client, now)
    return state, (LISTENERS_CHANGED,)


def dj_left(state: RoomState, cmd: DjLeft, now: float) -> Decision:
    return replace(state, dj_away_since=now), (SetTimer(GRACE_TIMER, now + cmd.grace),)


def dj_back(state: RoomState, _: DjBack, now: float) -> Decision:
    return replace(state, dj_away_since=None, last_activity=now), (CancelTimer(GRACE_TIMER),)


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
        effects += end_play(current.play_id, tempo)
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
    return replace(state, ended=True, poll=None, announcement=None), tuple(effects)
