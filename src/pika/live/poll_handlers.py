"""Polls and announcements: the DJ asks and announces, dancers vote.

The rules are the room core's (live/core/polls.py, dancers.py): a poll is stored before
POLL_STARTED goes out (the DJ learns its id from that broadcast); a vote is one row per client
per poll, enforced by PostgreSQL, before VOTE_CONFIRMED; results reach the audience coalesced;
auto-close and announcement expiry are room timers, re-armed from the database after a restart.
"""

from __future__ import annotations

import contextlib

from pika.live.core import commands as core
from pika.live.core.state import RoomState
from pika.live.polls import VoteRejected
from pika.live.requests import Refusal, Request, dancer_room, dj_turn
from pika.live.room import Room
from pika.protocol import CancelAnnouncement, CancelPoll, EndPoll, SendAnnouncement, StartPoll, VoteOnPoll
from pika.queries import query

GET_POLL = query("get_poll")

POLL_NOT_FOUND = "Poll not found"


async def start_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, StartPoll)
    async with dj_turn(req, msg.session_id) as room:
        await req.settle(room, core.OpenPoll(msg.question, tuple(msg.options), msg.duration_seconds))


async def end_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, EndPoll)
    async with dj_turn(req, None) as room:
        await req.settle(room, core.ClosePoll(msg.poll_id, "closed"))


async def cancel_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, CancelPoll)
    async with dj_turn(req, msg.session_id if msg.poll_id is None else None) as room:
        await req.settle(room, core.ClosePoll(msg.poll_id, "cancelled"))


async def vote_on_poll(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, VoteOnPoll)
    client = req.client()
    room = await _room_of_poll(req, msg.poll_id)
    vote = core.PollVote(client, msg.poll_id, msg.option_index)
    if req.conn.subscribed != room.session_id:
        req.hub.shell.reject(room, vote, "Not subscribed to this session", req.conn)
    req.act(room, vote)


async def _room_of_poll(req: Request, poll_id: int) -> Room | RoomState:
    """The live room whose active poll this is: this process's, or (as PostgreSQL holds it)
    one another process owns; else VOTE_REJECTED and the refusal."""
    room = req.hub.room_of_poll(poll_id)
    if room is not None:
        return room
    kept = None if req.hub.relay is None else req.hub.relay.replicas.with_poll(poll_id)
    if kept is not None:
        return kept.state()
    row = await req.hub.db.one(GET_POLL, poll_id=poll_id)
    if row is not None and row["status"] == "active" and req.hub.relay is not None:
        with contextlib.suppress(Refusal):  # not live after all: the poll has ended
            state = await dancer_room(req, row["session_id"])
            if state.poll is not None and state.poll.id == poll_id:
                return state
    reason = VoteRejected.ENDED if row is not None else POLL_NOT_FOUND
    req.conn.send_message({"type": "VOTE_REJECTED", "pollId": poll_id, "reason": reason})
    raise Refusal(reason)


async def send_announcement(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendAnnouncement)
    async with dj_turn(req, msg.session_id) as room:
        await req.settle(room, core.Announce(msg.message, msg.duration_seconds))
        if msg.push:
            announced = room.announcement
            assert announced is not None
            req.hub.push.announce(room.session_id, room.dj_name, msg.message, announced.ends_at)


async def cancel_announcement(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, CancelAnnouncement)
    async with dj_turn(req, msg.session_id) as room:
        await req.settle(room, core.CancelAnnouncement())
