"""The wire protocol as values: inbound frames parsed into messages, outbound frames built as dicts.

Pure code (PROTOCOL.md §1, §3, §4, §9): no sockets, no database, no clock. `parse` turns one text
frame into a frozen dataclass or raises `ProtocolError` whose `error` names the field and the rule;
the helpers at the end build ACK/NACK/ERROR frames and encode them without ever sending `null`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, get_args

from pika.config import Settings

__all__ = [
    "ANALYTICS_FIELDS",
    "STATE_CHANGING",
    "AttachSession",
    "BroadcastTrack",
    "CancelAnnouncement",
    "CancelPoll",
    "EndPoll",
    "EndSession",
    "GetSessions",
    "Message",
    "MetadataUpdated",
    "Ping",
    "ProtocolError",
    "RegisterSession",
    "RemoveLike",
    "SendAnnouncement",
    "SendBulkLike",
    "SendLike",
    "SendReaction",
    "SendTempoRequest",
    "StartPoll",
    "Subscribe",
    "TrackInfo",
    "TrackStopped",
    "ValidateSession",
    "VoteOnPoll",
    "ack",
    "encode",
    "error",
    "iso",
    "nack",
    "parse",
    "read_track",
    "safe_dj_name",
]


class ProtocolError(Exception):
    """A frame that must be refused.

    `error` is the one-line text for NACK/ERROR; `message_id` is set when one could be read.
    """

    def __init__(self, error: str, message_id: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.message_id = message_id


# -- TrackInfo ---------------------------------------------------------------------------------

ANALYTICS_FIELDS: tuple[str, ...] = (
    "bpm",
    "key",
    "energy",
    "danceability",
    "brightness",
    "acousticness",
    "groove",
)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """A track as clients describe it; two are the same track when `match_key` is equal."""

    title: str
    artist: str
    bpm: float | None = None
    key: str | None = None
    energy: float | None = None
    danceability: float | None = None
    brightness: float | None = None
    acousticness: float | None = None
    groove: float | None = None

    @property
    def match_key(self) -> str:
        """Artist and title trimmed, inner whitespace collapsed, case-folded, joined by U+001F."""
        return f"{_fold(self.artist)}\x1f{_fold(self.title)}"

    def same_track(self, other: TrackInfo) -> bool:
        return self.match_key == other.match_key

    def analytics(self) -> dict[str, float | str | None]:
        return {name: getattr(self, name) for name in ANALYTICS_FIELDS}

    def to_wire(self) -> dict[str, Any]:
        """`{title, artist}` plus each analytics field that is set — never a `null`."""
        wire: dict[str, Any] = {"title": self.title, "artist": self.artist}
        for name in ANALYTICS_FIELDS:
            value = getattr(self, name)
            if value is not None:
                wire[name] = value
        return wire

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TrackInfo:
        """From a database row with columns title, artist, bpm, key, energy, …; missing columns are None."""
        numbers = {
            name: (None if row.get(name) is None else float(row[name]))
            for name in ANALYTICS_FIELDS
            if name != "key"
        }
        key = row.get("key")
        return cls(title=row["title"], artist=row["artist"], key=None if key is None else str(key), **numbers)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


# -- inbound messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterSession:
    TYPE: ClassVar[str] = "REGISTER_SESSION"
    session_id: str | None = None
    dj_name: str | None = None
    token: str | None = None
    resume_key: str | None = None
    version: str | None = None
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttachSession:
    """A further connection of the owning DJ account joins its live session as a controller."""

    TYPE: ClassVar[str] = "ATTACH_SESSION"
    session_id: str
    token: str
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class BroadcastTrack:
    TYPE: ClassVar[str] = "BROADCAST_TRACK"
    session_id: str
    track: TrackInfo
    played_at: float | None = None  # epoch seconds: when the DJ played it (optional `playedAt`)
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class MetadataUpdated:
    TYPE: ClassVar[str] = "METADATA_UPDATED"
    session_id: str
    track: TrackInfo
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class TrackStopped:
    TYPE: ClassVar[str] = "TRACK_STOPPED"
    session_id: str
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class EndSession:
    TYPE: ClassVar[str] = "END_SESSION"
    session_id: str
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendAnnouncement:
    TYPE: ClassVar[str] = "SEND_ANNOUNCEMENT"
    session_id: str
    message: str
    duration_seconds: int | None = None
    push: bool = False
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelAnnouncement:
    TYPE: ClassVar[str] = "CANCEL_ANNOUNCEMENT"
    session_id: str
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class StartPoll:
    TYPE: ClassVar[str] = "START_POLL"
    session_id: str
    question: str
    options: tuple[str, ...]
    duration_seconds: int | None = None
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class EndPoll:
    TYPE: ClassVar[str] = "END_POLL"
    poll_id: int
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelPoll:
    TYPE: ClassVar[str] = "CANCEL_POLL"
    poll_id: int | None = None
    session_id: str | None = None
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class ValidateSession:
    TYPE: ClassVar[str] = "VALIDATE_SESSION"
    session_id: str
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    TYPE: ClassVar[str] = "SUBSCRIBE"
    session_id: str | None = None
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class GetSessions:
    TYPE: ClassVar[str] = "GET_SESSIONS"
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendLike:
    TYPE: ClassVar[str] = "SEND_LIKE"
    session_id: str
    track: TrackInfo
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendBulkLike:
    TYPE: ClassVar[str] = "SEND_BULK_LIKE"
    session_id: str
    tracks: tuple[TrackInfo, ...]
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class RemoveLike:
    TYPE: ClassVar[str] = "REMOVE_LIKE"
    session_id: str
    track: TrackInfo
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendTempoRequest:
    TYPE: ClassVar[str] = "SEND_TEMPO_REQUEST"
    session_id: str
    preference: str  # "faster" | "slower" | "perfect" | "clear"
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class VoteOnPoll:
    TYPE: ClassVar[str] = "VOTE_ON_POLL"
    poll_id: int
    option_index: int
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class SendReaction:
    TYPE: ClassVar[str] = "SEND_REACTION"
    session_id: str
    reaction: str  # "thank_you"
    message_id: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    TYPE: ClassVar[str] = "PING"
    message_id: str | None = None
    client_id: str | None = None


Message = (
    RegisterSession
    | AttachSession
    | BroadcastTrack
    | MetadataUpdated
    | TrackStopped
    | EndSession
    | SendAnnouncement
    | CancelAnnouncement
    | StartPoll
    | EndPoll
    | CancelPoll
    | ValidateSession
    | Subscribe
    | GetSessions
    | SendLike
    | SendBulkLike
    | RemoveLike
    | SendTempoRequest
    | VoteOnPoll
    | SendReaction
    | Ping
)

# ATTACH_SESSION stores nothing: attaching again is idempotent, like SUBSCRIBE.
_READ_ONLY = frozenset({ValidateSession, Subscribe, GetSessions, Ping, AttachSession})
#: Messages that change state (dedupe by messageId applies to them); the rest only read.
STATE_CHANGING: frozenset[type] = frozenset(get_args(Message)) - _READ_ONLY

TEMPO_VOTES: tuple[str, ...] = ("faster", "perfect", "slower")  # what a tempo tally counts
TEMPO_CLEAR = "clear"  # not a vote: it removes the client's vote
TEMPO_PREFERENCES: tuple[str, ...] = (*TEMPO_VOTES, TEMPO_CLEAR)
REACTIONS: tuple[str, ...] = ("thank_you",)
TOKEN_PREFIX = "pk_dj_"


# -- parse -------------------------------------------------------------------------------------


def parse(frame: str | bytes, settings: Settings) -> Message:
    """One inbound text frame → a message. Raises ProtocolError naming the field and the rule it breaks."""
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes | bytearray) else frame
        data = _decode(text)
    except (ValueError, RecursionError):
        raise ProtocolError("Invalid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("Message must be a JSON object")
    message_id = _message_id(data)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("type: must be a string", message_id)
    reader = _READERS.get(kind)
    if reader is None:
        raise ProtocolError(f"Unknown message type: {_clip(kind)}", message_id)
    try:
        fields = reader(data, settings)
    except _Invalid as exc:
        raise ProtocolError(str(exc), message_id) from None
    return _CLASSES[kind](**fields, message_id=message_id, client_id=_client_id(data))


class _Invalid(Exception):
    """A field breaks its rule; the text is `<field>: <rule>`."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder and two encoders for the process: json.loads/dumps with options build a new one per call.
_decode = json.JSONDecoder(parse_constant=_refuse_constant).decode
_encode_utf8 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_encode_ascii = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def _clip(text: str, limit: int = 64) -> str:
    """Echo a client's text in an error: one line, short, and always valid UTF-8."""
    flat = " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def storable(text: str) -> bool:
    """Text PostgreSQL and the wire can carry: no NUL (PostgreSQL text) and no unpaired
    surrogates (UTF-8).  Every edge that accepts client text checks it with this."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _message_id(data: dict[str, Any]) -> str | None:
    value = data.get("messageId")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 128 or not storable(value):
        raise ProtocolError("messageId: must be a string of 1-128 characters")
    return value  # echoed verbatim: the client matches its ACK by exact text


def _client_id(data: dict[str, Any]) -> str | None:
    value = data.get("clientId")
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 8 <= len(value) <= 256 and storable(value) else None


# -- field readers: each takes the object, the key and the path prefix for error texts ----------

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")  # PROTOCOL.md §3: the sessionId rule
_SESSION_RULE = "must be 8-64 characters of A-Z a-z 0-9 _ -"
_INT64 = (-(2**63), 2**63 - 1)


def _required(obj: Mapping[str, Any], key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise _Invalid(f"{where}{key}: is required")
    return value


def _text(
    obj: Mapping[str, Any], key: str, where: str, low: int, high: int, *, optional: bool = False
) -> str | None:
    value = obj.get(key) if optional else _required(obj, key, where)
    if value is None:
        return None
    return _check_text(value, where, key, low, high)


def _check_text(value: Any, where: str, key: str, low: int, high: int) -> str:
    """`value` as text of `low`-`high` characters; errors name the field `{where}{key}`."""
    if not isinstance(value, str):
        raise _Invalid(f"{where}{key}: must be a string")
    value = value.strip()
    if not low <= len(value) <= high:
        rule = f"at most {high}" if low == 0 else f"{low}-{high}"
        raise _Invalid(f"{where}{key}: must be {rule} characters")
    if not storable(value):
        raise _Invalid(f"{where}{key}: must not contain NUL characters or unpaired surrogates")
    return value


def _session_id(obj: Mapping[str, Any], key: str = "sessionId", *, optional: bool = False) -> str | None:
    value = obj.get(key) if optional else _required(obj, key, "")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{key}: must be a string")
    value = value.strip()
    if not SESSION_ID.fullmatch(value):
        raise _Invalid(f"{key}: {_SESSION_RULE}")
    return value


def _integer(
    obj: Mapping[str, Any], key: str, *, optional: bool = False, low: int = _INT64[0], high: int = _INT64[1]
) -> int | None:
    value = obj.get(key) if optional else _required(obj, key, "")
    if value is None:
        return None
    ranged = (low, high) != _INT64
    rule = f"must be an integer {low}-{high}" if ranged else "must be an integer"
    if type(value) is not int:  # bool, float (even 3.0) and strings are refused
        raise _Invalid(f"{key}: {rule}")
    if not low <= value <= high:
        raise _Invalid(f"{key}: {rule}" if ranged else f"{key}: must be a 64-bit integer")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str, low: float, high: float) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise _Invalid(f"{where}{key}: must be a number {low:g}-{high:g}")
    return float(value)


def _time(obj: Mapping[str, Any], key: str) -> float | None:
    """An optional ISO-8601 UTC timestamp with `Z` (PROTOCOL.md's format), as epoch seconds."""
    value = obj.get(key)
    if value is None:
        return None
    rule = f"{key}: must be an ISO-8601 UTC time ending in Z, e.g. 2026-01-15T21:04:05.123Z"
    if not isinstance(value, str) or not value.endswith("Z") or len(value) > 40:
        raise _Invalid(rule)
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise _Invalid(rule) from None


def _boolean(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _Invalid(f"{key}: must be true or false")
    return value


def _choice(obj: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = _required(obj, key, "")
    if not isinstance(value, str) or value.strip() not in choices:
        raise _Invalid(f"{key}: must be one of {', '.join(choices)}")
    return value.strip()


def _object(obj: Mapping[str, Any], key: str, where: str, what: str) -> Mapping[str, Any]:
    value = _required(obj, key, where)
    if not isinstance(value, dict):
        raise _Invalid(f"{where}{key}: must be an object {what}")
    return value


def _track(obj: Mapping[str, Any], key: str, where: str = "") -> TrackInfo:
    return _track_value(_object(obj, key, where, "with title and artist"), f"{where}{key}.")


def read_track(raw: Any, where: str) -> TrackInfo:
    """A TrackInfo from JSON outside a frame (an HTTP body); ProtocolError names the field and rule."""
    try:
        if not isinstance(raw, dict):
            raise _Invalid(f"{where.rstrip('.')}: must be an object with title and artist")
        return _track_value(raw, where)
    except _Invalid as exc:
        raise ProtocolError(str(exc)) from None


def _track_value(raw: Mapping[str, Any], where: str) -> TrackInfo:
    title = _text(raw, "title", where, 1, 500)
    artist = _text(raw, "artist", where, 1, 500)
    assert title is not None and artist is not None
    return TrackInfo(
        title=title,
        artist=artist,
        bpm=_number(raw, "bpm", where, 40, 300),
        key=_text(raw, "key", where, 0, 10, optional=True) or None,
        energy=_number(raw, "energy", where, 0, 100),
        danceability=_number(raw, "danceability", where, 0, 100),
        brightness=_number(raw, "brightness", where, 0, 100),
        acousticness=_number(raw, "acousticness", where, 0, 100),
        groove=_number(raw, "groove", where, 0, 100),
    )


def _list(obj: Mapping[str, Any], key: str, where: str, low: int, high: int, noun: str) -> list[Any]:
    value = _required(obj, key, where)
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise _Invalid(f"{where}{key}: must be a list of {low}-{high} {noun}")
    return value


# -- one reader per message type: JSON object → dataclass fields --------------------------------

_Fields = dict[str, Any]


def _read_register(d: Mapping[str, Any], s: Settings) -> _Fields:
    dj_name = d.get("djName")
    if dj_name is not None:
        if not isinstance(dj_name, str):
            raise _Invalid("djName: must be a string")
        dj_name = dj_name.strip()
        if not 1 <= len(dj_name) <= 100 or _UNSAFE_NAME.search(dj_name) or not storable(dj_name):
            raise _Invalid("djName: must be 1-100 characters without < > \" '")
    return {
        "session_id": _session_id(d, optional=True),
        "dj_name": dj_name,
        "token": _token(d),
        "resume_key": _text(d, "resumeKey", "", 0, 128, optional=True) or None,
        "version": _text(d, "version", "", 0, 50, optional=True) or None,
    }


def _token(d: Mapping[str, Any], *, required: bool = False) -> str | None:
    """A DJ API token (`pk_dj_…`); empty counts as absent.  A malformed one is `Invalid token`,
    the same answer as a well-formed token that matches no account."""
    token = d.get("token")
    if token is not None:
        if not isinstance(token, str):
            raise _Invalid("token: must be a string")
        token = token.strip() or None
        if token is not None and (
            not token.startswith(TOKEN_PREFIX) or len(token) > 256 or not storable(token)
        ):
            raise _Invalid("Invalid token")
    if token is None and required:
        raise _Invalid("token: is required (the DJ account's API token)")
    return token


def _read_attach(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"session_id": _session_id(d), "token": _token(d, required=True)}


def _read_session_track(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"session_id": _session_id(d), "track": _track(d, "track")}


def _read_broadcast_track(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"session_id": _session_id(d), "track": _track(d, "track"), "played_at": _time(d, "playedAt")}


def _read_session_only(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"session_id": _session_id(d)}


def _read_announcement(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {
        "session_id": _session_id(d),
        "message": _text(d, "message", "", 1, 200),
        "duration_seconds": _integer(
            d,
            "durationSeconds",
            optional=True,
            low=s.announcement_min_seconds,
            high=s.announcement_max_seconds,
        ),
        "push": _boolean(d, "push"),
    }


def _read_start_poll(d: Mapping[str, Any], s: Settings) -> _Fields:
    session_id = _session_id(d)
    question = _text(d, "question", "", 1, 500)
    options = _list(d, "options", "", 2, s.poll_max_options, "options")
    return {
        "session_id": session_id,
        "question": question,
        "options": tuple(_check_text(o, "", f"options[{i}]", 1, 100) for i, o in enumerate(options)),
        "duration_seconds": _integer(
            d, "durationSeconds", optional=True, low=s.poll_min_seconds, high=s.poll_max_seconds
        ),
    }


def _read_end_poll(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"poll_id": _integer(d, "pollId")}


def _read_cancel_poll(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"poll_id": _integer(d, "pollId", optional=True), "session_id": _session_id(d, optional=True)}


def _read_subscribe(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"session_id": _session_id(d, optional=True)}


def _read_nothing(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {}


def _read_like(d: Mapping[str, Any], s: Settings) -> _Fields:
    session_id = _session_id(d)
    return {
        "session_id": session_id,
        "track": _track(_object(d, "payload", "", "with track"), "track", "payload."),
    }


def _read_bulk_like(d: Mapping[str, Any], s: Settings) -> _Fields:
    session_id = _session_id(d)
    payload = _object(d, "payload", "", "with tracks")
    raw = _list(payload, "tracks", "payload.", 1, s.bulk_like_max_tracks, "tracks")
    tracks = []
    for i, item in enumerate(raw):
        where = f"payload.tracks[{i}]"
        if not isinstance(item, dict):
            raise _Invalid(f"{where}: must be an object with title and artist")
        tracks.append(_track_value(item, where + "."))
    return {"session_id": session_id, "tracks": tuple(tracks)}


def _read_tempo(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"session_id": _session_id(d), "preference": _choice(d, "preference", TEMPO_PREFERENCES)}


def _read_vote(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"poll_id": _integer(d, "pollId"), "option_index": _integer(d, "optionIndex")}


def _read_reaction(d: Mapping[str, Any], s: Settings) -> _Fields:
    return {"session_id": _session_id(d), "reaction": _choice(d, "reaction", REACTIONS)}


_READERS: dict[str, Callable[[Mapping[str, Any], Settings], _Fields]] = {
    RegisterSession.TYPE: _read_register,
    AttachSession.TYPE: _read_attach,
    BroadcastTrack.TYPE: _read_broadcast_track,
    MetadataUpdated.TYPE: _read_session_track,
    TrackStopped.TYPE: _read_session_only,
    EndSession.TYPE: _read_session_only,
    SendAnnouncement.TYPE: _read_announcement,
    CancelAnnouncement.TYPE: _read_session_only,
    StartPoll.TYPE: _read_start_poll,
    EndPoll.TYPE: _read_end_poll,
    CancelPoll.TYPE: _read_cancel_poll,
    ValidateSession.TYPE: _read_session_only,
    Subscribe.TYPE: _read_subscribe,
    GetSessions.TYPE: _read_nothing,
    SendLike.TYPE: _read_like,
    SendBulkLike.TYPE: _read_bulk_like,
    RemoveLike.TYPE: _read_like,
    SendTempoRequest.TYPE: _read_tempo,
    VoteOnPoll.TYPE: _read_vote,
    SendReaction.TYPE: _read_reaction,
    Ping.TYPE: _read_nothing,
}

_CLASSES: dict[str, type] = {cls.TYPE: cls for cls in get_args(Message)}
assert _CLASSES.keys() == _READERS.keys()


# -- outbound helpers --------------------------------------------------------------------------


def iso(ts: datetime | float) -> str:
    """ISO-8601 UTC with milliseconds and `Z`, e.g. `2026-01-15T21:04:05.123Z`. A float is epoch seconds;
    a naive datetime is taken as UTC."""
    global _last_second
    if isinstance(ts, datetime):
        dt = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    else:
        dt = datetime.fromtimestamp(ts, UTC)
    second = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
    last = _last_second
    if last[0] != second:  # most frames are stamped within the second of the previous one
        text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
        last = _last_second = (second, text)
    return f"{last[1]}.{dt.microsecond // 1000:03d}Z"


# The last second iso() formatted and its text: one tuple, replaced whole (safe across threads).
_last_second: tuple[tuple[int, ...], str] = ((), "")


def encode(message: Mapping[str, Any]) -> str:
    """Compact JSON text for one frame. Keys whose value is None are dropped (in nested objects too):
    0.3 clients drop a frame with a `null` where a field is optional.  Text that UTF-8 cannot
    carry (a lone surrogate) is sent \\u-escaped rather than breaking the connection."""
    value = _drop_none(message)
    text = _encode_utf8(value)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(value)
    return text


_LEAVES = frozenset({str, int, float, bool})


def _drop_none(value: Any) -> Any:
    if type(value) in _LEAVES:  # most values: no isinstance walk through the ABCs
        return value
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return value


_UNSAFE_NAME = re.compile(r"[<>\"']")


def safe_dj_name(name: str | None) -> str:
    """A stored display name made fit for the wire: 1-100 characters without < > " ' (else "DJ")."""
    cleaned = " ".join(_UNSAFE_NAME.sub("", name or "").split())[:100].strip()
    return cleaned or "DJ"


def ack(message_id: str, now: float) -> dict[str, Any]:
    return {"type": "ACK", "messageId": message_id, "status": "ok", "timestamp": iso(now)}


def nack(message_id: str, error: str, now: float) -> dict[str, Any]:
    return {"type": "NACK", "messageId": message_id, "error": error, "timestamp": iso(now)}


def error(error: str) -> dict[str, Any]:
    return {"type": "ERROR", "error": error}
