"""Dispatch: one inbound frame → parse → dedupe → handler → ACK, NACK or ERROR.

`receive` is the one entry point for a frame, from either transport.  It parses once
(pika.protocol), binds the clientId, answers an already-applied messageId with a bare ACK, runs
the handler, and turns a `Refusal` into NACK (or ERROR when there is no messageId).  A handler's
writes and the claim of its messageId commit in one transaction, before anything is broadcast:
an ACK always means durable, and a refused message is never remembered (a retry is processed anew).

A closing socket (or a server shutting down) must not cut a handler between its commit and its
broadcast, so handlers run shielded from cancellation, except the dancer actions, most of the
traffic: a like, a tempo vote, a thank-you or a poll vote is queued for the group commit and
answered by its flusher (`Request.act`, `_answer`), so the reader goes straight back to its socket.
"""

from __future__ import annotations

import functools
import logging

import outcome
import trio

from pika import metrics
from pika.db import DatabaseStalled
from pika.live import dancer_handlers, poll_handlers, session_handlers, track_handlers
from pika.live.connection import CLOSE_TRY_AGAIN, Connection
from pika.live.hub import Hub, OwnedElsewhere
from pika.live.requests import AfterAck, Duplicate, Handler, Refusal, Request
from pika.live.wire import ack_frame
from pika.protocol import (
    STATE_CHANGING,
    AttachSession,
    BroadcastTrack,
    CancelAnnouncement,
    CancelPoll,
    EndPoll,
    EndSession,
    GetSessions,
    Message,
    MetadataUpdated,
    Ping,
    ProtocolError,
    RegisterSession,
    RemoveLike,
    SendAnnouncement,
    SendBulkLike,
    SendLike,
    SendReaction,
    SendTempoRequest,
    StartPoll,
    Subscribe,
    TrackStopped,
    ValidateSession,
    VoteOnPoll,
    error,
    nack,
    parse,
)

log = logging.getLogger("pika.handlers")

HANDLERS: dict[type, Handler] = {
    RegisterSession: session_handlers.register_session,
    AttachSession: session_handlers.attach_session,
    EndSession: session_handlers.end_session,
    Subscribe: session_handlers.subscribe,
    GetSessions: session_handlers.get_sessions,
    ValidateSession: session_handlers.validate_session,
    Ping: session_handlers.ping,
    BroadcastTrack: track_handlers.broadcast_track,
    MetadataUpdated: track_handlers.metadata_updated,
    TrackStopped: track_handlers.track_stopped,
    SendLike: dancer_handlers.send_like,
    SendBulkLike: dancer_handlers.send_bulk_like,
    RemoveLike: dancer_handlers.remove_like,
    SendTempoRequest: dancer_handlers.send_tempo_request,
    SendReaction: dancer_handlers.send_reaction,
    StartPoll: poll_handlers.start_poll,
    EndPoll: poll_handlers.end_poll,
    CancelPoll: poll_handlers.cancel_poll,
    VoteOnPoll: poll_handlers.vote_on_poll,
    SendAnnouncement: poll_handlers.send_announcement,
    CancelAnnouncement: poll_handlers.cancel_announcement,
}

# Dancer actions: they await only before deciding (a replica's state) or `Request.write`, which
# answers a taken action even when its waiter is cancelled; `Request.act` does not wait at all.
UNSHIELDED = frozenset({SendLike, SendBulkLike, RemoveLike, SendTempoRequest, SendReaction, VoteOnPoll})

# Every state change is deduplicated by messageId, except REGISTER_SESSION: registering again
# is already idempotent (it resumes), and a bare ACK would leave the retrying DJ without a session.
DEDUPLICATED = STATE_CHANGING - {RegisterSession}


async def receive(hub: Hub, conn: Connection, frame: str | bytes) -> None:
    """One inbound frame from either transport.  While the loop lags, or a batch of actions
    waits for the group commit, a dancer's frame waits (loop_guard.py, `GroupCommit.room`); a DJ's never
    does.  A connection forwarded to its room's owner on another process sends everything there
    (live/forward.py)."""
    forward = hub.forward
    if forward is not None and forward.links:
        link = forward.links.get(conn)
        if link is not None:
            forward.carry(link, frame)
            return
    if conn.acting:  # answered in order: the previous action's ACK first
        await conn.actions_answered()
    if conn.dj_room is None:
        if hub.writes.full:  # a batch of actions is queued already: the DJ's next track goes first
            await hub.writes.room()
        if not hub.guard.open:
            await hub.guard.turn()
    await dispatch(hub, conn, frame)


async def dispatch(hub: Hub, conn: Connection, frame: str | bytes) -> None:
    try:
        msg: Message = parse(frame, hub.settings)
    except ProtocolError as exc:
        _refuse(hub, conn, exc.error, exc.message_id, "invalid")
        return
    metrics.child(metrics.MESSAGES_IN, msg.TYPE).inc()
    conn.bind_client(msg.client_id)
    message_id = msg.message_id
    deduplicated = message_id is not None and type(msg) in DEDUPLICATED
    req = Request(hub, conn, msg, _sender(conn), functools.partial(_answer, frame, deduplicated))
    result: outcome.Outcome[AfterAck | None]
    try:
        if deduplicated and hub.applied.seen(req.sender, message_id, hub.clock.now()):
            raise Duplicate
        if type(msg) in UNSHIELDED:
            result = outcome.Value(await HANDLERS[type(msg)](req))
        else:
            with trio.CancelScope(shield=True):
                result = outcome.Value(await HANDLERS[type(msg)](req))
    except Exception as exc:
        result = outcome.Error(exc)
    else:
        if req.submitted:
            return  # answered once its batch commits (Request.act)
    _answer(frame, deduplicated, req, result)


def _answer(
    frame: str | bytes, deduplicated: bool, req: Request, result: outcome.Outcome[AfterAck | None]
) -> None:
    """Tell the sender how its message went: ACK (then the handler's `after`), or NACK/ERROR."""
    hub, conn, msg = req.hub, req.conn, req.msg
    message_id = msg.message_id
    try:
        after = result.unwrap()
    except OwnedElsewhere as exc:  # the room's DJ side is served by its owner
        if hub.forward is None:
            _refuse(hub, conn, "Server busy", message_id, "refused")
            conn.close_soon(CLOSE_TRY_AGAIN, "Server busy", after_queued=True)
        else:
            hub.forward.start(conn, exc.args[0], frame)
        return
    except Duplicate:
        now = hub.clock.now()
        hub.applied.add(req.sender, message_id, now)
        conn.send(ack_frame(message_id, now))
        return
    except Refusal as exc:
        _refuse(
            hub, conn, str(exc), message_id, "rate_limited" if "rate limit" in str(exc).lower() else "refused"
        )
        if exc.close_code is not None:
            conn.close_soon(exc.close_code, str(exc), after_queued=True)
        return
    except DatabaseStalled as exc:  # nothing was applied: a retry with the same messageId is safe
        _refuse(hub, conn, str(exc), message_id, "database")
        return
    except Exception:
        log.exception("handler failed", extra={"fields": {"type": msg.TYPE, "conn": conn.id}})
        _refuse(hub, conn, "Internal error; nothing was changed, try again", message_id, "internal")
        return
    if message_id:
        now = hub.clock.now()
        if deduplicated:
            hub.applied.add(req.sender, message_id, now)
        conn.send(ack_frame(message_id, now))
    if after is not None:
        after()


def _refuse(hub: Hub, conn: Connection, text: str, message_id: str | None, reason: str) -> None:
    metrics.NACKS.labels(reason).inc()
    conn.send_message(nack(message_id, text, hub.clock.now()) if message_id else error(text))


def _sender(conn: Connection) -> str:
    """Whose messageIds these are: the DJ's session, else the bound client (else this connection).
    A controller (a DJ console) has a namespace of its own inside its session's: its ids never
    collide with the DJ software's, and its retries after a reconnect (same clientId) still match."""
    room = conn.dj_room
    if room is not None:
        if conn in room.controllers:
            return f"session:{room.session_id}:controller:{conn.listener_id}"
        return f"session:{room.session_id}"
    return f"client:{conn.listener_id}"
