"""What the room is telling the DJ, folded from the server's frames: listeners, likes on the current
track, the tempo meter, thank-yous and the active poll. Plain data, no I/O: `apply` takes a frame,
`line` renders the status line the terminal shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Crowd", "Poll"]


@dataclass
class Poll:
    poll_id: int
    question: str
    options: list[str]
    votes: list[int]

    def summary(self) -> str:
        counts = " ".join(f"{option}:{n}" for option, n in zip(self.options, self.votes, strict=False))
        return f"poll #{self.poll_id} {self.question} [{counts}]"


@dataclass
class Crowd:
    """The session as the DJ sees it; `connected`, `database_down` and `queued` are the agent's own."""

    session_id: str
    connected: bool = False
    database_down: bool = False
    queued: int = 0
    current: str | None = None
    listeners: int = 0
    likes: int = 0
    tempo: dict[str, int] = field(default_factory=lambda: {"faster": 0, "perfect": 0, "slower": 0})
    thanks: int = 0
    poll: Poll | None = None
    ended: bool = False

    def apply(self, frame: dict[str, Any]) -> str | None:
        """Fold one server frame in; returns a line worth printing above the status, if any."""
        kind = frame.get("type")
        if frame.get("sessionId", self.session_id) != self.session_id:
            return None  # SESSION_STARTED/ENDED of other DJs reach everyone
        if kind == "NOW_PLAYING":
            track = frame.get("track") or {}
            now = f"{track.get('artist', '?')} - {track.get('title', '?')}"
            if now != self.current:
                self.current, self.likes = now, 0
                self.tempo = dict.fromkeys(self.tempo, 0)
        elif kind == "TRACK_STOPPED":
            self.current = None
        elif kind == "TEMPO_RESET":
            self.tempo = dict.fromkeys(self.tempo, 0)
        elif kind == "LISTENER_COUNT":
            self.listeners = int(frame.get("count", 0))
        elif kind == "LIKE_RECEIVED":
            self.likes += 1
        elif kind == "TEMPO_FEEDBACK":
            self.tempo = {name: int(frame.get(name, 0)) for name in self.tempo}
        elif kind == "REACTION_RECEIVED":
            self.thanks += 1
        elif kind == "POLL_STARTED":
            self.poll = Poll(
                int(frame["pollId"]), str(frame["question"]), list(frame["options"]), list(frame["votes"])
            )
            return f"poll started: {self.poll.summary()}"
        elif kind == "POLL_UPDATE" and self.poll is not None and frame.get("pollId") == self.poll.poll_id:
            self.poll.votes = list(frame["votes"])
        elif kind == "POLL_ENDED" and self.poll is not None and frame.get("pollId") == self.poll.poll_id:
            self.poll.votes = list(frame.get("results", self.poll.votes))
            ended, self.poll = self.poll, None
            return f"poll ended: {ended.summary()}"
        elif kind == "ANNOUNCEMENT_RECEIVED":
            return f"announcement: {frame.get('message', '')}"
        elif kind == "ANNOUNCEMENT_CANCELLED":
            return "announcement cleared"
        elif kind == "SESSION_ENDED":
            self.ended = True
            return f"session {self.session_id} ended"
        return None

    def line(self) -> str:
        """One line: link, queue, room. E.g. `● live · queued 0 · 12 listening · ♥ 3 · …`."""
        link = "● live" if self.connected else "○ offline"
        if self.database_down:
            link += " (database unavailable)"
        parts = [
            link,
            f"queued {self.queued}",
            f"{self.listeners} listening",
            f"♥ {self.likes}",
            "tempo " + " / ".join(f"{name} {n}" for name, n in self.tempo.items()),
            f"thanks {self.thanks}",
        ]
        if self.poll is not None:
            parts.append(self.poll.summary())
        if self.current:
            parts.insert(1, f"▶ {self.current}")
        return " · ".join(parts)
