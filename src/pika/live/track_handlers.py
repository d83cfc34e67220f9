"""Track messages from the DJ: BROADCAST_TRACK, METADATA_UPDATED, TRACK_STOPPED.

Each is settled by the room core in the DJ's turn (live/core/tracks.py holds the rules: the
latest track wins behind a flood guard; the same track again is a no-op or a metadata update,
which makes a DJ's re-broadcast after a reconnect or a restart harmless).
"""

from __future__ import annotations

from pika.live.core import commands as core
from pika.live.requests import Request, dj_turn
from pika.protocol import BroadcastTrack, MetadataUpdated, TrackStopped


async def broadcast_track(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, BroadcastTrack)
    async with dj_turn(req, msg.session_id) as room:
        await req.settle(room, core.BroadcastTrack(msg.track, msg.played_at))


async def metadata_updated(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, MetadataUpdated)
    async with dj_turn(req, msg.session_id) as room:
        await req.settle(room, core.UpdateMetadata(msg.track))


async def track_stopped(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, TrackStopped)
    async with dj_turn(req, msg.session_id) as room:
        await req.settle(room, core.StopTrack())
