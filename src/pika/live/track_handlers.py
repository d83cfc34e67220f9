"""Track messages from the DJ: BROADCAST_TRACK, METADATA_UPDATED, TRACK_STOPPED.

The latest track wins (no refusal of quick changes), behind a flood guard per session; the
same track again is a no-op (or a metadata update), which is what makes a DJ's re-broadcast
after a reconnect or a server restart harmless.
"""

from __future__ import annotations

from pika.db import DatabaseStalled, Tx
from pika.live import store
from pika.live.core.tracks import merged
from pika.live.requests import Refusal, Request, dj_turn
from pika.live.room import NowPlaying, Room
from pika.protocol import BroadcastTrack, MetadataUpdated, TrackInfo, TrackStopped
from pika.queries import query

INSERT_PLAYED_TRACK = query("insert_played_track")
CLEAR_CURRENT_PLAY = query("clear_current_play")
UPDATE_PLAY_ANALYTICS = query("update_play_analytics")


async def broadcast_track(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, BroadcastTrack)
    async with dj_turn(req, msg.session_id) as room:
        await _broadcast_track(req, room, msg)


async def _broadcast_track(req: Request, room: Room, msg: BroadcastTrack) -> None:
    if room.current is not None and room.current.track.same_track(msg.track):
        if merged(room.current.track, msg.track) != room.current.track:
            await _update_metadata(req, room, msg.track)
        elif msg.message_id:
            await req.hub.db.run(req.claim)
        return
    now = room.clock.now()
    pace = room.track_pace.take(now, msg.played_at)  # judged when the DJ played it, not when handled
    if pace is None:
        raise Refusal("Rate limit exceeded")
    previous = room.current
    tempo = room.tempo_counts()
    track = msg.track

    def work(tx: Tx) -> int:
        req.claim(tx)
        if previous is not None:
            store.end_play(tx, previous.play_id, tempo)
        row = tx.one(
            INSERT_PLAYED_TRACK,
            session_id=room.session_id,
            artist=track.artist,
            title=track.title,
            match_key=track.match_key,
            **track.analytics(),
        )
        if row is None:  # ended meanwhile (pika.admin end-session, another process): nothing written
            raise Refusal("Session not available")
        return int(row["play_id"])

    try:
        play_id = await req.hub.db.run(work)
    except DatabaseStalled:
        room.track_pace = room.track_pace.database_away(now)  # what is played meanwhile is owed
        raise
    room.track_pace = pace  # charged once stored: a refused or failed track costs nothing
    room.current = NowPlaying(play_id, track)
    room.last_activity = now
    message = room.now_playing_message()
    assert message is not None
    if previous is None:
        room.publish(message)
        return
    room.close_tempo(tempo)
    room.publish({"type": "TEMPO_RESET", "sessionId": room.session_id}, message)  # one write each


async def metadata_updated(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, MetadataUpdated)
    async with dj_turn(req, msg.session_id) as room:
        if room.current is None:
            raise Refusal("No track is playing")
        if not room.current.track.same_track(msg.track):
            raise Refusal("Track is not the current track")
        await _update_metadata(req, room, msg.track)


async def _update_metadata(req: Request, room: Room, track: TrackInfo) -> None:
    assert room.current is not None
    play_id = room.current.play_id
    new = merged(room.current.track, track)

    def work(tx: Tx) -> None:
        req.claim(tx)
        tx.execute(UPDATE_PLAY_ANALYTICS, play_id=play_id, **new.analytics())

    await req.hub.db.run(work)
    room.current = NowPlaying(play_id, new)
    room.last_activity = room.clock.now()
    room.publish({"type": "METADATA_UPDATED", "sessionId": room.session_id, "track": new.to_wire()})


async def track_stopped(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, TrackStopped)
    async with dj_turn(req, msg.session_id) as room:
        await _track_stopped(req, room)


async def _track_stopped(req: Request, room: Room) -> None:
    previous = room.current
    tempo = room.tempo_counts()

    def work(tx: Tx) -> None:
        req.claim(tx)
        if previous is not None:
            store.end_play(tx, previous.play_id, tempo)
        tx.execute(CLEAR_CURRENT_PLAY, session_id=room.session_id)

    await req.hub.db.run(work)
    room.current = None
    room.last_activity = room.clock.now()
    if previous is not None:
        room.close_tempo(tempo)
    room.publish({"type": "TRACK_STOPPED", "sessionId": room.session_id})
