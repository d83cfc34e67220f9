"""What dancers send: likes (one, bulk, undo), tempo votes and thank-yous.

Every action is recorded under the connection's bound clientId and limited per client
(pyrate-limiter, never blocking); a like, a tempo vote or a thank-you is then decided by the
room core (live/core/dancers.py), written to PostgreSQL — where constraints keep "one per
client" true across restarts and servers — in a group commit with other dancers' actions, and
only then counted and told to the DJ (live/shell.py).  On a room another process owns, the row is
written here and the action announced to the owner, who counts it and tells its DJ (live/relay.py).
"""

from __future__ import annotations

from pika.db import Tx
from pika.live.core import commands as core
from pika.live.core.state import RoomState
from pika.live.likes import like_received, unique_tracks
from pika.live.requests import Refusal, Request, dancer_room
from pika.live.room import Room
from pika.protocol import RemoveLike, SendBulkLike, SendLike, SendReaction, SendTempoRequest, TrackInfo
from pika.queries import query

LIKE_LATEST_PLAY = query("like_latest_play")
DELETE_LIKE = query("delete_like")

RATE_LIMITED = "Rate limit exceeded"


async def send_like(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendLike)
    client = req.client()
    room = await dancer_room(req, msg.session_id)
    if not req.hub.limits.likes.allow(client):
        raise Refusal(RATE_LIMITED)
    req.act(room, core.Like(client, msg.track))


async def send_bulk_like(req: Request) -> None:
    """The offline queue flush: each new like stored once and told to the DJ; repeats skipped."""
    msg = req.msg
    assert isinstance(msg, SendBulkLike)
    client = req.client()
    room = await dancer_room(req, msg.session_id)
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

    if isinstance(room, Room):
        for track in await req.write(work):
            room.to_dj(like_received(room.session_id, track))
    else:  # owned by another process: its DJ hears of each new like there, as it is committed
        relay = req.hub.relay
        assert relay is not None
        await req.write(
            work, lambda liked: [relay.notice(room.session_id, core.Like(client, t), None) for t in liked]
        )


async def remove_like(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, RemoveLike)
    client = req.client()
    room = await dancer_room(req, msg.session_id)

    def work(tx: Tx) -> None:
        tx.execute(DELETE_LIKE, session_id=room.session_id, client_id=client, match_key=msg.track.match_key)

    await req.write(work)


async def send_tempo_request(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendTempoRequest)
    client = req.client()
    room = await dancer_room(req, msg.session_id)
    if room.current is None:
        raise Refusal("No track is playing")  # before the rate limit: a refused vote costs nothing
    if not req.hub.limits.tempo.allow(client):
        raise Refusal(RATE_LIMITED)
    req.act(room, core.CastTempo(client, msg.preference))


async def send_reaction(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, SendReaction)
    client = req.client()
    room = await _subscribed_room(req, msg.session_id)
    if not req.hub.limits.reactions.allow(client):
        raise Refusal(RATE_LIMITED)
    req.act(room, core.Thanks(client, msg.reaction))


async def _subscribed_room(req: Request, session_id: str) -> Room | RoomState:
    if req.conn.subscribed != session_id:
        raise Refusal("Not subscribed to this session")
    return await dancer_room(req, session_id)
