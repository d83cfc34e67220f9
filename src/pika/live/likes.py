"""Likes and reactions (PROTOCOL.md §3.2 SEND_LIKE, SEND_BULK_LIKE, SEND_REACTION): the pure parts.

Storage and limits live elsewhere; here is what makes two likes the same and the frames the DJ gets,
so the single and bulk paths cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pika.protocol import TrackInfo

__all__ = ["like_received", "reaction_received", "unique_tracks"]


def unique_tracks(tracks: Iterable[TrackInfo]) -> list[TrackInfo]:
    """The first track of each `match_key`, in order: an offline queue may hold one song twice."""
    seen: set[str] = set()
    unique: list[TrackInfo] = []
    for track in tracks:
        if track.match_key not in seen:
            seen.add(track.match_key)
            unique.append(track)
    return unique


def like_received(session_id: str, track: TrackInfo) -> dict[str, Any]:
    """LIKE_RECEIVED for the DJ: the track nested under `payload`, as 0.3 clients expect."""
    return {"type": "LIKE_RECEIVED", "sessionId": session_id, "payload": {"track": track.to_wire()}}


def reaction_received(session_id: str, reaction: str) -> dict[str, Any]:
    return {"type": "REACTION_RECEIVED", "sessionId": session_id, "reaction": reaction}
