"""What each inbound message does: validate state, write PostgreSQL, then tell the room.

`dispatch` is the one entry point for a frame.  It parses once (pika.protocol), binds the
clientId, answers an already-applied messageId with a bare ACK, runs the handler, and turns a
`Refusal` into NACK (or ERROR when there is no messageId).  A handler's writes and the claim
of its messageId commit in one transaction, before anything is broadcast: an ACK always means
durable, and a refused message is never remembered (a retry is processed anew).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pika import metrics
from pika.db import Tx
from pika.live.connection import CLOSE_REPLACED, CLOSE_TRY_AGAIN, Connection
from pika.live.hub import Hub
from pika.live.room import NowPlaying, Room, RoomInfo
from pika.protocol import (
    STATE_CHANGING,
    BroadcastTrack,
    EndSession,
    GetSessions,
    Message,
    MetadataUpdated,
    Ping,
    ProtocolError,
    RegisterSession,
    Subscribe,
    TrackInfo,
    TrackStopped,
    ValidateSession,
    ack,
    error,
    iso,
    nack,
    parse,
)
from pika.queries import query
from pika.security.ratelimit import KeyedLimiter

log = logging.getLogger("pika.handlers")

MESSAGE_APPLIED = query("message_applied")
CLAIM_MESSAGE = query("claim_message")
GET_SESSION = query("get_session")
INSERT_SESSION = query("insert_session")
RESUME_SESSION = query("resume_session")
INSERT_PLAYED_TRACK = query("insert_played_track")
END_PLAY = query("end_play")
CLEAR_CURRENT_PLAY = query("clear_current_play")
UPDATE_PLAY_ANALYTICS = query("update_play_analytics")


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

    def claim(self, tx: Tx) -> None:
        """Inside the effect's transaction: record the messageId, or stop if it was applied already."""
        message_id = self.msg.message_id
        if message_id and tx.one(CLAIM_MESSAGE, sender=self.sender, message_id=message_id) is None:
            raise Duplicate


AfterAck = Callable[[], None]
Handler = Callable[[Request], Awaitable[AfterAck | None]]


async def dispatch(hub: Hub, conn: Connection, frame: str | bytes) -> None:
    try:
        msg: Message = parse(frame, hub.settings)
    except ProtocolError as exc:
        _refuse(conn, exc.error, exc.message_id)
        return
    metrics.MESSAGES_IN.labels(msg.TYPE).inc()
    conn.bind_client(msg.client_id)
    req = Request(hub, conn, msg, _sender(conn))
    message_id = msg.message_id
    try:
        if message_id and type(msg) in DEDUPLICATED and await _applied(hub, req.sender, message_id):
            raise Duplicate
        after = await HANDLERS.get(type(msg), _not_available)(req)
    except Duplicate:
        conn.send_message(ack(message_id, time.time()))
        return
    except Refusal as exc:
        _refuse(conn, str(exc), message_id)
        if exc.close_code is not None:
            conn.close_soon(exc.close_code, str(exc), after_queued=True)
        return
    except Exception:
        log.exception("handler failed", extra={"fields": {"type": msg.TYPE, "conn": conn.id}})
        _refuse(conn, "Internal error; nothing was changed, try again", message_id)
        return
    if message_id:
        conn.send_message(ack(message_id, time.time()))
    if after is not None:
        after()


# Every state change is deduplicated by messageId, except REGISTER_SESSION: registering again
# is already idempotent (it resumes), and a bare ACK would leave the retrying DJ without a session.
DEDUPLICATED = STATE_CHANGING - {RegisterSession}


async def _applied(hub: Hub, sender: str, message_id: str) -> bool:
    return await hub.db.one(MESSAGE_APPLIED, sender=sender, message_id=message_id) is not None


def _refuse(conn: Connection, text: str, message_id: str | None) -> None:
    conn.send_message(nack(message_id, text, time.time()) if message_id else error(text))


def _sender(conn: Connection) -> str:
    """Whose messageIds these are: the DJ's session, else the bound client (else this connection)."""
    if conn.dj_room is not None:
        return f"session:{conn.dj_room.session_id}"
    return f"client:{conn.listener_id}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# -- DJ: sessions -------------------------------------------------------------------------------


async def register_session(req: Request) -> AfterAck | None:
    hub, conn, msg = req.hub, req.conn, req.msg
    assert isinstance(msg, RegisterSession)
    account = await _authenticate(hub, msg.token)
    session_id = msg.session_id or f"pika_{secrets.token_urlsafe(12)}"
    room = hub.rooms.get(session_id)
    if room is not None:
        await _resume(req, room, account)
        return None
    if len(hub.rooms) >= hub.settings.max_sessions:
        raise Refusal("Server busy", close_code=CLOSE_TRY_AGAIN)
    dj_name = account["display_name"] if account else (msg.dj_name or "DJ")
    resume_key = secrets.token_urlsafe(24)
    row = await hub.db.one(
        INSERT_SESSION,
        session_id=session_id,
        dj_id=account["id"] if account else None,
        dj_name=dj_name,
        resume_key_sha256=_sha256(resume_key),
    )
    if row is None:
        raise Refusal("Session not available")  # the id belongs to an ended (or just-taken) session
    await _leave_previous_session(hub, conn, session_id)
    room = await hub.open_room(
        RoomInfo(
            session_id=session_id,
            dj_name=dj_name,
            dj_id=account["id"] if account else None,
            resume_key_sha256=_sha256(resume_key),
            started_at=row["started_at"].timestamp(),
            last_activity=row["last_activity_at"].timestamp(),
        )
    )
    _take_dj_seat(room, conn)
    hub.telemetry.emit(session_id, "connect", authenticated=account is not None, version=msg.version or "")
    conn.send_message(_registered(room, account is not None, resume_key))
    log.info("session started", extra={"fields": {"session": session_id, "dj": dj_name}})

    def announce() -> None:
        hub.broadcast_all({"type": "SESSION_STARTED", "sessionId": session_id, "djName": dj_name})

    return announce


async def _resume(req: Request, room: Room, account: dict[str, Any] | None) -> None:
    """REGISTER_SESSION for a live session: the ownership rules of PROTOCOL.md §3.1."""
    hub, conn, msg = req.hub, req.conn, req.msg
    key_ok = msg.resume_key is not None and secrets.compare_digest(
        _sha256(msg.resume_key), room.resume_key_sha256
    )
    if room.dj_id is not None:
        if account is None or account["id"] != room.dj_id:
            raise Refusal("Session not available")
    elif account is not None:
        raise Refusal("Session not available")  # an account cannot take over an anonymous session
    elif not key_ok and room.dj_conn is not None and room.dj_conn is not conn:
        raise Refusal("Session is live on another connection")
    previous = room.dj_conn
    disconnected_at = room.dj_disconnected_at
    dj_name = account["display_name"] if account else (msg.dj_name or room.dj_name)
    resume_key = msg.resume_key if key_ok else secrets.token_urlsafe(24)
    await hub.db.execute(
        RESUME_SESSION, session_id=room.session_id, dj_name=dj_name, resume_key_sha256=_sha256(resume_key)
    )
    await _leave_previous_session(hub, conn, room.session_id)
    room.dj_name = dj_name
    room.resume_key_sha256 = _sha256(resume_key)
    room.last_activity = time.time()
    room.cancel_grace()
    room.dj_disconnected_at = None
    _take_dj_seat(room, conn)
    if previous is not None and previous is not conn:
        previous.dj_room = None
        previous.close_soon(CLOSE_REPLACED, "replaced by a newer connection of the same DJ")
    reconnect_ms = 0 if disconnected_at is None else max(0, round((time.time() - disconnected_at) * 1000))
    hub.telemetry.emit(room.session_id, "reconnect", reconnectMs=reconnect_ms)
    conn.send_message(_registered(room, room.dj_id is not None, resume_key))
    for message in room.state_messages(conn):
        conn.send_message(message)
    conn.send_message(room.listener_count_message())


def _take_dj_seat(room: Room, conn: Connection) -> None:
    room.dj_conn = conn
    conn.dj_room = room


async def _leave_previous_session(hub: Hub, conn: Connection, keep: str) -> None:
    """A DJ connection that registers another session leaves its old one in its grace period."""
    old = conn.dj_room
    if old is not None and old.session_id != keep and old.dj_conn is conn:
        conn.dj_room = None
        await hub.dj_left(old, "switched_session")


def _registered(room: Room, authenticated: bool, resume_key: str) -> dict[str, Any]:
    return {
        "type": "SESSION_REGISTERED",
        "sessionId": room.session_id,
        "djName": room.dj_name,
        "authenticated": authenticated,
        "resumeKey": resume_key,
    }


async def _authenticate(hub: Hub, token: str | None) -> dict[str, Any] | None:
    """The DJ account a token belongs to.  Accounts arrive with the security work; until then
    every token is refused rather than silently downgraded to an anonymous session."""
    if token is None:
        return None
    raise Refusal("Invalid token")


def _require_dj(req: Request, session_id: str) -> Room:
    room = req.conn.dj_room
    if room is None or room.session_id != session_id or room.dj_conn is not req.conn:
        raise Refusal("Not the DJ of this session")
    return room


async def end_session(req: Request) -> None:
    room = _require_dj(req, req.msg.session_id)
    if req.msg.message_id:
        await req.hub.db.run(req.claim)
    await req.hub.end_session(room, "dj_ended")
    req.conn.dj_room = None


# -- DJ: tracks ---------------------------------------------------------------------------------


def _track_limiter(hub: Hub) -> KeyedLimiter:
    limiter = getattr(hub, "_track_limiter", None)
    if limiter is None:
        limiter = KeyedLimiter(
            1, 1.0 / hub.settings.track_rate, burst=hub.settings.track_burst, name="tracks"
        )
        hub._track_limiter = limiter  # type: ignore[attr-defined]
    return limiter


async def broadcast_track(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, BroadcastTrack)
    room = _require_dj(req, msg.session_id)
    if room.current is not None and room.current.track.same_track(msg.track):
        if _merged(room.current.track, msg.track) != room.current.track:
            await _update_metadata(req, room, msg.track)
        elif msg.message_id:
            await req.hub.db.run(req.claim)
        return
    if not _track_limiter(req.hub).allow(room.session_id):
        raise Refusal("Rate limit exceeded")
    previous = room.current
    track = msg.track

    def work(tx: Tx) -> int:
        req.claim(tx)
        if previous is not None:
            tx.execute(END_PLAY, play_id=previous.play_id)
        row = tx.one(
            INSERT_PLAYED_TRACK,
            session_id=room.session_id,
            artist=track.artist,
            title=track.title,
            match_key=track.match_key,
            **track.analytics(),
        )
        assert row is not None
        return int(row["play_id"])

    play_id = await req.hub.db.run(work)
    room.current = NowPlaying(play_id, track)
    room.last_activity = time.time()
    if previous is not None:
        room.publish({"type": "TEMPO_RESET", "sessionId": room.session_id})
    message = room.now_playing_message()
    assert message is not None
    room.publish(message)


async def metadata_updated(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, MetadataUpdated)
    room = _require_dj(req, msg.session_id)
    if room.current is None:
        raise Refusal("No track is playing")
    if not room.current.track.same_track(msg.track):
        raise Refusal("Track is not the current track")
    await _update_metadata(req, room, msg.track)


async def _update_metadata(req: Request, room: Room, track: TrackInfo) -> None:
    assert room.current is not None
    play_id = room.current.play_id
    merged = _merged(room.current.track, track)

    def work(tx: Tx) -> None:
        req.claim(tx)
        tx.execute(UPDATE_PLAY_ANALYTICS, play_id=play_id, **merged.analytics())

    await req.hub.db.run(work)
    room.current = NowPlaying(play_id, merged)
    room.last_activity = time.time()
    room.publish(
        {"type": "METADATA_UPDATED", "sessionId": room.session_id, "track": room.current.track.to_wire()}
    )


def _merged(current: TrackInfo, update: TrackInfo) -> TrackInfo:
    """The current track with the analytics `update` carries; an absent field keeps its value,
    and title/artist stay as first played (they match anyway, up to case and spacing)."""
    fields = current.analytics()
    fields.update({k: v for k, v in update.analytics().items() if v is not None})
    return TrackInfo(title=current.title, artist=current.artist, **fields)


async def track_stopped(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, TrackStopped)
    room = _require_dj(req, msg.session_id)
    previous = room.current

    def work(tx: Tx) -> None:
        req.claim(tx)
        if previous is not None:
            tx.execute(END_PLAY, play_id=previous.play_id)
        tx.execute(CLEAR_CURRENT_PLAY, session_id=room.session_id)

    await req.hub.db.run(work)
    room.current = None
    room.last_activity = time.time()
    room.publish({"type": "TRACK_STOPPED", "sessionId": room.session_id})


# -- anyone -------------------------------------------------------------------------------------


async def subscribe(req: Request) -> None:
    """Join a session's audience and get, in order: SESSIONS_LIST, LISTENER_COUNT, the state."""
    hub, conn, msg = req.hub, req.conn, req.msg
    assert isinstance(msg, Subscribe)
    bundle: list[dict[str, Any]] = [hub.sessions_list()]
    if msg.session_id is not None:
        room = hub.subscribe(conn, msg.session_id)
        if room is None:
            bundle.append({"type": "LISTENER_COUNT", "sessionId": msg.session_id, "count": 0})
            bundle.append({"type": "SESSION_ENDED", "sessionId": msg.session_id})
        else:
            bundle.append(room.listener_count_message())
            bundle.extend(room.state_messages(conn))
    for message in bundle:
        conn.send_message(message)


async def get_sessions(req: Request) -> None:
    req.conn.send_message(req.hub.sessions_list())


async def validate_session(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, ValidateSession)
    live = msg.session_id in req.hub.rooms
    req.conn.send_message({"type": "SESSION_VALID", "sessionId": msg.session_id, "isValid": live})


async def ping(req: Request) -> None:
    req.conn.send_message({"type": "PONG", "timestamp": iso(time.time())})


async def _not_available(req: Request) -> None:
    raise Refusal(f"{req.msg.TYPE} is not available on this server yet")


HANDLERS: dict[type, Handler] = {
    RegisterSession: register_session,
    BroadcastTrack: broadcast_track,
    MetadataUpdated: metadata_updated,
    TrackStopped: track_stopped,
    EndSession: end_session,
    Subscribe: subscribe,
    GetSessions: get_sessions,
    ValidateSession: validate_session,
    Ping: ping,
}
