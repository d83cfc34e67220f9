"""Site-wide statistics over HTTP (PROTOCOL.md §8): the most liked tracks and global totals.

Both are whole-table aggregates, so each answer is kept for `STATS_TTL` seconds in a tiny
per-app cache keyed by route; a burst of page loads costs one query.  Only these routes are
cached: live and per-session data never is (see `sessions.py`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, current_app, jsonify

from pika.db import Database
from pika.queries import query

READ_TOP_TRACKS = query("read_top_tracks")
READ_GLOBAL_STATS = query("read_global_stats")

STATS_TTL = 10.0  # seconds


def stats_blueprint(ttl: float = STATS_TTL) -> Blueprint:
    bp = Blueprint("stats", __name__)
    cache = TtlCache(ttl)

    @bp.get("/api/stats/top-tracks")
    async def top_tracks() -> Response:
        async def load() -> list[dict[str, Any]]:
            rows = await _db().all(READ_TOP_TRACKS)
            return [{"artist": r["artist"], "title": r["title"], "likeCount": r["like_count"]} for r in rows]

        return jsonify(await cache.get("top-tracks", load))

    @bp.get("/api/stats/global")
    async def global_stats() -> Response:
        async def load() -> dict[str, Any]:
            row = await _db().one(READ_GLOBAL_STATS)
            assert row is not None
            return {
                "totalSessions": row["total_sessions"],
                "totalTracks": row["total_tracks"],
                "totalLikes": row["total_likes"],
            }

        return jsonify(await cache.get("global", load))

    return bp


class TtlCache:
    """Values by key, each kept `ttl` seconds from when it was loaded.  Two misses at once both
    load (harmless for a read); nothing is evicted but what expires, and there are two keys."""

    def __init__(self, ttl: float, clock: Callable[[], float] | None = None) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Any]] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        now = self._now()
        entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.ttl:
            return entry[1]
        value = await load()
        self._entries[key] = (now, value)
        return value

    def _now(self) -> float:
        return (self._clock or monotonic)()


def monotonic() -> float:
    """The cache's clock (a module attribute so a test can move time forward)."""
    return time.monotonic()


def _db() -> Database:
    return current_app.extensions["pika"]["db"]
