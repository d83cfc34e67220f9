"""Polls and announcements: the DJ asks and announces, dancers vote.

A poll is written before POLL_STARTED goes out (the DJ learns its id from that broadcast);
a vote is one row per client per poll, enforced by PostgreSQL, before VOTE_CONFIRMED; results
reach the audience coalesced.  Auto-close and announcement expiry are timers in the room's
nursery, re-armed from the database after a restart.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pika.db import Tx, timestamptz
from pika.live import store
from pika.live.announcements import Announcement
from pika.live.polls import Poll, VoteRejected
from pika.live.requests import Refusal, Request, dj_turn
from pika.live.room import Room
from pika.protocol import CancelAnnouncement, CancelPoll, EndPoll, SendAnnouncement, StartPoll, VoteOnPoll
from pika.queries import query

INSERT_POLL = query("insert_poll")
INSERT_POLL_VOTE = query("insert_poll_vote")
GET_POLL = query("get_poll")
INSERT_ANNOUNCEMENT = query("insert_announcement")

POLL_ACTIVE = "A poll is already active"
POLL_NOT_FOUND = "Poll not found"


async def start_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, StartPoll)
    async with dj_turn(req, msg.session_id) as room:
        if room.poll is not None:
            raise Refusal(POLL_ACTIVE)
        play_id = room.current.play_id if room.current else None
        ends_at = room.clock.now() + msg.duration_seconds if msg.duration_seconds else None

        def work(tx: Tx) -> Any:
            req.claim(tx)
            try:
                return tx.one(
                    INSERT_POLL,
                    session_id=room.session_id,
                    play_id=play_id,
                    question=msg.question,
                    options=list(msg.options),
                    ends_at=timestamptz(ends_at) if ends_at else None,
                )
            except psycopg.errors.UniqueViolation:
                raise Refusal(POLL_ACTIVE) from None

        row = await req.hub.db.run(work)
        poll = Poll(
            id=row["id"],
            session_id=room.session_id,
            question=msg.question,
            options=tuple(msg.options),
            started_at=row["started_at"].timestamp(),
            ends_at=ends_at,
        )
        open_poll(req.hub, room, poll)
        room.last_activity = room.clock.now()


def open_poll(hub: Any, room: Room, poll: Poll) -> None:
    """Make `poll` the room's active poll, announce it and arm its auto-close."""
    room.poll = poll
    room.reset_poll_updates()
    room.publish(poll.started_message())
    delay = None if poll.ends_at is None else poll.ends_at - room.clock.now()
    room.arm_poll_timer(delay, lambda: end_poll_now(hub, room, poll.id, "closed"))


async def end_poll_now(hub: Any, room: Room, poll_id: int, status: str, claim: Any = None) -> None:
    """Close (or cancel) the room's active poll: stored first, then POLL_ENDED to the audience.
    The caller holds the room's turn."""
    poll = room.poll
    if poll is None or poll.id != poll_id:
        return

    def work(tx: Tx) -> None:
        if claim is not None:
            claim(tx)
        store.close_poll(tx, poll_id, status)

    await hub.db.run(work)
    room.poll = None
    room.arm_poll_timer(None, lambda: None)
    room.publish(poll.close(status).ended_message())


async def end_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, EndPoll)
    async with dj_turn(req, None) as room:
        await end_poll_now(req.hub, room, _active_poll(room, msg.poll_id), "closed", req.claim)


async def cancel_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, CancelPoll)
    async with dj_turn(req, msg.session_id if msg.poll_id is None else None) as room:
        await end_poll_now(req.hub, room, _active_poll(room, msg.poll_id), "cancelled", req.claim)


def _active_poll(room: Room, poll_id: int | None) -> int:
    """The id of the room's active poll, which must be `poll_id` when one is given."""
    if room.poll is None or (poll_id is not None and room.poll.id != poll_id):
        raise Refusal(POLL_NOT_FOUND)
    return room.poll.id


async def vote_on_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, VoteOnPoll)
    client = req.client()
    room = req.hub.room_of_poll(msg.poll_id)
    if room is None or room.poll is None:
        row = await req.hub.db.one(GET_POLL, poll_id=msg.poll_id)
        _reject(req, VoteRejected.ENDED if row is not None else POLL_NOT_FOUND)
    assert room is not None and room.poll is not None
    if req.conn.subscribed != room.session_id:
        _reject(req, "Not subscribed to this session", room.poll)
    now = room.clock.now()
    try:
        room.poll.vote(client, msg.option_index, now)  # checks ended / option / already, in memory
    except VoteRejected as exc:
        _reject(req, str(exc), room.poll)

    def work(tx: Tx) -> None:
        vote = tx.one(INSERT_POLL_VOTE, poll_id=msg.poll_id, client_id=client, option_index=msg.option_index)
        if vote is None:
            raise _LostRace(VoteRejected.ALREADY_VOTED)  # another tab of this client voted first

    try:
        await req.write(work)
    except _LostRace:
        _reject(req, VoteRejected.ALREADY_VOTED, room.poll)
    poll = room.poll
    if poll is None or poll.id != msg.poll_id:
        return  # closed while the vote was being written: it is stored, the result was already final
    room.poll = poll = poll.vote(client, msg.option_index, now)
    req.conn.send_message(
        {
            "type": "VOTE_CONFIRMED",
            "pollId": poll.id,
            "optionIndex": msg.option_index,
            "votes": poll.votes(),
            "totalVotes": poll.total_votes,
        }
    )
    room.poll_changed()


class _LostRace(Refusal):
    """The vote's insert found this client's vote already stored."""


def _reject(req: Request, reason: str, poll: Poll | None = None) -> None:
    """VOTE_REJECTED to the voter (with the current counts when known), then NACK/ERROR."""
    rejected: dict[str, Any] = {"type": "VOTE_REJECTED", "pollId": req.msg.poll_id, "reason": reason}
    if poll is not None:
        rejected.update(votes=poll.votes(), totalVotes=poll.total_votes)
    req.conn.send_message(rejected)
    raise Refusal(reason)


async def send_announcement(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendAnnouncement)
    async with dj_turn(req, msg.session_id) as room:
        ends_at = room.clock.now() + msg.duration_seconds if msg.duration_seconds else None

        def work(tx: Tx) -> Any:
            req.claim(tx)
            store.clear_announcements(tx, room.session_id)
            return tx.one(
                INSERT_ANNOUNCEMENT,
                session_id=room.session_id,
                message=msg.message,
                dj_name=room.dj_name,
                ends_at=timestamptz(ends_at) if ends_at else None,
            )

        row = await req.hub.db.run(work)
        announcement = Announcement(
            room.session_id, msg.message, room.dj_name, row["created_at"].timestamp(), ends_at
        )
        show_announcement(req.hub, room, announcement)
        if msg.push:
            req.hub.push.announce(room.session_id, room.dj_name, msg.message, ends_at)
        room.last_activity = room.clock.now()


def show_announcement(hub: Any, room: Room, announcement: Announcement) -> None:
    """Make it the room's announcement, broadcast it, and arm its expiry."""
    room.announcement = announcement
    room.publish(announcement.received_message())
    delay = None if announcement.ends_at is None else announcement.ends_at - room.clock.now()
    room.arm_announcement_timer(delay, lambda: clear_announcement_now(hub, room, announcement))


async def clear_announcement_now(
    hub: Any, room: Room, announcement: Announcement | None = None, claim: Any = None
) -> None:
    """Clear the room's announcement (expired, cancelled): stored, then ANNOUNCEMENT_CANCELLED."""
    if announcement is not None and room.announcement is not announcement:
        return  # replaced meanwhile

    def work(tx: Tx) -> None:
        if claim is not None:
            claim(tx)
        store.clear_announcements(tx, room.session_id)

    await hub.db.run(work)
    room.announcement = None
    room.arm_announcement_timer(None, lambda: None)
    room.publish({"type": "ANNOUNCEMENT_CANCELLED", "sessionId": room.session_id})


async def cancel_announcement(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, CancelAnnouncement)
    async with dj_turn(req, msg.session_id) as room:
        await clear_announcement_now(req.hub, room, None, req.claim)
