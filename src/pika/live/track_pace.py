"""The flood guard on a session's tracks (PROTOCOL.md §3.1, §5), as a pure rule: a burst of
`burst`, then `rate` per second, judged on the DJ's own timeline, so that a backlog the DJ's
client held back while the database was away is never refused for having been queued.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class TrackPace:
    """Each track is judged at the time the DJ played it (`playedAt`, else when it is handled),
    kept from running backwards and from reaching further back than `lookback`: whatever times a
    client sends, it wins no more than `burst + rate × (elapsed + lookback)` tracks.  A client
    that sends no `playedAt` gets the same for an outage the room saw (`database_away`): the
    tracks it may have played meanwhile, at `rate`, are owed once the database is back.  A
    refused track changes nothing."""

    burst: int
    rate: float  # tracks per second after the burst
    lookback: float  # s: how far back a track's playedAt, or an outage, is believed
    tokens: float = math.nan  # tracks allowed at `at` (nan: a full burst, nothing taken yet)
    at: float = -math.inf  # the timeline's time of the last track taken
    away_since: float | None = None  # the database first refused this DJ a track (outage going on)
    owed: float = 0.0  # tracks played during an outage, still allowed on top of the burst
    owed_until: float = -math.inf

    def take(self, now: float, played_at: float | None = None) -> TrackPace | None:
        """The pace after one more track played at `played_at` (default: `now`), or None when
        it would exceed the guard.  Keep the result only once the track is stored."""
        when = now if played_at is None else min(now, max(played_at, now - self.lookback))
        when = max(when, self.at)
        tokens = self.burst if math.isnan(self.tokens) else self.tokens + (when - self.at) * self.rate
        tokens = min(float(self.burst), tokens)
        owed, owed_until = (self.owed, self.owed_until) if now < self.owed_until else (0.0, -math.inf)
        if self.away_since is not None:  # the database is back: what the DJ played meanwhile is owed
            owed, owed_until = min(now - self.away_since, self.lookback) * self.rate, now + self.lookback
        if tokens >= 1:
            tokens -= 1
        elif owed >= 1:
            owed -= 1
        else:
            return None
        return replace(self, tokens=tokens, at=when, away_since=None, owed=owed, owed_until=owed_until)

    def database_away(self, now: float) -> TrackPace:
        """A track of this DJ's was refused because the database did not answer in time."""
        return self if self.away_since is not None else replace(self, away_since=now)
