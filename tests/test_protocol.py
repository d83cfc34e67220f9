"""The wire protocol as pure values: parse every message type, refuse every broken rule by name."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pika.config import Settings
from pika.protocol import (
    ANALYTICS_FIELDS,
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
    TrackInfo,
    TrackStopped,
    ValidateSession,
    VoteOnPoll,
    ack,
    encode,
    error,
    iso,
    nack,
    parse,
    safe_dj_name,
    storable,
)

SETTINGS = Settings()
SID = "conf_0001"
TRACK = {"title": "Billie Jean", "artist": "Michael Jackson"}


def frame(**fields: Any) -> str:
    return json.dumps(fields)


def refused(message: dict[str, Any] | str) -> ProtocolError:
    text = message if isinstance(message, str) else json.dumps(message)
    with pytest.raises(ProtocolError) as info:
        parse(text, SETTINGS)
    return info.value


# -- every message type parses -------------------------------------------------------------------

VALID: list[tuple[dict[str, Any], Message]] = [
    ({"type": "REGISTER_SESSION"}, RegisterSession(None, None, None, None, None)),
    (
        {
            "type": "REGISTER_SESSION",
            "sessionId": SID,
            "djName": " DJ Pika ",
            "token": "pk_dj_" + "a" * 32,
            "resumeKey": "secret",
            "version": "0.3.1",
        },
        RegisterSession(SID, "DJ Pika", "pk_dj_" + "a" * 32, "secret", "0.3.1"),
    ),
    (
        {"type": "ATTACH_SESSION", "sessionId": SID, "token": " pk_dj_" + "b" * 32},
        AttachSession(SID, "pk_dj_" + "b" * 32),
    ),
    ({"type": "BROADCAST_TRACK", "sessionId": SID, "track": TRACK}, BroadcastTrack(SID, TrackInfo(**TRACK))),
    (
        {"type": "BROADCAST_TRACK", "sessionId": SID, "track": TRACK, "playedAt": "2026-01-15T21:04:05.123Z"},
        BroadcastTrack(
            SID, TrackInfo(**TRACK), played_at=datetime(2026, 1, 15, 21, 4, 5, 123000, UTC).timestamp()
        ),
    ),
    (
        {"type": "METADATA_UPDATED", "sessionId": SID, "track": {**TRACK, "bpm": 117, "key": "F#m"}},
        MetadataUpdated(SID, TrackInfo("Billie Jean", "Michael Jackson", bpm=117.0, key="F#m")),
    ),
    ({"type": "TRACK_STOPPED", "sessionId": SID}, TrackStopped(SID)),
    ({"type": "END_SESSION", "sessionId": SID}, EndSession(SID)),
    (
        {"type": "SEND_ANNOUNCEMENT", "sessionId": SID, "message": "Last dance!", "durationSeconds": 15},
        SendAnnouncement(SID, "Last dance!", 15, False),
    ),
    (
        {"type": "SEND_ANNOUNCEMENT", "sessionId": SID, "message": "Hi", "push": True},
        SendAnnouncement(SID, "Hi", None, True),
    ),
    ({"type": "CANCEL_ANNOUNCEMENT", "sessionId": SID}, CancelAnnouncement(SID)),
    (
        {"type": "START_POLL", "sessionId": SID, "question": "Next?", "options": ["Salsa", "Bachata"]},
        StartPoll(SID, "Next?", ("Salsa", "Bachata"), None),
    ),
    (
        {
            "type": "START_POLL",
            "sessionId": SID,
            "question": "Q",
            "options": ["a", "b", "c"],
            "durationSeconds": 60,
        },
        StartPoll(SID, "Q", ("a", "b", "c"), 60),
    ),
    ({"type": "END_POLL", "pollId": 7}, EndPoll(7)),
    ({"type": "CANCEL_POLL"}, CancelPoll(None, None)),
    ({"type": "CANCEL_POLL", "sessionId": SID}, CancelPoll(None, SID)),
    ({"type": "CANCEL_POLL", "pollId": 3, "sessionId": SID}, CancelPoll(3, SID)),
    ({"type": "VALIDATE_SESSION", "sessionId": SID}, ValidateSession(SID)),
    ({"type": "SUBSCRIBE"}, Subscribe(None)),
    ({"type": "SUBSCRIBE", "sessionId": SID}, Subscribe(SID)),
    ({"type": "GET_SESSIONS"}, GetSessions()),
    ({"type": "SEND_LIKE", "sessionId": SID, "payload": {"track": TRACK}}, SendLike(SID, TrackInfo(**TRACK))),
    (
        {
            "type": "SEND_BULK_LIKE",
            "sessionId": SID,
            "payload": {"tracks": [TRACK, {"title": "t", "artist": "a"}]},
        },
        SendBulkLike(SID, (TrackInfo(**TRACK), TrackInfo("t", "a"))),
    ),
    (
        {"type": "REMOVE_LIKE", "sessionId": SID, "payload": {"track": TRACK}},
        RemoveLike(SID, TrackInfo(**TRACK)),
    ),
    *[
        ({"type": "SEND_TEMPO_REQUEST", "sessionId": SID, "preference": p}, SendTempoRequest(SID, p))
        for p in ("faster", "slower", "perfect", "clear")
    ],
    ({"type": "VOTE_ON_POLL", "pollId": 7, "optionIndex": 0}, VoteOnPoll(7, 0)),
    ({"type": "VOTE_ON_POLL", "pollId": 7, "optionIndex": -1}, VoteOnPoll(7, -1)),
    ({"type": "SEND_REACTION", "sessionId": SID, "reaction": "thank_you"}, SendReaction(SID, "thank_you")),
    ({"type": "PING"}, Ping()),
]


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=lambda v: v["type"] if isinstance(v, dict) else "")
def test_valid_messages_parse_to_their_dataclass(raw: dict[str, Any], expected: Message) -> None:
    assert parse(json.dumps(raw), SETTINGS) == expected
    assert parse(json.dumps(raw).encode(), SETTINGS) == expected
    assert raw["type"] == type(expected).TYPE


def test_every_message_type_has_a_valid_example() -> None:
    assert {type(m) for _, m in VALID} == set(get_args(Message))


def test_message_id_and_client_id_are_carried_on_every_type() -> None:
    for raw, expected in VALID:
        message = parse(json.dumps({**raw, "messageId": "m-1", "clientId": "  client-0001  "}), SETTINGS)
        assert (message.message_id, message.client_id) == ("m-1", "client-0001"), raw["type"]
        assert type(message) is type(expected)


def test_state_changing_excludes_only_the_read_only_messages() -> None:
    assert set(get_args(Message)) - STATE_CHANGING == {
        ValidateSession,
        Subscribe,
        GetSessions,
        Ping,
        AttachSession,
    }


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"token": "pk_dj_" + "a" * 32}, "sessionId: is required"),
        ({"sessionId": SID}, "token: is required (the DJ account's API token)"),
        ({"sessionId": SID, "token": "  "}, "token: is required (the DJ account's API token)"),
        ({"sessionId": SID, "token": 42}, "token: must be a string"),
        ({"sessionId": SID, "token": "not-a-pika-token"}, "Invalid token"),
    ],
)
def test_attach_session_needs_a_session_id_and_a_token(fields: dict[str, Any], error: str) -> None:
    assert refused({"type": "ATTACH_SESSION", "messageId": "a-1", **fields}).error == error


def test_unknown_extra_fields_and_track_keys_are_ignored() -> None:
    raw = {"type": "BROADCAST_TRACK", "sessionId": SID, "extra": [1], "track": {**TRACK, "album": "Thriller"}}
    assert parse(json.dumps(raw), SETTINGS) == BroadcastTrack(SID, TrackInfo(**TRACK))


def test_null_optional_fields_are_absent() -> None:
    track = {**TRACK, **dict.fromkeys(ANALYTICS_FIELDS)}
    assert parse(frame(type="BROADCAST_TRACK", sessionId=SID, track=track), SETTINGS).track == TrackInfo(
        **TRACK
    )
    raw = frame(
        type="REGISTER_SESSION", sessionId=None, djName=None, token=None, messageId=None, clientId=None
    )
    assert parse(raw, SETTINGS) == RegisterSession(None, None, None, None, None)
    raw = frame(type="SEND_ANNOUNCEMENT", sessionId=SID, message="m", durationSeconds=None, push=None)
    assert parse(raw, SETTINGS) == SendAnnouncement(SID, "m", None, False)


# -- trimming ------------------------------------------------------------------------------------


def test_strings_are_trimmed_before_use() -> None:
    raw = {
        "type": "START_POLL",
        "sessionId": f"  {SID}\t",
        "question": "  Next?\n",
        "options": [" Salsa ", "Bachata  "],
    }
    assert parse(json.dumps(raw), SETTINGS) == StartPoll(SID, "Next?", ("Salsa", "Bachata"), None)
    track = parse(
        frame(type="SEND_LIKE", sessionId=SID, payload={"track": {"title": " T ", "artist": " A "}}), SETTINGS
    )
    assert track.track == TrackInfo("T", "A")


def test_length_is_counted_after_trimming() -> None:
    ok = parse(frame(type="SEND_ANNOUNCEMENT", sessionId=SID, message="  " + "x" * 200 + "  "), SETTINGS)
    assert ok.message == "x" * 200
    assert refused({"type": "SEND_ANNOUNCEMENT", "sessionId": SID, "message": "   "}).error == (
        "message: must be 1-200 characters"
    )


def test_blank_token_means_no_token_and_blank_key_is_absent() -> None:
    message = parse(frame(type="REGISTER_SESSION", token="  ", resumeKey="", version=""), SETTINGS)
    assert message == RegisterSession(None, None, None, None, None)


def test_client_id_outside_8_to_256_characters_is_treated_as_absent() -> None:
    for value in ("short", "  1234567 ", "x" * 257, 12345678, ["client-0001"], ""):
        assert parse(frame(type="PING", clientId=value), SETTINGS).client_id is None
    assert parse(frame(type="PING", clientId=" 12345678 "), SETTINGS).client_id == "12345678"


def test_message_id_is_echoed_verbatim() -> None:
    assert parse(frame(type="PING", messageId=" m 1 "), SETTINGS).message_id == " m 1 "


# -- refusals name the field and the rule -------------------------------------------------------

SESSION_RULE = "sessionId: must be 8-64 characters of A-Z a-z 0-9 _ -"
TRACK_MSG = {"type": "BROADCAST_TRACK", "sessionId": SID}
POLL_MSG = {"type": "START_POLL", "sessionId": SID, "question": "Q", "options": ["a", "b"]}
ANN_MSG = {"type": "SEND_ANNOUNCEMENT", "sessionId": SID, "message": "m"}

REFUSALS: list[tuple[dict[str, Any], str]] = [
    # sessionId
    ({"type": "TRACK_STOPPED"}, "sessionId: is required"),
    ({"type": "TRACK_STOPPED", "sessionId": "short"}, SESSION_RULE),
    ({"type": "TRACK_STOPPED", "sessionId": "1234567"}, SESSION_RULE),
    ({"type": "TRACK_STOPPED", "sessionId": "x" * 65}, SESSION_RULE),
    ({"type": "TRACK_STOPPED", "sessionId": "has space"}, SESSION_RULE),
    ({"type": "TRACK_STOPPED", "sessionId": "sess.ion01"}, SESSION_RULE),
    ({"type": "TRACK_STOPPED", "sessionId": "séssion01"}, SESSION_RULE),
    ({"type": "TRACK_STOPPED", "sessionId": "abcdefg\u0660"}, SESSION_RULE),
    ({"type": "TRACK_STOPPED", "sessionId": 12345678}, "sessionId: must be a string"),
    ({"type": "REGISTER_SESSION", "sessionId": "bad"}, SESSION_RULE),
    ({"type": "SUBSCRIBE", "sessionId": "bad id!"}, SESSION_RULE),
    ({"type": "CANCEL_POLL", "sessionId": "bad"}, SESSION_RULE),
    # track
    ({**TRACK_MSG}, "track: is required"),
    ({**TRACK_MSG, "track": "Billie Jean"}, "track: must be an object with title and artist"),
    ({**TRACK_MSG, "track": {"artist": "A"}}, "track.title: is required"),
    ({**TRACK_MSG, "track": {"title": " ", "artist": "A"}}, "track.title: must be 1-500 characters"),
    ({**TRACK_MSG, "track": {"title": "x" * 501, "artist": "A"}}, "track.title: must be 1-500 characters"),
    ({**TRACK_MSG, "track": {"title": 5, "artist": "A"}}, "track.title: must be a string"),
    ({**TRACK_MSG, "track": {"title": "T", "artist": ""}}, "track.artist: must be 1-500 characters"),
    ({**TRACK_MSG, "track": {**TRACK, "bpm": 39.9}}, "track.bpm: must be a number 40-300"),
    ({**TRACK_MSG, "track": {**TRACK, "bpm": 301}}, "track.bpm: must be a number 40-300"),
    ({**TRACK_MSG, "track": {**TRACK, "bpm": "120"}}, "track.bpm: must be a number 40-300"),
    ({**TRACK_MSG, "track": {**TRACK, "bpm": True}}, "track.bpm: must be a number 40-300"),
    ({**TRACK_MSG, "track": {**TRACK, "key": "x" * 11}}, "track.key: must be at most 10 characters"),
    ({**TRACK_MSG, "track": {**TRACK, "key": 5}}, "track.key: must be a string"),
    *[
        ({**TRACK_MSG, "track": {**TRACK, name: bad}}, f"track.{name}: must be a number 0-100")
        for name in ("energy", "danceability", "brightness", "acousticness", "groove")
        for bad in (-0.1, 100.5, False, "50")
    ],
    ({**TRACK_MSG, "track": {"title": "a\x00b", "artist": "A"}}, "track.title: must not contain NUL"),
    ({"type": "METADATA_UPDATED", "sessionId": SID, "track": {"title": "T"}}, "track.artist: is required"),
    # likes
    ({"type": "SEND_LIKE", "sessionId": SID}, "payload: is required"),
    ({"type": "SEND_LIKE", "sessionId": SID, "payload": []}, "payload: must be an object with track"),
    ({"type": "SEND_LIKE", "sessionId": SID, "payload": {}}, "payload.track: is required"),
    ({"type": "SEND_LIKE", "sessionId": SID, "track": TRACK}, "payload: is required"),
    (
        {"type": "REMOVE_LIKE", "sessionId": SID, "payload": {"track": {"title": "", "artist": "A"}}},
        "payload.track.title: must be 1-500 characters",
    ),
    ({"type": "SEND_BULK_LIKE", "sessionId": SID, "payload": {}}, "payload.tracks: is required"),
    (
        {"type": "SEND_BULK_LIKE", "sessionId": SID, "payload": {"tracks": []}},
        "payload.tracks: must be a list of 1-100 tracks",
    ),
    (
        {"type": "SEND_BULK_LIKE", "sessionId": SID, "payload": {"tracks": [TRACK] * 101}},
        "payload.tracks: must be a list of 1-100 tracks",
    ),
    (
        {"type": "SEND_BULK_LIKE", "sessionId": SID, "payload": {"tracks": [TRACK] * 3 + [{"artist": "A"}]}},
        "payload.tracks[3].title: is required",
    ),
    (
        {
            "type": "SEND_BULK_LIKE",
            "sessionId": SID,
            "payload": {"tracks": [TRACK] * 3 + [{"title": " ", "artist": "A"}]},
        },
        "payload.tracks[3].title: must be 1-500 characters",
    ),
    (
        {"type": "SEND_BULK_LIKE", "sessionId": SID, "payload": {"tracks": [TRACK, "x"]}},
        "payload.tracks[1]: must be an object with title and artist",
    ),
    # announcements
    ({**ANN_MSG, "message": "x" * 201}, "message: must be 1-200 characters"),
    ({**ANN_MSG, "message": None}, "message: is required"),
    ({**ANN_MSG, "durationSeconds": 14}, "durationSeconds: must be an integer 15-3600"),
    ({**ANN_MSG, "durationSeconds": 3601}, "durationSeconds: must be an integer 15-3600"),
    ({**ANN_MSG, "durationSeconds": 30.5}, "durationSeconds: must be an integer 15-3600"),
    ({**ANN_MSG, "push": "yes"}, "push: must be true or false"),
    # polls
    ({**POLL_MSG, "question": ""}, "question: must be 1-500 characters"),
    ({**POLL_MSG, "question": "q" * 501}, "question: must be 1-500 characters"),
    ({**POLL_MSG, "options": ["only"]}, "options: must be a list of 2-10 options"),
    ({**POLL_MSG, "options": [str(i) for i in range(11)]}, "options: must be a list of 2-10 options"),
    ({**POLL_MSG, "options": "a,b"}, "options: must be a list of 2-10 options"),
    ({**POLL_MSG, "options": ["a", "  "]}, "options[1]: must be 1-100 characters"),
    ({**POLL_MSG, "options": ["a", "b" * 101]}, "options[1]: must be 1-100 characters"),
    ({**POLL_MSG, "options": ["a", 2]}, "options[1]: must be a string"),
    ({**POLL_MSG, "durationSeconds": 29}, "durationSeconds: must be an integer 30-300"),
    ({**POLL_MSG, "durationSeconds": 301}, "durationSeconds: must be an integer 30-300"),
    ({"type": "END_POLL"}, "pollId: is required"),
    ({"type": "VOTE_ON_POLL", "pollId": 1}, "optionIndex: is required"),
    ({"type": "VOTE_ON_POLL", "pollId": 2**63, "optionIndex": 0}, "pollId: must be a 64-bit integer"),
    # choices
    ({"type": "SEND_TEMPO_REQUEST", "sessionId": SID, "preference": "FASTER"}, "preference: must be one of"),
    ({"type": "SEND_TEMPO_REQUEST", "sessionId": SID}, "preference: is required"),
    ({"type": "SEND_REACTION", "sessionId": SID, "reaction": "boo"}, "reaction: must be one of thank_you"),
    # register
    ({"type": "REGISTER_SESSION", "djName": ""}, "djName: must be 1-100 characters without < > \" '"),
    ({"type": "REGISTER_SESSION", "djName": "x" * 101}, "djName: must be 1-100 characters without < > \" '"),
    (
        {"type": "REGISTER_SESSION", "djName": "<b>DJ</b>"},
        "djName: must be 1-100 characters without < > \" '",
    ),
    ({"type": "REGISTER_SESSION", "djName": "DJ 'Q'"}, "djName: must be 1-100 characters without < > \" '"),
    ({"type": "REGISTER_SESSION", "djName": 7}, "djName: must be a string"),
    ({"type": "REGISTER_SESSION", "token": "abc"}, "Invalid token"),
    ({"type": "REGISTER_SESSION", "token": "pk_user_123"}, "Invalid token"),
    ({"type": "REGISTER_SESSION", "token": 5}, "token: must be a string"),
    ({"type": "REGISTER_SESSION", "resumeKey": "k" * 129}, "resumeKey: must be at most 128 characters"),
    ({"type": "REGISTER_SESSION", "version": "v" * 51}, "version: must be at most 50 characters"),
    ({"type": "REGISTER_SESSION", "version": 3}, "version: must be a string"),
    # when the DJ played a track
    (
        {"type": "BROADCAST_TRACK", "sessionId": SID, "track": TRACK, "playedAt": "2026-01-15T21:04:05"},
        "playedAt: must be an ISO-8601 UTC time ending in Z",
    ),
    (
        {"type": "BROADCAST_TRACK", "sessionId": SID, "track": TRACK, "playedAt": 1768511045},
        "playedAt: must be an ISO-8601 UTC time ending in Z",
    ),
    (
        {"type": "BROADCAST_TRACK", "sessionId": SID, "track": TRACK, "playedAt": "yesterdayZ"},
        "playedAt: must be an ISO-8601 UTC time ending in Z",
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), REFUSALS, ids=lambda v: v.split(":")[0] if isinstance(v, str) else ""
)
def test_each_rule_is_refused_naming_the_field(raw: dict[str, Any], expected: str) -> None:
    exc = refused(raw)
    assert exc.error.startswith(expected)
    assert "\n" not in exc.error
    assert exc.message_id is None
    assert refused({**raw, "messageId": "m-42"}).message_id == "m-42"


@pytest.mark.parametrize("field", ["pollId", "optionIndex"])
@pytest.mark.parametrize("bad", [True, False, 1.5, 3.0, "1", [1], {"n": 1}])
def test_poll_integers_are_strict(field: str, bad: Any) -> None:
    raw = {"type": "VOTE_ON_POLL", "pollId": 1, "optionIndex": 0, field: bad}
    assert refused(raw).error == f"{field}: must be an integer"


@pytest.mark.parametrize("bad", [True, 1.5, "1"])
def test_end_and_cancel_poll_ids_are_strict(bad: Any) -> None:
    assert refused({"type": "END_POLL", "pollId": bad}).error == "pollId: must be an integer"
    assert refused({"type": "CANCEL_POLL", "pollId": bad}).error == "pollId: must be an integer"


@pytest.mark.parametrize("sid", ["abcdefgh", "A" * 64, "pika_abc-DEF_123", "________", "--------"])
def test_session_ids_of_the_allowed_charset_and_length_are_accepted(sid: str) -> None:
    assert parse(frame(type="VALIDATE_SESSION", sessionId=sid), SETTINGS) == ValidateSession(sid)


def test_limits_come_from_settings() -> None:
    settings = Settings(poll_max_options=3, bulk_like_max_tracks=2, announcement_min_seconds=5)
    with pytest.raises(ProtocolError, match=r"options: must be a list of 2-3 options"):
        parse(json.dumps({**POLL_MSG, "options": ["a", "b", "c", "d"]}), settings)
    with pytest.raises(ProtocolError, match=r"payload.tracks: must be a list of 1-2 tracks"):
        parse(frame(type="SEND_BULK_LIKE", sessionId=SID, payload={"tracks": [TRACK] * 3}), settings)
    assert parse(json.dumps({**ANN_MSG, "durationSeconds": 5}), settings).duration_seconds == 5


# -- envelope errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "Invalid JSON"),
        ("", "Invalid JSON"),
        ('{"type": NaN}', "Invalid JSON"),
        ('{"type": "PING", "x": Infinity}', "Invalid JSON"),
        ("[" * 100_000, "Invalid JSON"),
        ("[]", "Message must be a JSON object"),
        ('"PING"', "Message must be a JSON object"),
        ("null", "Message must be a JSON object"),
        ("{}", "type: must be a string"),
        ('{"type": 5}', "type: must be a string"),
        ('{"type": "FOO"}', "Unknown message type: FOO"),
        ('{"type": "ping"}', "Unknown message type: ping"),
    ],
)
def test_unreadable_frames_are_refused_without_a_message_id(text: str, expected: str) -> None:
    exc = refused(text)
    assert (exc.error, exc.message_id) == (expected, None)


def test_invalid_utf8_bytes_are_invalid_json() -> None:
    with pytest.raises(ProtocolError, match="Invalid JSON"):
        parse(b'{"type": "PING", "x": "\xff"}', SETTINGS)


def test_unknown_type_with_a_message_id_carries_it() -> None:
    exc = refused({"type": "FOO", "messageId": "m-7"})
    assert (exc.error, exc.message_id) == ("Unknown message type: FOO", "m-7")
    assert refused({"messageId": "m-8"}).message_id == "m-8"


def test_unknown_type_text_stays_one_short_line() -> None:
    exc = refused({"type": "X\n" * 500})
    assert "\n" not in exc.error and len(exc.error) < 100


@pytest.mark.parametrize("bad", ["", "   ", "m" * 129, 5, True, ["m"], "a\x00"])
def test_a_bad_message_id_is_refused_without_echoing_it(bad: Any) -> None:
    exc = refused({"type": "PING", "messageId": bad})
    assert (exc.error, exc.message_id) == ("messageId: must be a string of 1-128 characters", None)


# -- hypothesis: nothing but ProtocolError escapes -----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
TYPES = [cls.TYPE for cls in get_args(Message)]
FIELD_NAMES = [
    "sessionId", "djName", "token", "resumeKey", "version", "track", "message", "durationSeconds", "push",
    "question", "options", "pollId", "optionIndex", "payload", "preference", "reaction", "messageId",
    "clientId", "title", "artist", "bpm", "key", "energy", "tracks", "playedAt",
]  # fmt: skip
field_values = st.recursive(
    json_values | st.sampled_from([SID, "thank_you", "faster", "pk_dj_x", 0, 60, 120, -1, 2**70]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(FIELD_NAMES), children, max_size=6)
    ),
    max_leaves=25,
)


def _parse_or_refuse(text: str | bytes) -> Message | None:
    try:
        message = parse(text, SETTINGS)
    except ProtocolError as exc:
        assert isinstance(exc.error, str) and exc.error and "\n" not in exc.error
        assert exc.message_id is None or isinstance(exc.message_id, str)
        return None
    assert isinstance(message, get_args(Message))
    return message


@given(json_values)
def test_arbitrary_json_never_raises_anything_but_protocol_error(value: Any) -> None:
    _parse_or_refuse(json.dumps(value))


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_and_text_never_raise_anything_but_protocol_error(data: str | bytes) -> None:
    _parse_or_refuse(data)


@given(st.sampled_from(TYPES), st.dictionaries(st.sampled_from(FIELD_NAMES), field_values, max_size=8))
def test_arbitrary_fields_with_a_valid_type_never_raise_anything_but_protocol_error(
    kind: str, fields: dict[str, Any]
) -> None:
    message = _parse_or_refuse(json.dumps({**fields, "type": kind}))
    if message is not None:
        assert kind == type(message).TYPE
        for track in [getattr(message, "track", None), *getattr(message, "tracks", ())]:
            if track is not None:
                assert None not in track.to_wire().values()
                json.loads(encode(track.to_wire()))


# -- TrackInfo -----------------------------------------------------------------------------------


def test_match_key_ignores_case_and_spacing() -> None:
    a = TrackInfo("  Billie   Jean ", "Michael  Jackson")
    b = TrackInfo("billie jean", "MICHAEL JACKSON ")
    assert a.match_key == b.match_key and a.same_track(b)
    assert not a.same_track(TrackInfo("Billie Jean", "Someone Else"))
    assert TrackInfo("Straße", "X").same_track(TrackInfo("STRASSE", "x"))


def test_match_key_keeps_artist_and_title_apart() -> None:
    assert not TrackInfo("b c", "a").same_track(TrackInfo("c", "a b"))


@given(
    st.text(min_size=1),
    st.text(min_size=1),
    st.one_of(st.none(), st.floats(40, 300)),
    st.one_of(st.none(), st.text(max_size=10)),
    st.one_of(st.none(), st.floats(0, 100)),
)
def test_to_wire_never_contains_none(title: str, artist: str, bpm: Any, key: Any, energy: Any) -> None:
    wire = TrackInfo(title, artist, bpm=bpm, key=key, energy=energy).to_wire()
    assert None not in wire.values()
    assert wire["title"] == title and wire["artist"] == artist
    assert set(wire) <= {"title", "artist", *ANALYTICS_FIELDS}


def test_to_wire_and_analytics() -> None:
    track = TrackInfo("T", "A", bpm=120.0, groove=0.0)
    assert track.to_wire() == {"title": "T", "artist": "A", "bpm": 120.0, "groove": 0.0}
    assert track.analytics() == {
        "bpm": 120.0,
        "key": None,
        "energy": None,
        "danceability": None,
        "brightness": None,
        "acousticness": None,
        "groove": 0.0,
    }


def test_from_row_reads_database_columns() -> None:
    from decimal import Decimal

    row = {
        "id": 1,
        "title": "T",
        "artist": "A",
        "bpm": Decimal("117.5"),
        "key": "Am",
        "energy": None,
        "groove": 3,
    }
    assert TrackInfo.from_row(row) == TrackInfo("T", "A", bpm=117.5, key="Am", groove=3.0)


# -- outbound helpers ----------------------------------------------------------------------------


def test_iso_formats_utc_with_millis_and_z() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(datetime(2026, 1, 15, 21, 4, 5, 123456, tzinfo=UTC)) == "2026-01-15T21:04:05.123Z"
    plus_one = timezone(timedelta(hours=1))
    assert iso(datetime(2026, 1, 15, 22, 4, 5, 123000, tzinfo=plus_one)) == "2026-01-15T21:04:05.123Z"
    assert iso(datetime(2026, 1, 15, 21, 4, 5)) == "2026-01-15T21:04:05.000Z"


@given(st.floats(min_value=0, max_value=4_102_444_800) | st.datetimes(timezones=st.just(UTC)))
def test_iso_always_ends_with_z_and_has_millis(ts: Any) -> None:
    text = iso(ts)
    assert text.endswith("Z") and len(text) == 24
    assert text[19] == "." and text[20:23].isdigit()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    expected = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    assert timedelta(0) <= expected - parsed < timedelta(milliseconds=1)


@given(
    st.lists(
        st.floats(min_value=0, max_value=4_102_444_800) | st.datetimes(timezones=st.just(UTC)), max_size=20
    )
)
def test_iso_gives_each_time_its_own_text_whatever_came_before(stamps: list[Any]) -> None:
    """iso() reuses the text of the second it formatted last: never for another second."""
    for ts in stamps:
        dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
        assert iso(ts) == dt.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def test_encode_drops_none_and_is_compact() -> None:
    text = encode(
        {"type": "NOW_PLAYING", "sessionId": SID, "endsAt": None, "track": {"title": "é", "bpm": None}}
    )
    assert text == '{"type":"NOW_PLAYING","sessionId":"conf_0001","track":{"title":"é"}}'
    assert encode({"votes": [0, 1], "ok": False, "n": 0}) == '{"votes":[0,1],"ok":false,"n":0}'


def test_encode_refuses_nan_rather_than_sending_invalid_json() -> None:
    with pytest.raises(ValueError):
        encode({"x": math.nan})


@given(st.dictionaries(st.text(max_size=5), st.none() | st.integers() | st.text(max_size=5)))
def test_encode_never_sends_null(message: dict[str, Any]) -> None:
    decoded = json.loads(encode(message))
    assert None not in decoded.values()
    assert decoded == {k: v for k, v in message.items() if v is not None}


def _reference_encode(message: Any) -> str:
    """encode() as json.dumps with its options over a copy without None: the bytes it must keep."""

    def drop(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: drop(v) for k, v in value.items() if v is not None}
        if isinstance(value, list | tuple):
            return [drop(v) for v in value]
        return value

    options: dict[str, Any] = {"separators": (",", ":"), "allow_nan": False}
    text = json.dumps(drop(message), ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(drop(message), ensure_ascii=True, **options)
    return text


_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _values, max_size=6))
def test_encode_is_byte_identical_to_json_dumps_without_nulls(message: dict[str, Any]) -> None:
    assert encode(message) == _reference_encode(message)


@given(st.text())
def test_storable_is_text_without_nul_that_utf8_can_carry(text: str) -> None:
    try:
        text.encode("utf-8")
        carried = True
    except UnicodeEncodeError:
        carried = False
    assert storable(text) == ("\x00" not in text and carried)


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ("DJ Pika", "DJ Pika"),
        ('<script>"x"</script>', "scriptx/script"),
        ("  Bob's  set ", "Bobs set"),
        ("<>\"'", "DJ"),
        ("", "DJ"),
        (None, "DJ"),
        ("x" * 150, "x" * 100),
    ],
)
def test_safe_dj_name(stored: str | None, sent: str) -> None:
    assert safe_dj_name(stored) == sent


@given(st.text())
def test_safe_dj_name_always_fits_the_wire_rule(name: str) -> None:
    safe = safe_dj_name(name)
    assert 1 <= len(safe) <= 100 and safe == safe.strip()
    assert not set(safe) & set("<>\"'")


def test_ack_nack_error_frames() -> None:
    assert ack("m-1", 0.5) == {
        "type": "ACK",
        "messageId": "m-1",
        "status": "ok",
        "timestamp": "1970-01-01T00:00:00.500Z",
    }
    assert nack("m-1", "Poll not found", 0) == {
        "type": "NACK",
        "messageId": "m-1",
        "error": "Poll not found",
        "timestamp": "1970-01-01T00:00:00.000Z",
    }
    assert error("Invalid JSON") == {"type": "ERROR", "error": "Invalid JSON"}


def test_a_protocol_error_round_trips_into_nack_or_error() -> None:
    exc = refused({"type": "VOTE_ON_POLL", "pollId": "1", "optionIndex": 0, "messageId": "m-9"})
    assert exc.message_id is not None
    assert json.loads(encode(nack(exc.message_id, exc.error, 0)))["error"] == "pollId: must be an integer"
    assert str(exc) == exc.error
