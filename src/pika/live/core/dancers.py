"""Dancer action rules (PROTOCOL.md §3.2): likes, tempo votes and thank-yous, the hot path.

Each is one group-committed row and, once durable, a frame for the DJ; the tempo tally is
updated in place, in decision order.  Rate limits and the bound clientId are the shell's.
"""

from __future__ import annotations

from typing import Any

from pika.db import timestamptz
from pika.live.core.commands import CastTempo, Like, Thanks
from pika.live.core.effects import Audience, Effect, Poke, Refuse, Send, Write
from pika.live.core.state import RoomState
from pika.live.likes import like_received, reaction_received
from pika.live.requests import Refusal
from pika.protocol import TEMPO_CLEAR
from pika.queries import query

INSERT_LIKES = query("insert_likes")
UPSERT_TEMPO_VOTES = query("upsert_tempo_votes")
DELETE_TEMPO_VOTE = query("delete_tempo_vote")
INSERT_REACTIONS = query("insert_reactions")

NOTHING_PLAYING = "No track is playing"
TEMPO_CHANGED = Poke("tempo")

Decision = tuple[RoomState, tuple[Effect, ...]]


def like(state: RoomState, cmd: Like, now: float) -> Decision:
    row = {"session_id": state.session_id, "client_id": cmd.client, "match_key": cmd.track.match_key}
    return state, (
        Write(INSERT_LIKES, row, row=True, answer=liked),
        Send((like_received(state.session_id, cmd.track),), Audience.DJ),
    )


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
    write: Write
    if cmd.preference == TEMPO_CLEAR:
        write = Write(DELETE_TEMPO_VOTE, {"play_id": current.play_id, "client_id": cmd.client})
    else:
        vote: dict[str, Any] = {
            "play_id": current.play_id,
            "client_id": cmd.client,
            "preference": cmd.preference,
            "cast_at": timestamptz(now),
        }
        write = Write(UPSERT_TEMPO_VOTES, vote, row=True)
    state.tempo.cast(cmd.client, cmd.preference, now)
    return state, (write, TEMPO_CHANGED)


def thanks(state: RoomState, cmd: Thanks, now: float) -> Decision:
    row = {"session_id": state.session_id, "client_id": cmd.client, "reaction": cmd.reaction}
    return state, (
        Write(INSERT_REACTIONS, row, row=True),
        Send((reaction_received(state.session_id, cmd.reaction),), Audience.DJ),
    )
