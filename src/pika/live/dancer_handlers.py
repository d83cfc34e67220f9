"""What dancers send: likes (one, bulk, undo), tempo votes and thank-yous.

Every action is recorded under the connection's bound clientId, limited per client
(pyrate-limiter, never blocking), written to PostgreSQL — where constraints keep "one per
client" true across restarts and servers — in a group commit with other dancers' actions
(group_commit.py: each work refuses before it writes), and only then told to the DJ.
"""

from __future__ import annotations

from pika.db import Tx, timestamptz
from pika.live.core.dancers import liked
from pika.live.group_commit import Row
from pika.live.likes import like_received, reaction_received, unique_tracks
from pika.live.requests import Refusal, Request, live_room
from pika.live.room import Room
from pika.protocol import RemoveLike, SendBulkLike, SendLike, SendReaction, SendTempoRequest, TrackInfo
from pika.queries import query

INSERT_LIKES = query("insert_likes")
LIKE_LATEST_PLAY = query("like_latest_play")
DELETE_LIKE = query("delete_like")
UPSERT_TEMPO_VOTES = query("upsert_tempo_votes")
DELETE_TEMPO_VOTE = query("delete_tempo_vote")
INSERT_REACTIONS = query("insert_reactions")

RATE_LIMITED = "Rate limit exceeded"


async def send_like(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendLike)
    client = req.client()
    room = live_room(req, msg.session_id)
    if not req.hub.limits.likes.allow(client):
        raise Refusal(RATE_LIMITED)

    like = {"session_id": room.session_id, "client_id": client, "match_key": msg.track.match_key}
    await req.write(Row(INSERT_LIKES, like, answer=liked))
    room.to_dj(like_received(room.session_id, msg.track))


async def send_bulk_like(req: Request) -> None:
    """The offline queue flush: each new like stored once and told to the DJ; repeats skipped."""
    msg = req.msg
    assert isinstance(msg, SendBulkLike)
    client = req.client()
    room = live_room(req, msg.session_id)
    if not req.hub.limits.bulk_likes.allow(client):
        raise Refusal(RATE_LIMITED)
    tracks = unique_tracks(msg.tracks)

    def work(tx: Tx) -> list[TrackInfo]:
        liked = []
        for track in tracks:
            like = {"session_id": room.session_id, "client_id": client, "match_key": track.match_key}
            if tx.one(LIKE_LATEST_PLAY, **like) is not None:
                liked.append(track)
        return liked

    for track in await req.write(work):
        room.to_dj(like_received(room.session_id, track))


async def remove_like(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, RemoveLike)
    client = req.client()
    room = live_room(req, msg.session_id)

    def work(tx: Tx) -> None:
        tx.execute(DELETE_LIKE, session_id=room.session_id, client_id=client, match_key=msg.track.match_key)

    await req.write(work)


async def send_tempo_request(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendTempoRequest)
    client = req.client()
    room = live_room(req, msg.session_id)
    if room.current is None:
        raise Refusal("No track is playing")
    if not req.hub.limits.tempo.allow(client):
        raise Refusal(RATE_LIMITED)
    play_id = room.current.play_id
    now = room.clock.now()

    if msg.preference == "clear":
        await req.write(lambda tx: tx.execute(DELETE_TEMPO_VOTE, play_id=play_id, client_id=client))
    else:
        vote = {"play_id": play_id, "client_id": client, "preference": msg.preference}
        await req.write(Row(UPSERT_TEMPO_VOTES, {**vote, "cast_at": timestamptz(now)}))
    if room.current is not None and room.current.play_id == play_id:  # the track may have changed meanwhile
        room.tempo.cast(client, msg.preference, now)
        room.tempo_changed()


async def send_reaction(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendReaction)
    client = req.client()
    room = _subscribed_room(req, msg.session_id)
    if not req.hub.limits.reactions.allow(client):
        raise Refusal(RATE_LIMITED)

    await req.write(
        Row(INSERT_REACTIONS, {"session_id": room.session_id, "client_id": client, "reaction": msg.reaction})
    )
    room.to_dj(reaction_received(room.session_id, msg.reaction))


def _subscribed_room(req: Request, session_id: str) -> Room:
    if req.conn.subscribed != session_id:
        raise Refusal("Not subscribed to this session")
    return live_room(req, session_id)
