"""Track rules (PROTOCOL.md §3.1 BROADCAST_TRACK, METADATA_UPDATED, TRACK_STOPPED): the latest
track wins behind the flood guard, the same track again is a no-op or a metadata update, and a
new play resets the tempo votes after storing the old play's tally.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pika.live.core.commands import BroadcastTrack, StopTrack, UpdateMetadata
from pika.live.core.effects import Audience, Effect, Refuse, Send, TempoClosed, Write
from pika.live.core.ownership import NOT_AVAILABLE
from pika.live.core.state import NowPlaying, PendingTrack, RoomState
from pika.live.core.writes import end_play, tally
from pika.live.tempo import TempoTally
from pika.protocol import TrackInfo
from pika.queries import query

INSERT_PLAYED_TRACK = query("insert_played_track")
CLEAR_CURRENT_PLAY = query("clear_current_play")
UPDATE_PLAY_ANALYTICS = query("update_play_analytics")

RATE_LIMITED = "Rate limit exceeded"
NOTHING_PLAYING = "No track is playing"
NOT_CURRENT = "Track is not the current track"

Decision = tuple[RoomState, tuple[Effect, ...]]


def broadcast(state: RoomState, cmd: BroadcastTrack, now: float) -> Decision:
    current = state.current
    if current is not None and current.track.same_track(cmd.track):
        if merged(current.track, cmd.track) == current.track:
            return state, ()
        return update_metadata(state, cmd.track, now)
    pace = state.pace.take(now, cmd.played_at)  # judged when the DJ played it, not when handled
    if pace is None:
        return state, (Refuse(RATE_LIMITED),)
    tempo = state.tempo.counts(now, state.tempo_lapse)
    track = cmd.track
    # one statement records the play and ends the one before (nothing, in an ended session)
    insert = Write(
        INSERT_PLAYED_TRACK,
        {
            "session_id": state.session_id,
            "artist": track.artist,
            "title": track.title,
            "match_key": track.match_key,
            **track.analytics(),
            "ended_play_id": current.play_id if current is not None else None,
            **tally(tempo),
        },
        feeds=True,
    )
    return replace(state, pending=PendingTrack(track, pace, tempo)), (insert,)


def stored(state: RoomState, pending: PendingTrack, row: dict[str, Any] | None, now: float) -> Decision:
    """The play's row came back (None: the session ended meanwhile, nothing was written)."""
    if row is None:
        return replace(state, pending=None), (Refuse(NOT_AVAILABLE),)
    previous = state.current
    state = replace(
        state,
        pending=None,
        pace=pending.pace,  # charged once stored: a refused or failed track costs nothing
        current=NowPlaying(int(row["play_id"]), pending.track),
        tempo=TempoTally(),
        last_activity=now,
    )
    message = state.now_playing_message()
    assert message is not None
    if previous is None:
        return state, (Send((message,), Audience.ROOM),)
    reset = {"type": "TEMPO_RESET", "sessionId": state.session_id}
    return state, (TempoClosed(pending.tempo), Send((reset, message), Audience.ROOM))


def failed(state: RoomState, now: float) -> Decision:
    """The database did not answer: what the DJ plays meanwhile is owed once it is back."""
    return replace(state, pending=None, pace=state.pace.database_away(now)), ()


def metadata(state: RoomState, cmd: UpdateMetadata, now: float) -> Decision:
    return update_metadata(state, cmd.track, now)


def update_metadata(state: RoomState, track: TrackInfo, now: float) -> Decision:
    current = state.current
    if current is None:
        return state, (Refuse(NOTHING_PLAYING),)
    if not current.track.same_track(track):
        return state, (Refuse(NOT_CURRENT),)
    new = merged(current.track, track)
    write = Write(UPDATE_PLAY_ANALYTICS, {"play_id": current.play_id, **new.analytics()})
    update = {"type": "METADATA_UPDATED", "sessionId": state.session_id, "track": new.to_wire()}
    state = replace(state, current=NowPlaying(current.play_id, new), last_activity=now)
    return state, (write, Send((update,), Audience.ROOM))


def stop(state: RoomState, _: StopTrack, now: float) -> Decision:
    previous = state.current
    tempo = state.tempo.counts(now, state.tempo_lapse)
    clear = Write(CLEAR_CURRENT_PLAY, {"session_id": state.session_id})
    stopped = Send(({"type": "TRACK_STOPPED", "sessionId": state.session_id},), Audience.ROOM)
    state = replace(state, current=None, tempo=TempoTally(), last_activity=now)
    if previous is None:
        return state, (clear, stopped)
    return state, (end_play(previous.play_id, tempo), clear, TempoClosed(tempo), stopped)


def merged(current: TrackInfo, update: TrackInfo) -> TrackInfo:
    """The current track with the analytics `update` carries; an absent field keeps its value,
    and title/artist stay as first played (they match anyway, up to case and spacing)."""
    fields = current.analytics()
    fields.update({k: v for k, v in update.analytics().items() if v is not None})
    return TrackInfo(title=current.title, artist=current.artist, **fields)
