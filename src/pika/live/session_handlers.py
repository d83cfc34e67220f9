"""Session messages: REGISTER_SESSION (with the ownership rules), ATTACH_SESSION (a DJ console
joins its account's live session), END_SESSION, SUBSCRIBE, GET_SESSIONS, VALIDATE_SESSION and PING."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from pika.audit import audit
from pika.live.connection import CLOSE_REPLACED, CLOSE_TRY_AGAIN, Connection
from pika.live.core import commands as core
from pika.live.core.ownership import NOT_AVAILABLE, attach_refusal, resume_refusal
from pika.live.hub import Hub
from pika.live.requests import AfterAck, Refusal, Request, dj_turn, sha256
from pika.live.room import Room, RoomInfo
from pika.protocol import AttachSession, RegisterSession, Subscribe, ValidateSession, iso
from pika.queries import query
from pika.security.tokens import account_for_token

log = logging.getLogger("pika.sessions")

INSERT_SESSION = query("insert_session")
RESUME_SESSION = query("resume_session")


async def register_session(req: Request) -> AfterAck | None:
    hub, conn, msg = req.hub, req.conn, req.msg
    assert isinstance(msg, RegisterSession)
    if conn.dj_room is not None and conn in conn.dj_room.controllers:
        raise Refusal("A controller cannot register a session; it is attached to one")
    account = await _authenticate(hub, msg.token)
    session_id = msg.session_id or f"pika_{secrets.token_urlsafe(12)}"
    room = hub.rooms.get(session_id)
    if room is None and msg.session_id is not None:  # perhaps live, its owner gone: resumed here
        room = await hub.take_over(session_id)  # else OwnedElsewhere: forwarded to the owner
    if room is not None:
        async with room.turn:
            if room.ended:  # while this waited for its turn: the id now belongs to an ended session
                raise Refusal(NOT_AVAILABLE)
            await _resume(req, room, account)
        return None
    if len(hub.rooms) >= hub.settings.max_sessions:
        raise Refusal("Server busy", close_code=CLOSE_TRY_AGAIN)
    dj_name = account["display_name"] if account else (msg.dj_name or "DJ")
    resume_key = secrets.token_urlsafe(24)
    row = await hub.db.run(  # a transaction: given up at the deadline, it never commits later
        lambda tx: tx.one(
            INSERT_SESSION,
            session_id=session_id,
            dj_id=account["id"] if account else None,
            dj_name=dj_name,
            resume_key_sha256=sha256(resume_key),
        )
    )
    if row is None:  # the id belongs to an ended (or just-taken) session
        raise _not_theirs(req, account, session_id, NOT_AVAILABLE)
    _leave_previous_session(hub, conn, session_id)
    room = await hub.open_room(
        RoomInfo(
            session_id=session_id,
            dj_name=dj_name,
            dj_id=account["id"] if account else None,
            resume_key_sha256=sha256(resume_key),
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
    """REGISTER_SESSION for a live session, in its turn: the ownership rules of PROTOCOL.md §3.1.

    A keyless takeover of an anonymous session (old clients never send a key) is allowed only
    while its DJ connection is gone, and it never learns or changes the resumeKey: whoever holds
    the key can take the session back at any time, closing the keyless connection with 4001.
    """
    hub, conn, msg = req.hub, req.conn, req.msg
    key_ok = msg.resume_key is not None and secrets.compare_digest(
        sha256(msg.resume_key), room.resume_key_sha256
    )
    live_elsewhere = room.dj_conn is not None and room.dj_conn is not conn
    refusal = resume_refusal(room.dj_id, account["id"] if account else None, key_ok, live_elsewhere)
    if refusal is not None:
        raise _not_theirs(req, account, room.session_id, refusal)
    previous = room.dj_conn
    disconnected_at = room.dj_disconnected_at
    dj_name = account["display_name"] if account else (msg.dj_name or room.dj_name)
    keyless = room.dj_id is None and not key_ok
    resume_key = None if keyless else msg.resume_key if key_ok else secrets.token_urlsafe(24)
    resume_key_sha256 = room.resume_key_sha256 if resume_key is None else sha256(resume_key)
    await hub.db.execute(
        RESUME_SESSION, session_id=room.session_id, dj_name=dj_name, resume_key_sha256=resume_key_sha256
    )
    _leave_previous_session(hub, conn, room.session_id)
    room.resume_key_sha256 = resume_key_sha256
    now = hub.clock.now()
    hub.shell.now(room, core.DjBack(dj_name))
    _take_dj_seat(room, conn)
    if previous is not None and previous is not conn:
        previous.dj_room = None
        previous.close_soon(CLOSE_REPLACED, "replaced by a newer connection of the same DJ")
    reconnect_ms = 0 if disconnected_at is None else max(0, round((now - disconnected_at) * 1000))
    if keyless and previous is None:  # a takeover without proof: kept for audit
        hub.telemetry.emit(room.session_id, "reconnect", reconnectMs=reconnect_ms, keyless=True)
        log.warning("keyless takeover", extra={"fields": {"session": room.session_id, "conn": conn.id}})
    else:
        hub.telemetry.emit(room.session_id, "reconnect", reconnectMs=reconnect_ms)
    conn.send_message(_registered(room, room.dj_id is not None, resume_key))
    for message in room.state_messages(conn):
        conn.send_message(message)
    conn.send_message(room.listener_count_message())


def _not_theirs(req: Request, account: dict[str, Any] | None, session_id: str, error: str) -> Refusal:
    """The refusal of a session that is not the sender's, written to the audit log."""
    audit(
        "ownership_refused",
        ip=req.conn.client_ip,
        account=account["id"] if account else None,
        message=req.msg.TYPE,
        session=session_id,
    )
    return Refusal(error)


def _take_dj_seat(room: Room, conn: Connection) -> None:
    room.dj_conn = conn
    conn.dj_room = room


def _leave_previous_session(hub: Hub, conn: Connection, keep: str) -> None:
    """A DJ connection that registers another session leaves its old one in its grace period."""
    old = conn.dj_room
    if old is not None and old.session_id != keep and old.dj_conn is conn:
        conn.dj_room = None
        hub.dj_left(old, "switched_session")


def _registered(room: Room, authenticated: bool, resume_key: str | None) -> dict[str, Any]:
    """SESSION_REGISTERED; a keyless takeover gets no `resumeKey` (omitted, never null)."""
    message = {
        "type": "SESSION_REGISTERED",
        "sessionId": room.session_id,
        "djName": room.dj_name,
        "authenticated": authenticated,
    }
    if resume_key is not None:
        message["resumeKey"] = resume_key
    return message


async def _authenticate(hub: Hub, token: str | None) -> dict[str, Any] | None:
    """The DJ account a token belongs to; a wrong token is refused, never downgraded to anonymous."""
    if token is None:
        return None
    account = await account_for_token(hub.db, token)
    if account is None:
        raise Refusal("Invalid token")
    return account


async def attach_session(req: Request) -> None:
    """Join the account's live session as a controller (PROTOCOL.md §2, §3.1): hear what the DJ
    connection hears and act as it, without displacing it or counting as a listener.  The reply
    is SESSION_REGISTERED (no resumeKey: a controller never owns the session), then the state."""
    hub, conn, msg = req.hub, req.conn, req.msg
    assert isinstance(msg, AttachSession)
    account = await _authenticate(hub, msg.token)
    assert account is not None
    room = hub.rooms.get(msg.session_id)
    if room is None:  # perhaps live, its owner gone (taken over), or running (OwnedElsewhere)
        room = await hub.take_over(msg.session_id)
    refusal = NOT_AVAILABLE if room is None else attach_refusal(room.dj_id, account["id"])
    if refusal is not None:  # unknown, ended, anonymous or another account's
        raise _not_theirs(req, account, msg.session_id, refusal)
    assert room is not None
    async with room.turn:
        if room.ended:
            raise Refusal(NOT_AVAILABLE)
        _attach(hub, conn, room)


def _attach(hub: Hub, conn: Connection, room: Room) -> None:
    current = conn.dj_room
    if current is not None and current.dj_conn is conn:
        raise Refusal("This connection is the DJ of a session; attach from another connection")
    if conn not in room.controllers and len(room.controllers) >= hub.settings.max_controllers:
        raise Refusal("Too many controllers")
    if current is not None:
        current.controllers.discard(conn)
    room.controllers.add(conn)
    conn.dj_room = room
    conn.send_message(
        {
            "type": "SESSION_REGISTERED",
            "sessionId": room.session_id,
            "djName": room.dj_name,
            "authenticated": True,
        }
    )
    for message in room.state_messages(conn):
        conn.send_message(message)
    tempo = room.tempo_counts()
    if tempo.total:
        conn.send_message(tempo.feedback(room.session_id))  # the console's tempo meter, at once
    conn.send_message(room.listener_count_message())


async def end_session(req: Request) -> None:
    async with dj_turn(req, req.msg.session_id) as room:
        await req.hub.end_session(room, "dj_ended", sender=req.sender, message_id=req.msg.message_id)
    req.conn.dj_room = None


# -- anyone -------------------------------------------------------------------------------------


async def subscribe(req: Request) -> None:
    """Join a session's audience and get, in order: SESSIONS_LIST, LISTENER_COUNT, the state.
    A room owned elsewhere is read first (live/replica.py) and joined after, with no wait
    between joining and the state: a frame relayed later comes after it, none is missed."""
    hub, conn, msg = req.hub, req.conn, req.msg
    assert isinstance(msg, Subscribe)
    session_id = msg.session_id
    replica = None
    if session_id is not None and session_id not in hub.rooms and hub.relay is not None:
        replica = await hub.relay.replicas.get(session_id)
    bundle: list[dict[str, Any]] = [hub.sessions_list()]
    if session_id is not None:
        counted = _counted_here(hub, conn, session_id)
        room = hub.subscribe(conn, session_id)
        if room is not None:
            bundle.append(room.listener_count_message())
            bundle.extend(room.state_messages(conn))
        elif replica is not None and hub.relay is not None:
            # the owner's last count and this client until the owner counts it, never fewer than
            # this process's own members (PROTOCOL.md §7: the union over processes)
            count = max(
                hub.relay.counts.get(session_id, 0) + (0 if counted else 1),
                len(hub.relay.members(session_id)),
            )
            bundle.append({"type": "LISTENER_COUNT", "sessionId": session_id, "count": count})
            bundle.extend(replica.state_messages(conn.listener_id, hub.clock.now()))
        else:
            bundle.append({"type": "LISTENER_COUNT", "sessionId": session_id, "count": 0})
            bundle.append({"type": "SESSION_ENDED", "sessionId": session_id})
    for message in bundle:
        conn.send_message(message)


def _counted_here(hub: Hub, conn: Connection, session_id: str) -> bool:
    """Whether this process already reported `conn`'s client as a member of `session_id`."""
    if conn.subscribed == session_id:
        return True
    client = conn.client_id
    return client is not None and any(c.client_id == client for c in hub.audience(session_id))


async def get_sessions(req: Request) -> None:
    req.conn.send_message(req.hub.sessions_list())


async def validate_session(req: Request) -> None:
    msg = req.msg
    assert isinstance(msg, ValidateSession)
    hub = req.hub
    live = hub.is_live(msg.session_id)
    if not live and hub.relay is not None:  # just started elsewhere, its SESSION_STARTED on the way
        live = await hub.relay.replicas.get(msg.session_id) is not None
    req.conn.send_message({"type": "SESSION_VALID", "sessionId": msg.session_id, "isValid": live})


async def ping(req: Request) -> None:
    req.conn.send_message({"type": "PONG", "timestamp": iso(req.hub.clock.now())})
