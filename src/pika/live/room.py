"""A room: one live DJ session, its audience, its state and its timers.

The rules' state is `state` (live/core), changed only by the shell (live/shell.py); the room
adds what is not a rule: its connections, `publish` (encodes once, never awaits a member), the
coalesced feedback (PROTOCOL.md §6), the timers, and the `turn` that runs DJ-side commands and
housekeeping one at a time, in arrival order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from pika import metrics
from pika.db import DatabaseStalled
from pika.live.announcements import Announcement
from pika.live.clock import Clock
from pika.live.connection import Connection
from pika.live.core.state import NowPlaying, RoomState
from pika.live.listener_journal import ListenerJournal
from pika.live.listeners import Listeners
from pika.live.polls import Poll
from pika.live.tempo import TempoCounts, TempoTally
from pika.live.timers import Coalescer, start_soon_unless_closing
from pika.live.track_pace import TrackPace
from pika.live.wire import ROOM, SUBSCRIBERS, Frame, frame, joined
from pika.protocol import iso

TIMER_RETRY = 1.0  # s before a timer's action runs again when the database did not answer in time


@dataclass
class RoomInfo:
    """What a room is made from: a new session's row, or a live one read back after a restart."""

    session_id: str
    dj_name: str
    dj_id: int | None
    resume_key_sha256: str
    started_at: float  # epoch seconds
    last_activity: float
    current: NowPlaying | None = None
    tempo: TempoTally = field(default_factory=TempoTally)
    poll: Poll | None = None
    announcement: Announcement | None = None
    lingering: list[tuple[str, float]] = field(default_factory=list)  # (clientId, left at, epoch s)


@dataclass(frozen=True)
class Windows:
    """Coalescing windows (PROTOCOL.md §6), doubled for audiences past `large_room` members."""

    listener_count: float = 2.0
    tempo_feedback: float = 1.0
    poll_update_dj: float = 0.25
    poll_update: float = 1.0
    large_room: int = 5000
    tempo_lapse: float = 300.0


class Room:
    def __init__(
        self,
        info: RoomInfo,
        audience: set[Connection],
        *,
        clock: Clock,
        linger: float,
        windows: Windows,
        journal: ListenerJournal,
        track_pace: TrackPace,
    ) -> None:
        self.clock = clock  # every rule's `now`; the timers sleep on the trio clock it reads
        self.session_id = info.session_id
        self.dj_id = info.dj_id
        self.resume_key_sha256 = info.resume_key_sha256
        self.started_at = info.started_at
        self.windows = windows
        # What the rules decide on (live/core): changed only by the shell (live/shell.py).
        self.state = RoomState(
            info.session_id,
            info.dj_name,
            pace=track_pace,
            listeners=Listeners(linger),
            current=info.current,
            tempo=info.tempo,
            tempo_lapse=windows.tempo_lapse,
            poll=info.poll,
            announcement=info.announcement,
            last_activity=info.last_activity,
        )
        # One DJ-side command or housekeeping action at a time, in arrival order (trio.Lock is
        # fair): handlers take it through `requests.dj_turn`, timers in `start_timer`.
        self.turn = trio.Lock()
        # Set while a DJ-side command's write is in flight: dancer actions committed meanwhile
        # are decided once it settles (`deferred`), in commit order (live/shell.py).
        self.settling: trio.Event | None = None
        self.deferred: list[Callable[[], None]] = []
        self.dj_conn: Connection | None = None
        self.controllers: set[Connection] = set()  # DJ consoles (ATTACH_SESSION): hear what the DJ hears
        self.audience = audience  # shared with the hub: subscribers may wait before a session is live
        # The relay (live/relay.py): what the audience gets also goes to other processes' members.
        self.relay: Callable[[str, str, Frame], None] | None = None
        self._journal = journal
        for client, left in info.lingering:
            self.listeners.restore(client, left)
        self._nursery: trio.Nursery | None = None
        self._timers: dict[str, trio.CancelScope] = {}
        self._listener_count: Coalescer | None = None
        self._tempo_feedback: Coalescer | None = None
        self._poll_update_dj: Coalescer | None = None
        self._poll_update: Coalescer | None = None
        self._sent_count: int | None = None
        self._sent_tempo: TempoCounts | None = None
        self._sent_poll_votes: tuple[int, ...] | None = None
        self._sent_poll_votes_dj: tuple[int, ...] | None = None

    # -- the state's parts, by name ---------------------------------------------------------------

    @property
    def dj_name(self) -> str:
        return self.state.dj_name

    @property
    def current(self) -> NowPlaying | None:
        return self.state.current

    @property
    def tempo(self) -> TempoTally:
        return self.state.tempo

    @property
    def poll(self) -> Poll | None:
        return self.state.poll

    @property
    def announcement(self) -> Announcement | None:
        return self.state.announcement

    @property
    def listeners(self) -> Listeners:
        return self.state.listeners

    @property
    def ended(self) -> bool:
        return self.state.ended

    @property
    def last_activity(self) -> float:
        return self.state.last_activity

    @property
    def dj_disconnected_at(self) -> float | None:
        return self.state.dj_away_since

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        """The room's nursery: lives until `close()`; every timer of the room runs inside it."""
        w = self.windows
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._listener_count = Coalescer(
                nursery, self._audience_window(w.listener_count), self._send_count
            )
            self._tempo_feedback = Coalescer(nursery, lambda: w.tempo_feedback, self.send_tempo_feedback)
            self._poll_update_dj = Coalescer(nursery, lambda: w.poll_update_dj, self._send_poll_update_dj)
            self._poll_update = Coalescer(
                nursery, self._audience_window(w.poll_update), self._send_poll_update
            )
            for member in self.audience:
                self._join(member)
            task_status.started()
            self._poke_listeners()
            await trio.sleep_forever()

    def close(self) -> None:
        self.state.ended = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def start_timer(self, delay: float, action: Callable[[], Any]) -> trio.CancelScope:
        """Run `action()` (sync, or returning an awaitable) after `delay` seconds, in the room's
        turn, unless cancelled or the room ended meanwhile.  An action the database could not
        complete in time (nothing of it applied) runs again a little later, until it completes
        or the timer is cancelled."""
        assert self._nursery is not None
        scope = trio.CancelScope()

        async def timer() -> None:
            with scope:
                await trio.sleep(delay)
                while True:
                    try:
                        async with self.turn:
                            if self.ended:
                                return
                            result = action()
                            if hasattr(result, "__await__"):
                                await result
                        return
                    except DatabaseStalled:
                        await trio.sleep(TIMER_RETRY)

        if not start_soon_unless_closing(self._nursery, timer):
            scope.cancel()
        return scope

    def set_timer(self, name: str, delay: float, action: Callable[[], Any]) -> None:
        """The room's timer `name` (poll, announcement, grace), replacing the one armed before."""
        self.cancel_timer(name)
        self._timers[name] = self.start_timer(max(0.0, delay), action)

    def cancel_timer(self, name: str) -> None:
        scope = self._timers.pop(name, None)
        if scope is not None:
            scope.cancel()

    def _audience_window(self, base: float) -> Callable[[], float]:
        """An audience-wide message costs one send per member: past `large_room`, wait twice as long."""
        return lambda: base * (2 if self.member_count > self.windows.large_room else 1)

    # -- members --------------------------------------------------------------------------------

    def members(self) -> Iterator[Connection]:
        yield from self.audience
        yield from self._dj_side_only()

    @property
    def member_count(self) -> int:
        return len(self.audience) + sum(1 for _ in self._dj_side_only())

    def is_dj(self, conn: Connection) -> bool:
        """The DJ connection or one of its controllers: may do what the DJ does (PROTOCOL.md §2)."""
        return conn is self.dj_conn or conn in self.controllers

    def _dj_side(self) -> Iterator[Connection]:
        if self.dj_conn is not None:
            yield self.dj_conn
        yield from self.controllers

    def _dj_side_only(self) -> Iterator[Connection]:
        """The DJ side's connections that are not also subscribers."""
        return (conn for conn in self._dj_side() if conn not in self.audience)

    def publish(self, *messages: dict[str, Any]) -> None:
        """Send to the session audience (subscribers and the DJ): encoded once, never waits.
        Several messages go back to back in one write per member."""
        encoded = self._fan_out(messages, self.members())
        if self.relay is not None:
            self.relay(self.session_id, ROOM, encoded)

    def publish_subscribers(self, message: dict[str, Any]) -> None:
        """Like `publish`, without the DJ side (which has its own, faster POLL_UPDATE)."""
        encoded = self._fan_out((message,), (m for m in self.audience if not self.is_dj(m)))
        if self.relay is not None:
            self.relay(self.session_id, SUBSCRIBERS, encoded)

    def _fan_out(self, messages: tuple[dict[str, Any], ...], recipients: Iterable[Connection]) -> Frame:
        encoded = joined([frame(m) for m in messages])
        sent = 0
        for member in recipients:
            member.send(encoded)
            sent += 1
        for message in messages:
            metrics.child(metrics.MESSAGES_OUT, message["type"]).inc(sent)
        return encoded

    def to_dj(self, message: dict[str, Any]) -> None:
        """To the DJ connection and its controllers only (LIKE_RECEIVED, TEMPO_FEEDBACK, …)."""
        self._fan_out((message,), self._dj_side())

    # -- listeners ------------------------------------------------------------------------------

    def listener_joined(self, conn: Connection) -> None:
        self._join(conn)
        # Counted at the next tick, not now: the subscriber's SUBSCRIBE replies go first (§3.2).
        if self._listener_count is not None:
            self._listener_count.poke_at(trio.current_time())

    def listener_left(self, conn: Connection) -> None:
        now = self.clock.now()
        if self.listeners.leave(conn.listener_id, now) and conn.client_id is not None:
            self._journal.left(self.session_id, conn.client_id, now)
        self._poke_listeners()

    def remote_members(self, origin: str, members: list[str]) -> None:
        """Another process's members of this room (reported by its relay) count here as they
        would if connected here: joined, or lingering once gone (PROTOCOL.md §7), gone too when
        the process stops reporting (a re-count is armed for then: `_recheck_listeners`)."""
        if self.listeners.report(origin, members, self.clock.now()):
            self._poke_listeners()

    def _join(self, conn: Connection) -> None:
        # Only a clientId is kept across a restart: a bare connection is not recognisable again.
        if self.listeners.join(conn.listener_id) and conn.client_id is not None:
            self._journal.opened(self.session_id, conn.client_id)

    def listener_count(self) -> int:
        return self.listeners.count(self.clock.now())

    def listener_count_message(self) -> dict[str, Any]:
        return {"type": "LISTENER_COUNT", "sessionId": self.session_id, "count": self.listener_count()}

    def _poke_listeners(self) -> None:
        if self._listener_count is None:
            return
        self._listener_count.poke()
        self._recheck_listeners()

    def _recheck_listeners(self) -> None:
        """Arm a re-count for when the count may next drop by itself (linger, silent process)."""
        expiry = self.listeners.next_expiry()
        if self._listener_count is not None and expiry is not None and math.isfinite(expiry):
            self._listener_count.poke_at(self.clock.deadline(expiry))

    def _send_count(self) -> None:
        message = self.listener_count_message()
        self._recheck_listeners()
        if message["count"] != self._sent_count:
            self._sent_count = message["count"]
            self.publish(message)

    # -- tempo and polls: coalesced feedback ---------------------------------------------------

    def tempo_counts(self) -> TempoCounts:
        return self.tempo.counts(self.clock.now(), self.windows.tempo_lapse)

    def tempo_changed(self) -> None:
        if self._tempo_feedback is not None:
            self._tempo_feedback.poke()
            self._recheck_tempo()

    def _recheck_tempo(self) -> None:
        """Arm a re-count for when the oldest live tempo vote lapses."""
        self.tempo.prune(self.clock.now(), self.windows.tempo_lapse)
        lapse = self.tempo.next_lapse(self.windows.tempo_lapse)
        if self._tempo_feedback is not None and lapse is not None:
            self._tempo_feedback.poke_at(self.clock.deadline(lapse))

    def send_tempo_feedback(self) -> TempoCounts:
        """Send the DJ the live tally if it changed since the last one; returns the tally."""
        self._recheck_tempo()
        counts = self.tempo_counts()
        if counts != self._sent_tempo:
            self._sent_tempo = counts
            self.to_dj(counts.feedback(self.session_id))
        return counts

    def close_tempo(self, stored: TempoCounts) -> None:
        """The play ended with the tally `stored` (the state's votes were reset): the DJ sees
        exactly that, and the next feedback starts afresh."""
        if stored != self._sent_tempo and (stored.total or self._sent_tempo is not None):
            self.to_dj(stored.feedback(self.session_id))
        self._sent_tempo = None

    def poll_changed(self) -> None:
        for coalescer in (self._poll_update_dj, self._poll_update):
            if coalescer is not None:
                coalescer.poke()

    def reset_poll_updates(self) -> None:
        self._sent_poll_votes = self._sent_poll_votes_dj = None

    def _send_poll_update_dj(self) -> None:
        if self.poll is not None and tuple(self.poll.votes()) != self._sent_poll_votes_dj:
            self._sent_poll_votes_dj = tuple(self.poll.votes())
            self.to_dj(self.poll.update_message())

    def _send_poll_update(self) -> None:
        if self.poll is not None and tuple(self.poll.votes()) != self._sent_poll_votes:
            self._sent_poll_votes = tuple(self.poll.votes())
            self.publish_subscribers(self.poll.update_message())

    # -- what a late joiner or a resuming DJ is shown ----------------------------------------

    def state_messages(self, conn: Connection) -> list[dict[str, Any]]:
        return self.state.state_messages(conn.listener_id, self.clock.now())

    def summary(self) -> dict[str, Any]:
        """One entry of SESSIONS_LIST."""
        entry: dict[str, Any] = {
            "sessionId": self.session_id,
            "djName": self.dj_name,
            "startedAt": iso(self.started_at),
            "listenerCount": self.listener_count(),
        }
        if self.current is not None:
            entry["currentTrack"] = self.current.track.to_wire()
        if self.announcement is not None and self.announcement.active(self.clock.now()):
            entry["activeAnnouncement"] = self.announcement.summary()
        return entry
