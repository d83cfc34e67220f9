"""Poll and announcement rules (PROTOCOL.md §3.1, §3.2 VOTE_ON_POLL): one active poll per
session, one ballot per client, auto-close and expiry by timer; an announcement replaces the
previous one.  The poll's id and the announcement's timestamp come back from their writes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pika.db import timestamptz
from pika.live.announcements import Announcement
from pika.live.core.commands import Announce, CancelAnnouncement, ClosePoll, OpenPoll
from pika.live.core.effects import (
    ANNOUNCEMENT_TIMER,
    POLL_TIMER,
    Audience,
    CancelTimer,
    Effect,
    Poke,
    Refuse,
    Send,
    SetTimer,
    Write,
)
from pika.live.core.state import PendingAnnouncement, PendingPoll, RoomState
from pika.live.core.writes import clear_announcements, close_poll
from pika.live.polls import Poll
from pika.queries import query

INSERT_POLL = query("insert_poll")
INSERT_ANNOUNCEMENT = query("insert_announcement")

POLL_ACTIVE = "A poll is already active"
POLL_NOT_FOUND = "Poll not found"

Decision = tuple[RoomState, tuple[Effect, ...]]


def open_poll(state: RoomState, cmd: OpenPoll, now: float) -> Decision:
    if state.poll is not None:
        return state, (Refuse(POLL_ACTIVE),)
    ends_at = now + cmd.duration if cmd.duration else None
    insert = Write(
        INSERT_POLL,
        {
            "session_id": state.session_id,
            "play_id": state.current.play_id if state.current else None,
            "question": cmd.question,
            "options": list(cmd.options),
            "ends_at": timestamptz(ends_at) if ends_at else None,
        },
        feeds=True,
    )
    return replace(state, pending=PendingPoll(cmd.question, cmd.options, ends_at)), (insert,)


def poll_stored(state: RoomState, pending: PendingPoll, row: dict[str, Any] | None, now: float) -> Decision:
    """The poll's row came back (None: another poll of the session is active in the database)."""
    if row is None:
        return replace(state, pending=None), (Refuse(POLL_ACTIVE),)
    poll = Poll(
        id=row["id"],
        session_id=state.session_id,
        question=pending.question,
        options=pending.options,
        started_at=row["started_at"].timestamp(),
        ends_at=pending.ends_at,
    )
    state = replace(state, pending=None, poll=poll, last_activity=now)
    timer: Effect = CancelTimer(POLL_TIMER) if poll.ends_at is None else SetTimer(POLL_TIMER, poll.ends_at)
    return state, (Poke("poll_reset"), Send((poll.started_message(),), Audience.ROOM), timer)


def end_poll(state: RoomState, cmd: ClosePoll, now: float) -> Decision:
    poll = state.poll
    if poll is None or (cmd.poll_id is not None and poll.id != cmd.poll_id):
        return state, (Refuse(POLL_NOT_FOUND),)
    return _closed(state, poll, cmd.status)


def poll_due(state: RoomState, now: float) -> Decision:
    """The auto-close timer fired: close the poll if its time has come (else wait again)."""
    poll = state.poll
    if poll is None or poll.ends_at is None:
        return state, ()
    if not poll.ended(now):
        return state, (SetTimer(POLL_TIMER, poll.ends_at),)
    return _closed(state, poll, "closed")


def _closed(state: RoomState, poll: Poll, status: str) -> Decision:
    ended = Send((poll.close(status).ended_message(),), Audience.ROOM)
    return replace(state, poll=None), (close_poll(poll.id, status), CancelTimer(POLL_TIMER), ended)


def announce(state: RoomState, cmd: Announce, now: float) -> Decision:
    ends_at = now + cmd.duration if cmd.duration else None
    insert = Write(
        INSERT_ANNOUNCEMENT,
        {
            "session_id": state.session_id,
            "message": cmd.message,
            "dj_name": state.dj_name,
            "ends_at": timestamptz(ends_at) if ends_at else None,
        },
        feeds=True,
    )
    pending = PendingAnnouncement(cmd.message, ends_at)
    return replace(state, pending=pending), (clear_announcements(state.session_id), insert)


def announcement_stored(
    state: RoomState, pending: PendingAnnouncement, row: dict[str, Any] | None, now: float
) -> Decision:
    assert row is not None  # an insert without a condition always returns its row
    shown = Announcement(
        state.session_id, pending.message, state.dj_name, row["created_at"].timestamp(), pending.ends_at
    )
    state = replace(state, pending=None, announcement=shown, last_activity=now)
    end = shown.ends_at
    timer: Effect = CancelTimer(ANNOUNCEMENT_TIMER) if end is None else SetTimer(ANNOUNCEMENT_TIMER, end)
    return state, (Send((shown.received_message(),), Audience.ROOM), timer)


def cancel_announcement(state: RoomState, _: CancelAnnouncement, now: float) -> Decision:
    return _cleared(state)


def announcement_due(state: RoomState, now: float) -> Decision:
    shown = state.announcement
    if shown is None or shown.ends_at is None:
        return state, ()
    if shown.active(now):
        return state, (SetTimer(ANNOUNCEMENT_TIMER, shown.ends_at),)
    return _cleared(state)


def _cleared(state: RoomState) -> Decision:
    cancelled = Send(({"type": "ANNOUNCEMENT_CANCELLED", "sessionId": state.session_id},), Audience.ROOM)
    effects = (clear_announcements(state.session_id), CancelTimer(ANNOUNCEMENT_TIMER), cancelled)
    return replace(state, announcement=None), effects
