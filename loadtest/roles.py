"""The two kinds of simulated people: dancers (subscribe, then like, vote, react) and DJs.

Every event a DJ sends carries a marker as the first word of its text (`T7` in a track title,
`P2` in a poll question, `A3` in an announcement): the server keeps titles, questions and
messages verbatim, so each receipt can be matched to its send.  Send times stay in the DJ's
process and receive times in the dancer's; records are wall-clock seconds (`time.time()`), the
one clock that every process on the machine and the kernel's receive timestamps share, and the
coordinator subtracts them (stats.py).  Timers run on `time.monotonic()`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadtest.client import OPEN, WsClient
from loadtest.loop import Loop

ARTIST = "Pika Loadtest"
MAX_LAGS = 200_000  # generator-lag samples kept per worker
TEMPO_CHOICES = ("faster", "slower", "perfect")

# The seed's dancer: on every NOW_PLAYING 50 % like within 0-2 s, 60 % tempo vote within 0-10 s,
# 80 % thank-you (within 0-10 s); on every POLL_STARTED 80 % vote within 0-5 s.
LIKE = (0.5, 2.0)
TEMPO = (0.6, 10.0)
THANKS = (0.8, 10.0)
VOTE = (0.8, 5.0)

#: (kind, session, key, t_send, t_answer or None, NACK error or None); key = track marker / poll id.
Action = tuple[str, str, str, float, float | None, str | None]


def track_info(marker: str) -> dict[str, Any]:
    """The track a DJ plays for `marker` (`T7` -> title "T7 Loadtest tune")."""
    return {"title": f"{marker} Loadtest tune", "artist": ARTIST, "bpm": 120}


def like_message(session: str, track: dict[str, Any]) -> dict[str, Any]:
    liked = {"title": track.get("title"), "artist": track.get("artist")}
    return {"type": "SEND_LIKE", "sessionId": session, "payload": {"track": liked}}


def tempo_message(session: str, preference: str) -> dict[str, Any]:
    return {"type": "SEND_TEMPO_REQUEST", "sessionId": session, "preference": preference}


def thanks_message(session: str) -> dict[str, Any]:
    return {"type": "SEND_REACTION", "sessionId": session, "reaction": "thank_you"}


def marker_of(text: Any) -> str:
    """The marker a DJ put first in a title, question or message ('' when there is none)."""
    if not isinstance(text, str):
        return ""
    return text.split(" ", 1)[0]


@dataclass(slots=True)
class SentEvent:
    """One fan-out event as its DJ sent it; `error` is the NACK text (None = ACKed or unanswered)."""

    kind: str  # the message dancers receive: NOW_PLAYING, POLL_STARTED, ANNOUNCEMENT_RECEIVED
    session: str
    marker: str
    t_send: float
    t_answer: float | None = None
    error: str | None = None

    @property
    def acked(self) -> bool:
        return self.t_answer is not None and self.error is None


@dataclass(slots=True)
class DancerRecord:
    """What one dancer saw, in wall-clock seconds; picklable, sent to the coordinator at the end."""

    index: int
    session: str
    t_start: float | None = None  # TCP connect began
    t_open: float | None = None  # upgrade accepted
    t_subscribed: float | None = None  # ACK of SUBSCRIBE
    t_leave: float | None = None  # started closing on purpose
    t_closed: float | None = None
    error: str | None = None
    close_code: int | None = None
    closed_by_server: bool = False
    received: dict[str, float] = field(default_factory=dict)  # marker -> first receipt
    duplicates: int = 0


@dataclass(slots=True)
class DjRecord:
    """What one DJ sent and what reached it."""

    session: str
    t_registered: float | None = None
    error: str | None = None
    close_code: int | None = None
    closed_by_server: bool = False
    events: dict[str, SentEvent] = field(default_factory=dict)
    likes: list[tuple[float, str]] = field(default_factory=list)  # LIKE_RECEIVED: (time, track marker)
    reactions: list[float] = field(default_factory=list)
    tempo_feedback: int = 0
    poll_ids: dict[int, str] = field(default_factory=dict)  # pollId -> marker
    poll_totals: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    other_nacks: dict[str, int] = field(default_factory=dict)


@dataclass
class Shared:
    """What every peer of one worker shares: the loop, the target, the behaviour switch, the logs."""

    loop: Loop
    host: str
    port: int
    quiet: bool
    rng: random.Random
    actions: list[Action] = field(default_factory=list)
    frames: int = 0  # text frames received, for the progress line
    last_frame: float = 0.0  # when the last one arrived (wall clock), for `settle`
    lags: list[float] = field(default_factory=list)  # NOW_PLAYING: our read time - kernel arrival
    open: int = 0
    scheduled: int = 0  # dancer actions waiting for their moment

    def later(self, delay: float, action: Callable[[], None]) -> None:
        """Run a dancer's action after `delay` s, counted so that `settle` can wait for it."""
        self.scheduled += 1

        def fire() -> None:
            self.scheduled -= 1
            action()

        self.loop.call_later(delay, fire)


class Dancer:
    """One phone: connect, SUBSCRIBE with a clientId, then act on what arrives (unless quiet)."""

    def __init__(self, shared: Shared, index: int, session: str, run_id: str, on_settled: Callable[[], None]):
        self.s = shared
        self.rec = DancerRecord(index, session)
        self.client_id = f"lt-{run_id}-{index:06d}"
        self.client = WsClient(shared.loop, shared.host, shared.port, self)
        self._pending: dict[str, tuple[str, str, float]] = {}  # messageId -> (kind, key, t_send)
        self._ids = 0
        self._on_settled = on_settled  # called once: subscribed, failed or closed
        self._settled = False

    @property
    def active(self) -> bool:
        return self.rec.t_subscribed is not None and self.rec.t_leave is None and self.rec.t_closed is None

    @property
    def waiting(self) -> int:
        """Actions sent and not yet answered."""
        return len(self._pending)

    def start(self, now: float) -> None:
        self.rec.t_start = now
        self.client.connect()

    def leave(self, now: float) -> None:
        if self.rec.t_closed is None and self.rec.t_leave is None:
            self.rec.t_leave = now
            self.client.close(1000)

    def give_up(self, reason: str, now: float) -> None:
        """The connect phase is over and this dancer is not in: it fails now, not mid-measurement."""
        rec = self.rec
        if rec.t_subscribed is not None or rec.t_closed is not None:
            return
        rec.error = reason
        if rec.t_start is None:
            rec.t_closed = now  # never started
            return
        self.leave(now)

    # -- Peer ----------------------------------------------------------------------------------

    def on_open(self, now: float) -> None:
        self.rec.t_open = now
        self.s.open += 1
        self._send(
            {"type": "SUBSCRIBE", "sessionId": self.rec.session, "clientId": self.client_id}, "SUBSCRIBE"
        )

    def on_closed(self, code: int, by_server: bool, error: str | None, now: float) -> None:
        rec = self.rec
        if rec.t_open is not None:
            self.s.open -= 1
        rec.t_closed, rec.close_code, rec.closed_by_server = now, code, by_server
        if error and rec.t_leave is None:
            rec.error = error
        elif rec.t_subscribed is None and rec.error is None:
            rec.error = f"closed {code} before SUBSCRIBE was answered"
        for kind, key, t_send in self._pending.values():
            if kind != "SUBSCRIBE":
                self.s.actions.append((kind, rec.session, key, t_send, None, None))
        self._pending.clear()
        self._settle()

    def on_text(self, payload: bytes, now: float) -> None:
        self.s.frames += 1
        self.s.last_frame = now
        msg = json.loads(payload)
        kind = msg.get("type")
        if kind == "NOW_PLAYING":
            track = msg.get("track") or {}
            marker = marker_of(track.get("title"))
            if len(self.s.lags) < MAX_LAGS:
                self.s.lags.append(time.time() - now)
            if self._got(marker, now) and not self.s.quiet and self.active:
                self._on_track(marker, track)
        elif kind == "POLL_STARTED":
            if self._got(marker_of(msg.get("question")), now) and not self.s.quiet and self.active:
                self._on_poll(msg)
        elif kind == "ANNOUNCEMENT_RECEIVED":
            self._got(marker_of(msg.get("message")), now)
        elif kind in ("ACK", "NACK"):
            self._answered(msg, now)

    # -- behaviour -----------------------------------------------------------------------------

    def _got(self, marker: str, now: float) -> bool:
        """Note a receipt; True the first time this marker arrives."""
        if not marker:
            return False
        if marker in self.rec.received:
            self.rec.duplicates += 1
            return False
        self.rec.received[marker] = now
        return True

    def _on_track(self, marker: str, track: dict[str, Any]) -> None:
        rng, session = self.s.rng, self.rec.session
        if rng.random() < LIKE[0]:
            like = like_message(session, track)
            self.s.later(rng.uniform(0, LIKE[1]), lambda: self.act(like, "SEND_LIKE", marker))
        if rng.random() < TEMPO[0]:
            tempo = tempo_message(session, rng.choice(TEMPO_CHOICES))
            self.s.later(rng.uniform(0, TEMPO[1]), lambda: self.act(tempo, "SEND_TEMPO_REQUEST", marker))
        if rng.random() < THANKS[0]:
            thanks = thanks_message(session)
            self.s.later(rng.uniform(0, THANKS[1]), lambda: self.act(thanks, "SEND_REACTION", marker))

    def _on_poll(self, msg: dict[str, Any]) -> None:
        rng = self.s.rng
        poll_id, options = msg.get("pollId"), msg.get("options") or []
        if type(poll_id) is not int or not options or rng.random() >= VOTE[0]:
            return
        vote = {"type": "VOTE_ON_POLL", "pollId": poll_id, "optionIndex": rng.randrange(len(options))}
        self.s.later(rng.uniform(0, VOTE[1]), lambda: self.act(vote, "VOTE_ON_POLL", str(poll_id)))

    def act(self, message: dict[str, Any], kind: str, key: str) -> None:
        """Send one action with a messageId if still subscribed; its answer lands in `Shared.actions`."""
        if self.active:
            self._send(message, kind, key)

    def unanswered(self, since: float, until: float) -> int:
        """Actions sent within [since, until] (wall clock) still waiting for their answer."""
        return sum(1 for _, _, t_send in self._pending.values() if since <= t_send <= until)

    def _send(self, message: dict[str, Any], kind: str, key: str = "") -> None:
        self._ids += 1
        message_id = f"{kind[:4]}{self._ids}"
        message["messageId"] = message_id
        self._pending[message_id] = (kind, key, time.time())
        self.client.send_text(json.dumps(message, separators=(",", ":")))

    def _answered(self, msg: dict[str, Any], now: float) -> None:
        entry = self._pending.pop(msg.get("messageId"), None)
        if entry is None:
            return
        kind, key, t_send = entry
        error = None if msg["type"] == "ACK" else str(msg.get("error", "NACK without error"))
        if kind == "SUBSCRIBE":
            if self.rec.t_leave is not None:
                pass  # given up on before the answer came
            elif error is None:
                self.rec.t_subscribed = now
            else:
                self.rec.error = f"SUBSCRIBE refused: {error}"
            self._settle()
            return
        self.s.actions.append((kind, self.rec.session, key, t_send, now, error))

    def _settle(self) -> None:
        if not self._settled:
            self._settled = True
            self._on_settled()


class Dj:
    """One DJ: REGISTER_SESSION, then tracks, polls and announcements on the coordinator's plan."""

    def __init__(self, shared: Shared, session: str, name: str, on_registered: Callable[[], None]):
        self.s = shared
        self.rec = DjRecord(session)
        self.name = name
        self.client = WsClient(shared.loop, shared.host, shared.port, self)
        self.active_poll: int | None = None
        self._pending: dict[str, str] = {}  # messageId -> marker ('' for REGISTER/END)
        self._on_registered = on_registered
        self._counts = {"T": 0, "P": 0, "A": 0}

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self.client.connect()

    def play_track(self) -> None:
        marker = self._next("T")
        track = track_info(marker)
        self._event(
            "NOW_PLAYING", marker, {"type": "BROADCAST_TRACK", "sessionId": self.rec.session, "track": track}
        )

    def start_poll(self, options: int = 3) -> None:
        if self.active_poll is not None:
            return  # one poll at a time: the server refuses a second
        marker = self._next("P")
        message = {
            "type": "START_POLL",
            "sessionId": self.rec.session,
            "question": f"{marker} Which style next?",
            "options": ["Lindy", "Balboa", "Blues", "Shag"][:options],
        }
        self._event("POLL_STARTED", marker, message)

    def end_poll(self) -> None:
        if self.active_poll is not None:
            poll_id, self.active_poll = self.active_poll, None
            self._command({"type": "END_POLL", "pollId": poll_id}, f"end-poll-{poll_id}")

    def announce(self, push: bool = False) -> None:
        marker = self._next("A")
        message = {
            "type": "SEND_ANNOUNCEMENT",
            "sessionId": self.rec.session,
            "message": f"{marker} Next up: the jam circle",
            "durationSeconds": 60 if push else 15,
            "push": push,
        }
        self._event("ANNOUNCEMENT_RECEIVED", marker, message)

    def push_announce(self) -> None:
        """An announcement also sent as a Web Push to the session's subscribers."""
        self.announce(push=True)

    def end_session(self) -> None:
        self._command({"type": "END_SESSION", "sessionId": self.rec.session}, "end")

    def close(self) -> None:
        self.client.close(1000)

    # -- Peer ----------------------------------------------------------------------------------

    def on_open(self, now: float) -> None:
        self._command({"type": "REGISTER_SESSION", "sessionId": self.rec.session, "djName": self.name}, "reg")

    def on_closed(self, code: int, by_server: bool, error: str | None, now: float) -> None:
        self.rec.close_code, self.rec.closed_by_server = code, by_server
        if self.rec.t_registered is None:
            self.rec.error = self.rec.error or error or f"closed {code} before SESSION_REGISTERED"
            self._on_registered()
        self._pending.clear()

    def on_text(self, payload: bytes, now: float) -> None:
        rec = self.rec
        msg = json.loads(payload)
        kind = msg.get("type")
        if kind == "LIKE_RECEIVED":
            track = (msg.get("payload") or {}).get("track") or {}
            rec.likes.append((now, marker_of(track.get("title"))))
        elif kind == "REACTION_RECEIVED":
            rec.reactions.append(now)
        elif kind == "TEMPO_FEEDBACK":
            rec.tempo_feedback += 1
        elif kind == "POLL_STARTED":
            poll_id = msg.get("pollId")
            if type(poll_id) is int:
                rec.poll_ids[poll_id] = marker_of(msg.get("question"))
                self.active_poll = poll_id
        elif kind in ("POLL_UPDATE", "POLL_ENDED"):
            poll_id, total = msg.get("pollId"), msg.get("totalVotes")
            if type(poll_id) is int and type(total) is int:
                rec.poll_totals.setdefault(poll_id, []).append((now, total))
        elif kind in ("ACK", "NACK"):
            self._answered(msg, now)

    # -- helpers -------------------------------------------------------------------------------

    def _next(self, letter: str) -> str:
        self._counts[letter] += 1
        return f"{letter}{self._counts[letter]}"

    def _event(self, kind: str, marker: str, message: dict[str, Any]) -> None:
        if self.rec.t_registered is None or self.client.state != OPEN:
            return
        self.rec.events[marker] = SentEvent(kind, self.rec.session, marker, time.time())
        self._pending[marker] = marker
        message["messageId"] = marker
        self.client.send_text(json.dumps(message, separators=(",", ":")))

    def _command(self, message: dict[str, Any], message_id: str) -> None:
        self._pending[message_id] = ""
        message["messageId"] = message_id
        self.client.send_text(json.dumps(message, separators=(",", ":")))

    def _answered(self, msg: dict[str, Any], now: float) -> None:
        message_id = msg.get("messageId")
        marker = self._pending.pop(message_id, None)
        if marker is None:
            return
        error = None if msg["type"] == "ACK" else str(msg.get("error", "NACK without error"))
        if marker:
            event = self.rec.events[marker]
            event.t_answer, event.error = now, error
        elif message_id == "reg":
            if error is None:
                self.rec.t_registered = now
            else:
                self.rec.error = f"REGISTER_SESSION refused: {error}"
            self._on_registered()
        elif error is not None:
            self.rec.other_nacks[error] = self.rec.other_nacks.get(error, 0) + 1
