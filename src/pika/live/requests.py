"""What every handler works with: the request, the two ways it can decline, the DJ's room turn.

A handler receives a `Request` (hub, connection, typed message, who sent it) and either
returns normally (the dispatcher ACKs), raises `Refusal` (NACK/ERROR with its text), or meets
`Duplicate` inside its transaction (the messageId was applied before: a bare ACK).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import outcome

from pika.db import Tx
from pika.live.core.state import RoomState
from pika.queries import query

if TYPE_CHECKING:
    from pika.live.connection import Connection
    from pika.live.core.effects import Write
    from pika.live.group_commit import Notices
    from pika.live.hub import Hub
    from pika.live.room import Room

CLAIM_MESSAGES = query("claim_messages")
T = TypeVar("T")


class Refusal(Exception):
    """A well-formed message that cannot be applied; `str()` is the NACK/ERROR text.

    `close_code`: close the connection once the refusal has been sent (e.g. 'Server busy').
    """

    def __init__(self, error: str, *, close_code: int | None = None) -> None:
        super().__init__(error)
        self.close_code = close_code


class Duplicate(Exception):
    """The messageId was already applied for this sender: answer ACK, change nothing."""


@dataclass
class Request:
    hub: Hub
    conn: Connection
    msg: Any
    sender: str
    # the sender's ACK/NACK from the outcome (given the request, so that it holds no cycle)
    answer: Callable[[Request, outcome.Outcome[Any]], None]
    submitted: bool = False  # `act` queued it: `answer` is called once its batch committed

    async def write(self, work: Callable[[Tx], T] | Write, notices: Notices | None = None) -> T:
        """A dancer action's SQL (or row), group-committed with others (live/group_commit.py),
        its messageId claimed there.  `work` must refuse before it writes."""
        return await self.hub.writes.write(self.sender, self.msg.message_id, work, notices=notices)

    async def settle(self, room: Room, command: Any) -> None:
        """A DJ-side command, in the room's turn: decided by the room core, its writes committed
        with this message's claim, then its frames sent (live/shell.py)."""
        await self.hub.shell.settle(room, command, self.sender, self.msg.message_id, self.conn)

    def act(self, room: Room | RoomState, action: Any) -> None:
        """A dancer action: decided by the room core, group-committed, then told (live/shell.py);
        on a room owned by another process (its `RoomState` as PostgreSQL holds it), told to
        that process (live/relay.py).  It returns at once, before the commit (`submitted`: the
        flusher answers the sender), so it is a handler's last step."""
        hub = self.hub
        self.submitted = True
        self.conn.action_started()
        message_id = self.msg.message_id
        if not isinstance(room, RoomState):
            hub.shell.submit(room, action, self.sender, message_id, self.conn, self._answered)
            return
        relay = hub.relay
        assert relay is not None
        notice = functools.partial(relay.notice, room.session_id)
        hub.shell.submit_elsewhere(room, action, self.sender, message_id, self.conn, notice, self._answered)

    def _answered(self, result: outcome.Outcome[Any]) -> None:
        self.conn.action_answered()
        self.answer(self, result)

    def client(self) -> str:
        """The bound clientId dancer actions are recorded under (PROTOCOL.md §1)."""
        if self.conn.client_id is None:
            raise Refusal("Client ID required")
        return self.conn.client_id


AfterAck = Callable[[], None]
Handler = Callable[[Request], Awaitable[AfterAck | None]]


def claim(tx: Tx, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Record each (sender, messageId) pair as applied (each pair given once); return the new ones.
    One statement for one message or a whole group-commit batch."""
    rows = tx.all(CLAIM_MESSAGES, pairs=json.dumps(keys))
    return {(row["sender"], row["message_id"]) for row in rows}


def require_dj(req: Request, session_id: str | None) -> Room:
    """The room whose DJ (or controller) sent this; `session_id` None: whichever that is."""
    room = req.conn.dj_room
    mismatch = session_id is not None and room is not None and room.session_id != session_id
    if room is None or mismatch or not room.is_dj(req.conn) or room.ended:
        raise Refusal("Not the DJ of this session")
    return room


@asynccontextmanager
async def dj_turn(req: Request, session_id: str | None) -> AsyncIterator[Room]:
    """The DJ's (or a controller's) room, in its turn: no other DJ-side command or housekeeping
    action of the room runs until the block ends.  Checked again once the turn comes: the
    session may have ended, or this connection left it, while the command waited."""
    room = require_dj(req, session_id)
    async with room.turn:
        if require_dj(req, session_id) is not room:
            raise Refusal("Not the DJ of this session")
        yield room


def live_room(req: Request, session_id: str) -> Room:
    room = req.hub.rooms.get(session_id)
    if room is None:
        raise Refusal("Session is not live")
    return room


async def dancer_room(req: Request, session_id: str) -> Room | RoomState:
    """The live room a dancer acts on: this process's, or the state of one another process
    owns, read from PostgreSQL (live/replica.py)."""
    room = req.hub.rooms.get(session_id)
    if room is not None:
        return room
    if req.hub.relay is not None:
        replica = await req.hub.relay.replicas.get(session_id)
        if replica is not None:
            return replica.state()
    raise Refusal("Session is not live")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
