"""The room shell: carries the room core's decisions (live/core) out — writes committed first,
then frames, timers and refusals released in decision order, so nothing is visible before it
is durable and the database holds what the room decided, in the order it decided it.

Every write goes through the group commit (one queue, batches across rooms), so the database
commits them in the order they were decided.  DJ-side commands and timers `settle` in the
room's turn: their writes and messageId claim as one action of a batch, then the frames.  Dancer
actions are `submit`ted without a turn: decided at once, their row queued; what they change in
the room, their frames and the sender's ACK are decided by the flusher once the batch committed,
in batch order (after the DJ-side command in flight, when one is).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn

import outcome
import trio

from pika.db import DatabaseStalled, Tx
from pika.live.clock import Clock
from pika.live.connection import Connection
from pika.live.core.commands import (
    CastTempo,
    Command,
    Committed,
    Like,
    PollVote,
    Rejected,
    Stored,
    Thanks,
    TimerFired,
    WriteFailed,
)
from pika.live.core.effects import (
    Audience,
    CancelTimer,
    Effect,
    Poke,
    Refuse,
    Send,
    SetTimer,
    TempoClosed,
    Write,
)
from pika.live.core.room import decide
from pika.live.core.state import RoomState
from pika.live.fanout import Publisher
from pika.live.group_commit import Answer, GroupCommit, Notice
from pika.live.requests import Refusal
from pika.live.room import Room

DancerAction = Like | CastTempo | Thanks | PollVote


class _NoRow(Refusal):
    """A write that completes its command returned nothing: refused, its claim forgotten."""


class RoomShell:
    def __init__(
        self,
        writes: GroupCommit,
        clock: Clock,
        publisher: Publisher,
        on_end: Callable[[Room], None],
    ) -> None:
        self._writes = writes
        self._clock = clock
        self._publisher = publisher
        self._on_end = on_end  # the hub forgets an ended room

    # -- DJ-side commands and timers -------------------------------------------------------------

    async def settle(
        self,
        room: Room,
        command: Command,
        sender: str = "",
        message_id: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Decide `command` in the room's turn (the caller holds it), commit its writes and the
        claim of `message_id` in the group commit, behind every write decided before it, then
        release its frames.  Raises `Refusal` (nothing changed)."""
        now = self._clock.now()
        state, effects = decide(room.state, command, now)
        writes = [e for e in effects if isinstance(e, Write)]
        if not writes and message_id is None:
            self._carry_out(room, state, effects, conn)
            return
        room.settling = settled = trio.Event()

        def carry_out(row: dict[str, Any] | None) -> None:
            try:
                if state.pending is None:
                    self._carry_out(room, state, effects, conn)
                else:
                    stored, more = decide(state, Stored(row), now)
                    self._carry_out(room, stored, (*effects, *more), conn)
            finally:
                _settled(room, settled)

        try:
            # released by the flusher as the batch commits: its frames do not wait for this task's turn
            work = functools.partial(_commit, writes=writes)
            await self._writes.write(sender, message_id, work, carry_out, ends_batch=True)
        except _NoRow:
            carry_out(None)
        except DatabaseStalled:
            if state.pending is not None:
                room.state, _ = decide(state, WriteFailed(), now)
            raise
        finally:
            _settled(room, settled)

    def timer(self, room: Room, name: str) -> Callable[[], Any]:
        return lambda: self.settle(room, TimerFired(name))

    def now(self, room: Room, command: Command) -> None:
        """A command that writes nothing (the DJ leaving or back), decided at once, or right
        after the DJ-side write in flight (whose decision would otherwise overwrite it)."""
        if room.settling is not None:
            room.deferred.append(lambda: self.now(room, command))
            return
        state, effects = decide(room.state, command, self._clock.now())
        assert not any(isinstance(e, Write) for e in effects), command
        self._carry_out(room, state, effects, None)

    # -- dancer actions --------------------------------------------------------------------------

    def submit(
        self,
        room: Room,
        action: DancerAction,
        sender: str,
        message_id: str | None,
        conn: Connection,
        answer: Answer,
    ) -> None:
        """Decide a dancer action now and queue its row; once the batch committed, decide what it
        changes (after the DJ-side write of the room in flight, when one is), then `answer` with
        the outcome (the sender's ACK or NACK).  Never waits: the reader goes back to its socket."""
        state, effects = decide(room.state, action, self._clock.now())
        if len(effects) != 1 or not isinstance(write := effects[0], Write):
            answer(outcome.capture(self._carry_out, room, state, effects, conn))  # refused, or nothing
            return

        def release(_: Any) -> None:
            if room.settling is None:
                self._decide(room, Committed(action, write), conn)
            else:
                room.deferred.append(lambda: self._decide(room, Committed(action, write), conn))

        def committed(result: outcome.Outcome[Any]) -> None:
            result = self._judged(room, action, conn, result)
            if room.settling is not None and isinstance(result, outcome.Value):
                room.deferred.append(lambda: answer(result))  # told after its deferred decision
            else:
                answer(result)

        self._writes.submit(sender, message_id, write, release, committed)

    def submit_elsewhere(
        self,
        state: RoomState,
        action: DancerAction,
        sender: str,
        message_id: str | None,
        conn: Connection,
        notice: Callable[[DancerAction, Write], Notice],
        answer: Answer,
    ) -> None:
        """`submit` on a room another process owns (`state`: as PostgreSQL holds it): decided and
        group-committed here, its `notice` to the owner (whose room decides what it changes) sent
        in the same transaction; the sender hears here what concerns only it (VOTE_CONFIRMED, a
        refusal), then `answer`."""
        now = self._clock.now()
        _, effects = decide(state, action, now)
        if len(effects) != 1 or not isinstance(write := effects[0], Write):
            answer(outcome.capture(_to_sender, effects, conn))
            return

        def committed(result: outcome.Outcome[Any]) -> None:
            result = self._judged(state, action, conn, result)
            if isinstance(result, outcome.Value):
                result = outcome.capture(_to_sender, decide(state, Committed(action, write), now)[1], conn)
            answer(result)

        notices = (notice(action, write),)
        self._writes.submit(sender, message_id, write, None, committed, lambda _: notices)

    def told(self, room: Room, action: DancerAction, play_id: int | None) -> None:
        """A dancer action another process committed (`play_id`: the play a tempo vote is
        for): decided here as if committed here, unless it no longer applies to the room."""
        _, effects = decide(room.state, action, self._clock.now())
        if len(effects) != 1 or not isinstance(write := effects[0], Write):
            return  # e.g. the poll closed meanwhile: stored, the result was already final
        if write.params.get("play_id") != play_id:
            return  # the track changed meanwhile: the vote stays with its play
        if room.settling is None:
            self._decide(room, Committed(action, write), None)
        else:
            room.deferred.append(lambda: self._decide(room, Committed(action, write), None))

    def reject(self, room: Room | RoomState, action: DancerAction, reason: str, conn: Connection) -> NoReturn:
        """Refuse a dancer action for `reason` (a voter also gets VOTE_REJECTED)."""
        if isinstance(room, RoomState):  # owned by another process: only the sender hears of it
            _to_sender(decide(room, Rejected(action, reason), self._clock.now())[1], conn)
        else:
            self._decide(room, Rejected(action, reason), conn)
        raise Refusal(reason)  # the decision raised it already: a Rejected always refuses

    def _judged(
        self, room: Room | RoomState, action: DancerAction, conn: Connection, result: outcome.Outcome[Any]
    ) -> outcome.Outcome[Any]:
        """A submitted action's batch outcome as its sender hears it: a refusal (the statement
        refused its row) is decided as the action's rejection (VOTE_REJECTED to a voter)."""
        if isinstance(result, outcome.Error) and isinstance(result.error, Refusal):
            return outcome.capture(self.reject, room, action, str(result.error), conn)
        return result

    def _decide(self, room: Room, command: Command, conn: Connection | None) -> None:
        state, effects = decide(room.state, command, self._clock.now())
        self._carry_out(room, state, effects, conn)

    # -- effects ---------------------------------------------------------------------------------

    def _carry_out(
        self, room: Room, state: RoomState, effects: tuple[Effect, ...], conn: Connection | None
    ) -> None:
        """Install the decided state, then release its effects in order (writes are done)."""
        was_ended = room.state.ended
        room.state = state
        refusal: str | None = None
        for effect in effects:
            if isinstance(effect, Send):
                self._publisher.publish(room, effect, conn)
            elif isinstance(effect, Poke):
                _POKES[effect.what](room)
            elif isinstance(effect, SetTimer):
                room.set_timer(effect.name, effect.at - self._clock.now(), self.timer(room, effect.name))
            elif isinstance(effect, CancelTimer):
                room.cancel_timer(effect.name)
            elif isinstance(effect, TempoClosed):
                room.close_tempo(effect.counts)
            elif isinstance(effect, Refuse):
                refusal = effect.reason
        if state.ended and not was_ended:
            self._on_end(room)
        if refusal is not None:
            raise Refusal(refusal)


def _settled(room: Room, settled: trio.Event) -> None:
    """The room's DJ-side write is done (once): what dancer actions were told to wait for it goes on."""
    if room.settling is not settled:
        return
    room.settling = None
    settled.set()
    deferred, room.deferred = room.deferred, []
    for release in deferred:
        release()


def _to_sender(effects: tuple[Effect, ...], conn: Connection) -> None:
    """What a decision on a replica's state sends the sender, then its refusal (if any)."""
    refusal: str | None = None
    for effect in effects:
        if isinstance(effect, Send) and effect.audience is Audience.SENDER:
            for message in effect.messages:
                conn.send_message(message)
        elif isinstance(effect, Refuse):
            refusal = effect.reason
    if refusal is not None:
        raise Refusal(refusal)


_POKES: dict[str, Callable[[Room], None]] = {
    "tempo": Room.tempo_changed,
    "poll": Room.poll_changed,
    "poll_reset": Room.reset_poll_updates,
}


def _commit(tx: Tx, writes: list[Write]) -> dict[str, Any] | None:
    """In the group commit's worker thread: each write in order; the row a `feeds` write
    returned.  A batch has no savepoints, so a feeds write that may return nothing comes first."""
    fed = None
    for at, write in enumerate(writes):
        if write.feeds:
            fed = tx.one(write.query, **write.params)
            if fed is None:
                assert at == 0, "a refusing write after others would leave them written"
                raise _NoRow("")
        else:
            tx.execute(write.query, **write.params)
    return fed
