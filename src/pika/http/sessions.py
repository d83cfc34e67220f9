"""Sessions over HTTP (PROTOCOL.md §8): live and recent sessions, a session's history and recap,
a DJ's page, a client's likes, Web Push subscriptions, and the DJ's end-of-set analytics sync.

Live data (`/active`) comes from the hub's rooms in memory; everything else is one or two
statements from `sql/queries/read_*.sql`, never cached.  Every session route answers under the
three prefixes of `PREFIXES`.  A malformed id is a 400 naming the rule before any SQL runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app, jsonify, request

from pika.config import Settings
from pika.db import Database, Row, Tx
from pika.live.hub import Hub
from pika.protocol import (
    ANALYTICS_FIELDS,
    SESSION_ID,
    ProtocolError,
    TrackInfo,
    iso,
    read_track,
    safe_dj_name,
    storable,
)
from pika.push.endpoints import endpoint_allowed
from pika.queries import query
from pika.security.tokens import account_for_token

PREFIXES = ("/api/sessions", "/api/session", "/sessions")

READ_RECENT_SESSIONS = query("read_recent_sessions")
READ_SESSION_HISTORY = query("read_session_history")
READ_RECAP_SESSION = query("read_recap_session")
READ_RECAP_TRACKS = query("read_recap_tracks")
READ_RECAP_POLLS = query("read_recap_polls")
READ_DJ_PROFILE = query("read_dj_profile")
READ_DJ_SESSIONS = query("read_dj_sessions")
READ_CLIENT_LIKES = query("read_client_likes")
UPSERT_PUSH_SUBSCRIPTION = query("upsert_push_subscription")
DELETE_PUSH_SUBSCRIPTION = query("delete_push_subscription")
SYNC_PLAY_ANALYTICS = query("sync_play_analytics")

SESSION_ID_RULE = "sessionId: must be 8-64 characters of A-Z a-z 0-9 _ -"
CLIENT_ID_RULE = "clientId: must be 8-256 characters"
SLUG_RULE = "slug: must be 2-32 characters of a-z 0-9 and inner hyphens"
ENDPOINT_MAX = 2048
PUSH_KEY_MAX = 512
SYNC_MAX_TRACKS = 1000

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,30}[a-z0-9]")


class InvalidInput(Exception):
    """A request this module refuses with 400 and one line naming the field and the rule."""


class SessionNotFound(Exception):
    """A session id with no session: 404."""


def sessions_blueprint() -> Blueprint:
    bp = Blueprint("sessions", __name__)

    @bp.errorhandler(InvalidInput)
    async def bad_request(exc: InvalidInput) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 400

    @bp.errorhandler(SessionNotFound)
    async def not_found(exc: SessionNotFound) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 404

    async def active() -> Response:
        return jsonify(active_sessions(_hub()))

    async def recent() -> Response:
        rows = await _db().all(READ_RECENT_SESSIONS)
        return jsonify([_session_summary(row) for row in rows])

    async def history(session_id: str) -> Response:
        rows = await _db().all(READ_SESSION_HISTORY, session_id=check_session_id(session_id))
        return jsonify(
            [
                {"id": r["id"], "artist": r["artist"], "title": r["title"], "playedAt": iso(r["played_at"])}
                for r in rows
            ]
        )

    async def recap(session_id: str) -> tuple[Response, int]:
        session_id = check_session_id(session_id)
        db = _db()
        session = await _session(db, session_id)
        owner = await _is_owner(db, session["dj_id"])

        def read(tx: Tx) -> tuple[list[Row], list[Row]]:
            tracks = tx.all(READ_RECAP_TRACKS, session_id=session_id)
            polls = tx.all(READ_RECAP_POLLS, session_id=session_id) if owner else []
            return tracks, polls

        tracks, polls = await db.run(read)
        return jsonify(recap_body(session, tracks, polls if owner else None)), 200

    async def sync_fingerprints(session_id: str) -> tuple[Response, int]:
        session_id = check_session_id(session_id)
        db = _db()
        session = await _session(db, session_id)
        if session["dj_id"] is not None and not await _is_owner(db, session["dj_id"]):
            return jsonify(error="Authorization: the Bearer token of the session's DJ is required"), 401
        tracks = parse_sync_tracks(await request.get_json(force=True, silent=True))

        def apply(tx: Tx) -> int:
            synced = 0
            for track in tracks:
                fields = track.analytics()
                if any(value is not None for value in fields.values()):
                    matched = tx.execute(
                        SYNC_PLAY_ANALYTICS, session_id=session_id, match_key=track.match_key, **fields
                    )
                    synced += matched > 0
            return synced

        synced = await db.run(apply)
        return jsonify(synced=synced, total=len(tracks), sessionId=session_id), 200

    for prefix in PREFIXES:
        bp.add_url_rule(
            f"{prefix}/<session_id>/sync-fingerprints",
            "sync_fingerprints",
            sync_fingerprints,
            methods=["POST"],
        )
        bp.add_url_rule(f"{prefix}/active", "active", active, methods=["GET"])
        bp.add_url_rule(f"{prefix}/recent", "recent", recent, methods=["GET"])
        bp.add_url_rule(f"{prefix}/<session_id>/history", "history", history, methods=["GET"])
        bp.add_url_rule(f"{prefix}/<session_id>/recap", "recap", recap, methods=["GET"])

    @bp.get("/api/dj/<slug>")
    async def dj_page(slug: str) -> tuple[Response, int]:
        slug = check_slug(slug)
        db = _db()
        profile = await db.one(READ_DJ_PROFILE, slug=slug)
        if profile is None:
            return jsonify(error=f"DJ {slug} not found"), 404
        rows = await db.all(READ_DJ_SESSIONS, dj_id=profile["id"])
        body = {
            "slug": profile["slug"],
            "djName": safe_dj_name(profile["display_name"]),
            "sessions": [{**_session_summary(r), "trackCount": r["track_count"]} for r in rows],
            "totalSessions": profile["total_sessions"],
            "totalTracks": profile["total_tracks"],
        }
        return jsonify(body), 200

    @bp.get("/api/client/<client_id>/likes")
    async def client_likes(client_id: str) -> Response:
        client_id = check_client_id(client_id)
        rows = await _db().all(READ_CLIENT_LIKES, client_id=client_id)
        likes = [
            {
                "id": r["id"],
                "sessionId": r["session_id"],
                "artist": r["artist"],
                "title": r["title"],
                "likedAt": iso(r["liked_at"]),
                "djName": safe_dj_name(r["dj_name"]),
                "sessionDate": iso(r["session_date"]),
            }
            for r in rows
        ]
        total = rows[0]["total_likes"] if rows else 0
        return jsonify({"clientId": client_id, "totalLikes": total, "likes": likes})

    @bp.get("/api/push/key")
    async def push_key() -> tuple[Response, int]:
        key = _hub().push.public_key
        if key is None:
            return jsonify(error="Web Push is not configured on this server"), 404
        return jsonify(publicKey=key), 200

    @bp.post("/api/push/subscribe")
    async def push_subscribe() -> Response:
        body = await request.get_json(force=True, silent=True)
        settings = _settings()
        subscription = parse_push_subscription(
            body, hosts=settings.push_hosts, allow_http=settings.push_allow_http
        )
        await _db().execute(UPSERT_PUSH_SUBSCRIPTION, **subscription)
        return jsonify(success=True)

    @bp.delete("/api/push/subscribe")
    async def push_unsubscribe() -> Response:
        body = await request.get_json(force=True, silent=True)
        endpoint = body.get("endpoint") if isinstance(body, Mapping) else None
        if not isinstance(endpoint, str) or not 1 <= len(endpoint) <= ENDPOINT_MAX or not storable(endpoint):
            raise InvalidInput(f"endpoint: must be the subscription's endpoint (1-{ENDPOINT_MAX} characters)")
        removed = await _db().execute(DELETE_PUSH_SUBSCRIPTION, endpoint=endpoint)
        return jsonify(success=True, removed=removed)

    return bp


# -- shapes -------------------------------------------------------------------------------------


def active_sessions(hub: Hub) -> dict[str, Any]:
    """`{live:false, sessions:[]}` or `{live:true, count, sessions:[…]}`, oldest session first."""
    rooms = sorted(hub.rooms.values(), key=lambda room: room.started_at)
    if not rooms:
        return {"live": False, "sessions": []}
    sessions = []
    for room in rooms:
        current = None
        if room.current is not None:
            track = room.current.track
            current = {"title": track.title, "artist": track.artist}
            if track.bpm is not None:
                current["bpm"] = track.bpm
        sessions.append(
            {
                "sessionId": room.session_id,
                "djName": room.dj_name,
                "startedAt": iso(room.started_at),
                "currentTrack": current,
                "listenerCount": room.listener_count(),
            }
        )
    return {"live": True, "count": len(sessions), "sessions": sessions}


def recap_body(session: Row, tracks: list[Row], polls: list[Row] | None) -> dict[str, Any]:
    """The recap of one session; `polls` is None unless the owning DJ asked."""
    items = [_recap_track(position, row) for position, row in enumerate(tracks, start=1)]
    body: dict[str, Any] = {
        "sessionId": session["id"],
        "djName": safe_dj_name(session["dj_name"]),
        "startedAt": iso(session["started_at"]),
        "endedAt": _iso_or_none(session["ended_at"]),
        "trackCount": len(items),
        "totalLikes": sum(item["likes"] for item in items),
        "tracks": items,
    }
    if polls is not None:
        shaped = [_recap_poll(row) for row in polls]
        body["polls"] = shaped
        body["totalPolls"] = len(shaped)
        body["totalPollVotes"] = sum(poll["totalVotes"] for poll in shaped)
    return body


def _recap_track(position: int, row: Row) -> dict[str, Any]:
    item: dict[str, Any] = {"position": position, "artist": row["artist"], "title": row["title"]}
    item.update({name: row[name] for name in ANALYTICS_FIELDS if row[name] is not None})
    item["playedAt"] = iso(row["played_at"])
    item["likes"] = row["likes"]
    tally = (row["tempo_slower"], row["tempo_perfect"], row["tempo_faster"])
    item["tempo"] = (
        None
        if all(n is None for n in tally)
        else {"slower": tally[0] or 0, "perfect": tally[1] or 0, "faster": tally[2] or 0}
    )
    return item


def _recap_poll(row: Row) -> dict[str, Any]:
    votes = [int(n) for n in row["votes"]]
    total = sum(votes)
    winner = votes.index(max(votes)) if total else -1  # first index of the highest count (§4)
    poll: dict[str, Any] = {
        "id": row["id"],
        "question": row["question"],
        "options": list(row["options"]),
        "votes": votes,
        "totalVotes": total,
        "winnerIndex": winner,
    }
    if winner >= 0:
        poll["winner"] = row["options"][winner]
    poll["startedAt"] = iso(row["started_at"])
    if row["ended_at"] is not None:
        poll["endedAt"] = iso(row["ended_at"])
    return poll


def _session_summary(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "djName": safe_dj_name(row["dj_name"]),
        "startedAt": iso(row["started_at"]),
        "endedAt": _iso_or_none(row["ended_at"]),
    }


def _iso_or_none(value: Any) -> str | None:
    return None if value is None else iso(value)


# -- validation ---------------------------------------------------------------------------------


def check_session_id(value: str) -> str:
    if not SESSION_ID.fullmatch(value):
        raise InvalidInput(SESSION_ID_RULE)
    return value


def check_client_id(value: str) -> str:
    if not 8 <= len(value) <= 256 or not storable(value):
        raise InvalidInput(CLIENT_ID_RULE)
    return value


def check_slug(value: str) -> str:
    slug = value.lower()
    if not _SLUG.fullmatch(slug):
        raise InvalidInput(SLUG_RULE)
    return slug


def parse_sync_tracks(body: Any) -> list[TrackInfo]:
    """`{tracks:[TrackInfo…]}` with at most SYNC_MAX_TRACKS tracks, each checked as on the wire."""
    tracks = body.get("tracks") if isinstance(body, Mapping) else None
    if not isinstance(tracks, list) or len(tracks) > SYNC_MAX_TRACKS:
        raise InvalidInput(f"tracks: must be a list of at most {SYNC_MAX_TRACKS} tracks")
    try:
        return [read_track(raw, f"tracks[{i}].") for i, raw in enumerate(tracks)]
    except ProtocolError as exc:
        raise InvalidInput(exc.error) from None


def parse_push_subscription(body: Any, *, hosts: Iterable[str], allow_http: bool = False) -> dict[str, Any]:
    """`{endpoint, keys:{p256dh, auth}, clientId?, sessionId?}` → the upsert's parameters.

    The endpoint must be a browser push service (`hosts`, PIKA_PUSH_HOSTS); `allow_http`
    (PIKA_PUSH_ALLOW_HTTP) also accepts http:// on loopback, for a local test push service."""
    if not isinstance(body, Mapping):
        raise InvalidInput("body: must be a JSON object {endpoint, keys:{p256dh, auth}}")
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidInput("endpoint: is required (an https URL)")
    parts = urlsplit(endpoint)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or not endpoint.startswith(f"{parts.scheme}://"):
        raise InvalidInput("endpoint: must be an https:// URL")
    if not endpoint_allowed(endpoint, hosts, allow_http=allow_http):
        raise InvalidInput(f"endpoint: must be a browser push service ({', '.join(hosts)}; PIKA_PUSH_HOSTS)")
    if len(endpoint) > ENDPOINT_MAX or not storable(endpoint) or any(c.isspace() for c in endpoint):
        raise InvalidInput(f"endpoint: must be at most {ENDPOINT_MAX} characters without spaces")
    keys = body.get("keys")
    if not isinstance(keys, Mapping):
        raise InvalidInput("keys: must be an object {p256dh, auth}")
    found = {}
    for name in ("p256dh", "auth"):
        key = keys.get(name)
        if not isinstance(key, str) or not 1 <= len(key) <= PUSH_KEY_MAX or not storable(key):
            raise InvalidInput(f"keys.{name}: must be a string of 1-{PUSH_KEY_MAX} characters")
        found[name] = key
    client_id = body.get("clientId")
    if client_id is not None:
        if not isinstance(client_id, str):
            raise InvalidInput(CLIENT_ID_RULE)
        check_client_id(client_id)
    session_id = body.get("sessionId")
    if session_id is not None:
        if not isinstance(session_id, str):
            raise InvalidInput(SESSION_ID_RULE)
        check_session_id(session_id)
    return {"endpoint": endpoint, **found, "client_id": client_id, "session_id": session_id}


# -- context ------------------------------------------------------------------------------------


def _db() -> Database:
    return current_app.extensions["pika"]["db"]


def _hub() -> Hub:
    return current_app.extensions["pika"]["hub"]


def _settings() -> Settings:
    return current_app.extensions["pika"]["settings"]


async def _session(db: Database, session_id: str) -> Row:
    """The session's row (live or ended), or SessionNotFound."""
    session = await db.one(READ_RECAP_SESSION, session_id=session_id)
    if session is None:
        raise SessionNotFound(f"Session {session_id} not found")
    return session


async def _is_owner(db: Database, dj_id: int | None) -> bool:
    """True when the request carries the Bearer token of the account that owns the session."""
    if dj_id is None:
        return False
    account = await account_for_token(db, bearer_token(request.headers.get("Authorization")))
    return account is not None and account["id"] == dj_id


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
