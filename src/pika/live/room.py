"""A room: one live DJ session, its audience, its state and its timers.

The room owns a nursery (started inside the hub's): the grace timer, coalesced
LISTENER_COUNT and later poll/announcement timers all live there, and closing the room
cancels them all.  `publish` encodes once and hands the same text to every member without
awaiting any of them.  State changes are written to PostgreSQL by the handlers *before* they
reach the room, so the room is a cache of the database that can be rebuilt at any time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import trio

from pika import metrics
from pika.live.connection import Connection
from pika.live.listeners import Listeners
from pika.live.timers import Coalescer, start_soon_unless_closing
from pika.protocol import TrackInfo, encode, iso


@dataclass
class NowPlaying:
    play_id: int
    track: TrackInfo


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
    dj_disconnected_at: float | None = None


class Room:
    def __init__(self, info: RoomInfo, audience: set[Connection], *, linger: float) -> None:
        self.session_id = info.session_id
        self.dj_name = info.dj_name
        self.dj_id = info.dj_id
        self.resume_key_sha256 = info.resume_key_sha256
        self.started_at = info.started_at
        self.last_activity = info.last_activity
        self.current = info.current
        self.dj_disconnected_at = info.dj_disconnected_at
        self.dj_conn: Connection | None = None
        self.audience = audience  # shared with the hub: subscribers may wait before a session is live
        self.listeners = Listeners(linger)
        self.ended = False
        self._nursery: trio.Nursery | None = None
        self._grace: trio.CancelScope | None = None
        self._listener_count: Coalescer | None = None
        self._sent_count: int | None = None
        self._count_window: Callable[[], float] = lambda: 2.0

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, count_window: Callable[[], float], task_status: trio.TaskStatus[None]) -> None:
        """The room's nursery: lives until `close()`; every timer of the room runs inside it."""
        self._count_window = count_window
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._listener_count = Coalescer(nursery, count_window, self._send_listener_count)
            now = trio.current_time()
            for member in self.audience:
                self.listeners.join(member.listener_id)
            task_status.started()
            self._poke_listeners(now)
            await trio.sleep_forever()

    def close(self) -> None:
        self.ended = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def start_timer(self, delay: float, action: Callable[[], Any]) -> trio.CancelScope:
        """Run `action()` (sync, or returning an awaitable) after `delay` seconds, unless cancelled."""
        assert self._nursery is not None
        scope = trio.CancelScope()

        async def timer() -> None:
            with scope:
                await trio.sleep(delay)
                result = action()
                if hasattr(result, "__await__"):
                    await result

        if not start_soon_unless_closing(self._nursery, timer):
            scope.cancel()
        return scope

    def start_grace(self, seconds: float, on_expiry: Callable[[], Any]) -> None:
        self.cancel_grace()
        self._grace = self.start_timer(seconds, on_expiry)

    def cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    # -- members --------------------------------------------------------------------------------

    def members(self) -> Iterator[Connection]:
        yield from self.audience
        if self.dj_conn is not None and self.dj_conn not in self.audience:
            yield self.dj_conn

    @property
    def member_count(self) -> int:
        return len(self.audience) + (
            1 if self.dj_conn is not None and self.dj_conn not in self.audience else 0
        )

    def publish(self, message: dict[str, Any]) -> None:
        """Send to the session audience (subscribers and the DJ): encoded once, never waits."""
        frame = encode(message)
        sent = 0
        for member in self.members():
            member.send(frame)
            sent += 1
        metrics.MESSAGES_OUT.labels(message["type"]).inc(sent)

    def to_dj(self, message: dict[str, Any]) -> None:
        if self.dj_conn is not None:
            self.dj_conn.send_message(message)
            metrics.MESSAGES_OUT.labels(message["type"]).inc()

    # -- listeners ------------------------------------------------------------------------------

    def listener_joined(self, conn: Connection) -> None:
        self.listeners.join(conn.listener_id)
        self._poke_listeners(trio.current_time())

    def listener_left(self, conn: Connection) -> None:
        now = trio.current_time()
        self.listeners.leave(conn.listener_id, now)
        self._poke_listeners(now)

    def listener_count(self) -> int:
        return self.listeners.count(trio.current_time())

    def listener_count_message(self) -> dict[str, Any]:
        return {"type": "LISTENER_COUNT", "sessionId": self.session_id, "count": self.listener_count()}

    def _poke_listeners(self, now: float) -> None:
        if self._listener_count is None:
            return
        self._listener_count.poke()
        expiry = self.listeners.next_expiry()
        if expiry is not None and math.isfinite(expiry):
            self._listener_count.poke_at(expiry)

    def _send_listener_count(self) -> None:
        message = self.listener_count_message()
        if message["count"] != self._sent_count:
            self._sent_count = message["count"]
            self.publish(message)

    # -- what a late joiner or a resuming DJ is shown ----------------------------------------

    def now_playing_message(self) -> dict[str, Any] | None:
        if self.current is None:
            return None
        return {
            "type": "NOW_PLAYING",
            "sessionId": self.session_id,
            "djName": self.dj_name,
            "track": self.current.track.to_wire(),
        }

    def state_messages(self, conn: Connection) -> list[dict[str, Any]]:
        """The session's current state, in the order PROTOCOL.md §3.2 gives (track, poll, announcement)."""
        now_playing = self.now_playing_message()
        return [now_playing] if now_playing else []

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
        return entry
