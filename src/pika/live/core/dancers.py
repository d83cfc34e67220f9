"""Dancer action rules (PROTOCOL.md §3.2): likes, tempo votes, thank-yous, poll votes: the hot path.

Deciding one checks it against the room and plans its row; the room changes, and the DJ hears
of it, only once the row's group-commit batch committed (`committed`), in commit order.  Rate
limits and the bound clientId are the shell's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pika.live.core.commands import CastTempo, Committed, Like, PollVote, Rejected, Thanks
from pika.live.core.effects import Audience, Effect, Poke, Refuse, Send, Write
from pika.live.core.state import RoomState
from pika.live.likes import like_received, reaction_received
from pika.live.polls import Poll, VoteRejected
from pika.live.requests import Refusal
from pika.protocol import TEMPO_CLEAR
from pika.queries import query

INSERT_LIKES = query("insert_likes")
UPSERT_TEMPO_VOTES = query("upsert_tempo_votes")
DELETE_TEMPO_VOTE = query("delete_tempo_vote")
INSERT_REACTIONS = query("insert_reactions")
INSERT_POLL_VOTE = query("insert_poll_vote")

NOTHING_PLAYING = "No track is playing"
TEMPO_CHANGED = Poke("tempo")
POLL_CHANGED = Poke("poll")

Decision = tuple[RoomState, tuple[Effect, ...]]


def like(state: RoomState, cmd: Like, now: float) -> Decision:
    row = {"session_id": state.session_id, "client_id": cmd.client, "match_key": cmd.track.match_key}
    return state, (Write(INSERT_LIKES, row, row=True, answer=liked),)


def liked(returned: dict[str, bool]) -> None:
    """INSERT_LIKES's answer for one like: written, or why not (nothing written then)."""
    if not returned["played"]:
        raise Refusal("Track was not played in this session")
    if not returned["liked"]:
        raise Refusal("Already liked this track")


def tempo(state: RoomState, cmd: CastTempo, now: float) -> Decision:
    current = state.current
    if current is None:
        return state, (Refuse(NOTHING_PLAYING),)
    if cmd.preference == TEMPO_CLEAR:
        return state, (Write(DELETE_TEMPO_VOTE, {"play_id": current.play_id, "client_id": cmd.client}),)
    vote: dict[str, Any] = {
        "play_id": current.play_id,
        "client_id": cmd.client,
        "preference": cmd.preference,
        "cast_at": now,  # epoch seconds: the statement converts
    }
    return state, (Write(UPSERT_TEMPO_VOTES, vote, row=True),)


def thanks(state: RoomState, cmd: Thanks, now: float) -> Decision:
    row = {"session_id": state.session_id, "client_id": cmd.client, "reaction": cmd.reaction}
    return state, (Write(INSERT_REACTIONS, row, row=True),)


def vote(state: RoomState, cmd: PollVote, now: float) -> Decision:
    poll = state.poll
    if poll is None or poll.id != cmd.poll_id:
        return state, _rejected(cmd, VoteRejected.ENDED, None)
    try:
        poll.vote(cmd.client, cmd.option_index, now)  # ended / option / already, in that order
    except VoteRejected as exc:
        return state, _rejected(cmd, str(exc), poll)
    ballot = {"poll_id": poll.id, "client_id": cmd.client, "option_index": cmd.option_index}
    return state, (Write(INSERT_POLL_VOTE, ballot, answer=_ballot_stored),)


def _ballot_stored(row: dict[str, Any] | None) -> None:
    if row is None:  # another tab of this client voted first
        raise Refusal(VoteRejected.ALREADY_VOTED)


def committed(state: RoomState, cmd: Committed, now: float) -> Decision:
    action = cmd.action
    sid = state.session_id
    if isinstance(action, Like):
        return state, (Send((like_received(sid, action.track),), Audience.DJ),)
    if isinstance(action, Thanks):
        return state, (Send((reaction_received(sid, action.reaction),), Audience.DJ),)
    if isinstance(action, CastTempo):
        current = state.current
        if current is None or current.play_id != cmd.write.params["play_id"]:
            return state, ()  # the track changed meanwhile: the vote stays with its play
        state.tempo.cast(action.client, action.preference, now)
        return state, (TEMPO_CHANGED,)
    assert isinstance(action, PollVote)
    poll = state.poll
    if poll is None or poll.id != action.poll_id:
        return state, ()  # closed while the vote was written: stored, the result was already final
    poll = replace(poll, ballots={**poll.ballots, action.client: action.option_index})
    confirmed = {
        "type": "VOTE_CONFIRMED",
        "pollId": poll.id,
        "optionIndex": action.option_index,
        "votes": poll.votes(),
        "totalVotes": poll.total_votes,
    }
    return replace(state, poll=poll), (Send((confirmed,), Audience.SENDER), POLL_CHANGED)


def rejected(state: RoomState, cmd: Rejected, now: float) -> Decision:
    action = cmd.action
    if isinstance(action, PollVote):
        return state, _rejected(action, cmd.reason, state.poll if _same_poll(state, action) else None)
    return state, (Refuse(cmd.reason),)


def _same_poll(state: RoomState, action: PollVote) -> bool:
    return state.poll is not None and state.poll.id == action.poll_id


def _rejected(cmd: PollVote, reason: str, poll: Poll | None) -> tuple[Effect, ...]:
    """VOTE_REJECTED to the voter (with the current counts when known), then the refusal."""
    message: dict[str, Any] = {"type": "VOTE_REJECTED", "pollId": cmd.poll_id, "reason": reason}
    if poll is not None:
        message.update(votes=poll.votes(), totalVotes=poll.total_votes)
    return Send((message,), Audience.SENDER), Refuse(reason)
