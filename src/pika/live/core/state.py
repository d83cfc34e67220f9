"""What a room knows between commands: its track, tempo tally, poll, announcement, listeners.

`RoomState` is replaced, not edited, by DJ-side decisions; the tempo tally and listener counts
are the exception (updated in place: they take thousands of dancer actions per track, and a copy
per action made that quadratic).  `pending` holds a command whose write must return before it
can finish (a play id, a poll id, an announcement's timestamp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pika.live.announcements import Announcement
from pika.live.listeners import Listeners
from pika.live.polls import Poll
from pika.live.tempo import LAPSE, TempoCounts, TempoTally
from pika.live.track_pace import TrackPace
from pika.protocol import TrackInfo


@dataclass(frozen=True, slots=True)
class NowPlaying:
    play_id: int
    track: TrackInfo


@dataclass(frozen=True, slots=True)
class PendingTrack:
    track: TrackInfo
    pace: TrackPace  # the pace once this track is stored
    tempo: TempoCounts  # the previous play's tally, as stored with it


@dataclass(frozen=True, slots=True)
class PendingPoll:
    question: str
    options: tuple[str, ...]
    ends_at: float | None


@dataclass(frozen=True, slots=True)
class PendingAnnouncement:
    message: str
    ends_at: float | None


Pending = PendingTrack | PendingPoll | PendingAnnouncement


@dataclass(slots=True)
class RoomState:
    session_id: str
    dj_name: str
    pace: TrackPace
    listeners: Listeners
    current: NowPlaying | None = None
    tempo: TempoTally = field(default_factory=TempoTally)
    tempo_lapse: float = LAPSE
    poll: Poll | None = None
    announcement: Announcement | None = None
    ended: bool = False
    end_reason: str | None = None
    dj_away_since: float | None = None
    last_activity: float = 0.0
    pending: Pending | None = None

    def now_playing_message(self) -> dict[str, object] | None:
        if self.current is None:
            return None
        return {
            "type": "NOW_PLAYING",
            "sessionId": self.session_id,
            "djName": self.dj_name,
            "track": self.current.track.to_wire(),
        }

    def state_messages(self, listener_id: str, now: float) -> list[dict[str, Any]]:
        """What a late joiner or a resuming DJ is shown, in the order PROTOCOL.md §3.2 gives
        (track, poll with the listener's own vote, announcement)."""
        now_playing = self.now_playing_message()
        messages: list[dict[str, Any]] = [] if now_playing is None else [now_playing]
        if self.poll is not None:
            messages.append(self.poll.started_message(listener_id))
        if self.announcement is not None and self.announcement.active(now):
            messages.append(self.announcement.received_message())
        return messages
