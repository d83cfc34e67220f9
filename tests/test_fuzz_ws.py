"""Fuzzing the live endpoint over a real WebSocket against the real server (PROTOCOL.md §1, §3).

The acceptance: arbitrary JSON values and arbitrary message dicts never close the connection
(except a frame over 64 KiB, 1009) and never change state unless valid; every invalid message
with a messageId gets exactly one NACK.

How the examples are drawn (deterministic, no `.example()`): the tests are async (pytest-trio,
async fixtures, real sockets), and hypothesis cannot drive an async test with trio fixtures.  So
the generation is split from the checking.  `draw(strategy, n)` decorates a tiny *sync* inner
function with `@given(strategy)` and `@settings(max_examples=n, database=None, derandomize=True,
phases=[Phase.generate])`, and that function only appends each example to a list; calling it once
returns n examples.  `derandomize=True` seeds hypothesis from the function itself, so every run
sends the same frames (a failure is reproducible, CI never flakes on a new seed), `database=None`
keeps it from replaying stored examples, and there is no shrinking phase because nothing fails
while drawing.  The async test then sends every example over the socket and checks each answer.
What a frame *should* get is computed by calling `pika.protocol.parse` on the very same text:
refused → exactly the NACK (or ERROR, when no messageId could be read) with parse's error.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, get_args

import pytest
import trio
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed

from pika.config import Settings
from pika.protocol import Message, ProtocolError, parse
from pika.server import Running
from tests.conftest import FRAME_LIMIT, hub_of, rows
from tests.wsclient import Peer, connect, go_live, track

T = TypeVar("T")

LIVE = "fuzz_live_0001"
LIVE_TRACK = track("Live Anthem", "The Fuzzers")  # never generated below: no like can be valid
STEP_TIMEOUT = 10.0


def draw(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """n examples of `strategy`, the same ones on every run (see the module docstring)."""
    found: list[T] = []

    @hypothesis_settings(
        max_examples=n,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: T) -> None:
        found.append(example)

    collect()
    return found


def weighted(*choices: tuple[st.SearchStrategy[T], int]) -> st.SearchStrategy[T]:
    """One of the strategies, picked in proportion to its weight.  (The branches of `one_of` are
    not picked evenly, so repeating a branch there does not weight it; the elements of a
    `sampled_from` are.)"""
    return st.sampled_from([s for s, weight in choices for _ in range(weight)]).flatmap(lambda s: s)


def refusal(frame: str | bytes, settings: Settings) -> ProtocolError | None:
    """What parse says about this frame: the ProtocolError, or None when it is a valid message."""
    try:
        parse(frame, settings)
    except ProtocolError as exc:
        return exc
    return None


def expected_answer(exc: ProtocolError) -> dict[str, Any]:
    if exc.message_id is not None:
        return {"type": "NACK", "messageId": exc.message_id, "error": exc.error}
    return {"type": "ERROR", "error": exc.error}


def without_timestamp(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "timestamp"}


async def until_answered(peer: Peer, message_id: str, what: Any) -> list[dict[str, Any]]:
    """Every frame up to and including the ACK/NACK for `message_id`; fails if the socket closes."""
    replies: list[dict[str, Any]] = []
    try:
        while True:
            reply = await peer.recv(STEP_TIMEOUT)
            replies.append(reply)
            if reply["type"] in {"ACK", "NACK"} and reply.get("messageId") == message_id:
                return replies
    except ConnectionClosed as exc:
        pytest.fail(f"connection closed ({exc.reason}) after {what!r}; replies so far {replies}")


# -- strategies ----------------------------------------------------------------------------------

surrogates = st.characters(categories=["Cs"])
any_text = st.text(st.characters() | surrogates, max_size=12)
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10) | st.sampled_from(["type", "messageId"]), children, max_size=4)
    ),
    max_leaves=12,
)
small_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=5,
)


def dumps(value: Any, ascii_only: bool) -> str:
    """JSON text; non-ASCII raw when asked and sendable (a lone surrogate must stay escaped)."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


NASTY_FRAMES = [
    "",
    " ",
    "null",
    "[]",
    "{}",
    "0",
    '"PING"',
    "NaN",
    '{"type":"PING","pad":Infinity}',
    '{"type":"PING","n":1e999}',
    "{" * 1000,
    "[" * 20_000,
    '{"type":"PING","messageId":""}',
    '{"type":"PING","messageId":"   "}',
    '{"type":"PING","messageId":"' + "m" * 129 + '"}',
    '{"type":"PING","messageId":"\\u0000"}',
    '{"type":"PING","messageId":"\\ud800"}',
    '{"type":"\\ud800","messageId":"fz-lone-surrogate"}',
    '{"type":"\\ud800"}',
    '{"type":"X\\udfff","messageId":"fz-lone-surrogate-2"}',
    '{"type":"PING","type":"NOPE","messageId":"fz-dup-key"}',
    '\ufeff{"type":"PING","messageId":"fz-bom"}',
    '{"type":"PING","messageId":"fz-trailing"} x',
    '{"type":"PING","messageId":5}',
    '{"type":null,"messageId":"fz-null-type"}',
    '{"type":"' + "T" * 5000 + '","messageId":"fz-long-type"}',
    '{"type":"SUBSCRIBE","sessionId":"' + "s" * 65 + '","messageId":"fz-long-sid"}',
    '{"messageId":"fz-no-type"}',
    '{"type":"PING","messageId":"fz-big-int","n":' + "9" * 5000 + "}",
]
json_frames = st.builds(dumps, json_values, st.booleans())
raw_frames = (
    st.binary(max_size=300)
    | st.text(max_size=300)
    | st.sampled_from(NASTY_FRAMES)
    | st.sampled_from(NASTY_FRAMES).map(str.encode)
)

KNOWN = [cls.TYPE for cls in get_args(Message)]
UNKNOWN = [
    "",
    "HELLO",
    "ping",
    "Ping",
    " PING",
    "PING ",
    "ACK",
    "NACK",
    "PONG",
    "ERROR",
    "NOW_PLAYING",
    "SESSION_REGISTERED",
    "REGISTER-SESSION",
    "SUBSCRIBE\x00",
    "\ud800",
]
DJ_ONLY = {
    "REGISTER_SESSION",  # only ever for the live session (or an invalid id): always refused here
    "BROADCAST_TRACK",
    "METADATA_UPDATED",
    "TRACK_STOPPED",
    "END_SESSION",
    "SEND_ANNOUNCEMENT",
    "CANCEL_ANNOUNCEMENT",
    "START_POLL",
    "END_POLL",
    "CANCEL_POLL",
}

texts = st.sampled_from(["Song", "Artist A", "  ", "", "x" * 501, "a\x00b", " padded "]) | any_text
numbers = (
    st.sampled_from([39.9, 40, 120, 300, 300.01, -1, 0, 100, 100.5, 1e308, True])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=4)
)
integers = (
    st.sampled_from([0, 1, -1, 2, 9, 10, 2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 1.0, True])
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
tracks = (
    st.fixed_dictionaries(
        {},
        optional={
            "title": texts,
            "artist": texts,
            "bpm": numbers,
            "key": texts,
            "energy": numbers,
            "danceability": numbers,
            "groove": numbers,
            "extra": small_json,
        },
    )
    | small_json
)
SESSION_IDS = [LIVE, f" {LIVE} ", "other_session_01", "nobody_here_123", "short", "s" * 65, "has space 1"]
session_ids = weighted((st.sampled_from([*SESSION_IDS, "ÄÖÜ_sess1", ""]), 3), (any_text, 1), (small_json, 1))
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "sessionId": session_ids,
    "track": tracks,
    "title": texts,
    "artist": texts,
    "bpm": numbers,
    "pollId": integers,
    "optionIndex": integers,
    "clientId": st.sampled_from(
        [
            "client_fuzz_0001",
            "short",
            " " * 12,
            "c" * 256,
            "c" * 257,
            "  client_padded_01  ",
            "cl\x00ient_zero",
        ]
    )
    | any_text,
    "djName": st.sampled_from(["DJ", "", "  ", "<script>", 'DJ "Q"', "d" * 101]) | any_text,
    "token": st.sampled_from(["", "  ", "pk_dj_" + "0" * 32, "pk_dj_", "nope", "pk_dj_" + "x" * 300])
    | any_text,
    "resumeKey": texts,
    "version": texts,
    "question": texts,
    "options": st.lists(texts, max_size=12),
    "message": texts,
    "durationSeconds": st.sampled_from([14, 15, 29, 30, 59, 60, 300, 301, 3600, 3601, 30.0]) | integers,
    "push": st.booleans(),
    "preference": st.sampled_from(["faster", "slower", "perfect", "clear", " faster ", "FASTER", "fast"]),
    "reaction": st.sampled_from(["thank_you", " thank_you ", "thanks", "THANK_YOU"]),
    "payload": st.fixed_dictionaries(
        {}, optional={"track": tracks, "tracks": st.lists(tracks, max_size=4) | small_json}
    ),
}
fields = st.fixed_dictionaries(
    {}, optional={key: weighted((values, 3), (small_json, 1)) for key, values in PLAUSIBLE.items()}
)
extra_fields = st.dictionaries(st.text(max_size=8), small_json, max_size=2)
NON_STRING_TYPES = [None, 0, 1, -1, 1.5, True, False, ["PING"], {"type": "PING"}]
# Mostly known types, so that many messages are valid.
message_types = weighted(
    (st.sampled_from([t for t in KNOWN if t != "REGISTER_SESSION"]), 6),
    (st.sampled_from(UNKNOWN), 1),
    (st.sampled_from(NON_STRING_TYPES), 1),
    (st.text(max_size=12), 1),
)
# REGISTER_SESSION always names the live session (spelled with spaces around, too) or a bad id:
# without a sessionId it would legitimately open a new session and make the sender a DJ.
register_session_ids = st.sampled_from(
    [LIVE, f" {LIVE} ", f"\t{LIVE}\n", "short", "s" * 65, "", "  ", 5, True, [LIVE], {"id": LIVE}]
)
# Most types need a sessionId or a pollId: give one often, so that more messages get past it.
core_fields = weighted(
    (st.fixed_dictionaries({"sessionId": session_ids}), 3),
    (st.fixed_dictionaries({"pollId": integers, "optionIndex": integers}), 1),
    (st.just({}), 1),
)
any_message = st.builds(
    lambda kind, core, f, x: {**x, **f, **core, "type": kind},
    message_types,
    core_fields,
    fields,
    extra_fields,
)
register_message = st.builds(
    lambda f, sid: {**f, "type": "REGISTER_SESSION", "sessionId": sid}, fields, register_session_ids
)
messages = weighted((any_message, 6), (register_message, 1))


# -- 1. arbitrary frames -------------------------------------------------------------------------


async def test_arbitrary_frames_never_close_and_each_refusal_is_answered_once(server: Running) -> None:
    frames: list[str | bytes] = [*NASTY_FRAMES, *draw(json_frames, 250), *draw(raw_frames, 150)]
    settings = server.hub.settings
    refused = 0
    async with connect(server.url) as peer:
        for i, frame in enumerate(frames):
            expected = refusal(frame, settings)
            ping_id = f"fz-ping-{i}"
            with trio.fail_after(STEP_TIMEOUT):
                await peer.send_raw(frame)
                await peer.send("PING", messageId=ping_id)
                replies = await until_answered(peer, ping_id, frame)
            assert [r["type"] for r in replies[-2:]] == ["PONG", "ACK"], (frame, replies)
            if expected is None:
                continue  # a valid message after all: it may answer anything, but the socket stays
            refused += 1
            answers = [without_timestamp(r) for r in replies[:-2] if r["type"] in {"ERROR", "NACK", "ACK"}]
            assert answers == [expected_answer(expected)], (frame, replies)
    assert refused > len(frames) * 0.9  # the generators really do produce refusals


@pytest.mark.parametrize(
    "frame",
    ['{"type":"\\ud800","messageId":"fz-surrogate"}', '{"type":"X\\udfff"}'],
    ids=["nack", "error"],
)
async def test_an_unknown_type_with_a_lone_surrogate_is_refused_and_the_socket_stays(
    server: Running, frame: str
) -> None:
    """The refusal names the unknown type; a lone surrogate in it must not make the frame unsendable."""
    expected = refusal(frame, server.hub.settings)
    assert expected is not None
    async with connect(server.url) as peer:
        with trio.fail_after(STEP_TIMEOUT):
            await peer.send_raw(frame)
            await peer.send("PING", messageId="fz-after")
            replies = await until_answered(peer, "fz-after", frame)
        assert [r["type"] for r in replies] == [expected_answer(expected)["type"], "PONG", "ACK"], replies
        assert replies[0]["error"].startswith("Unknown message type: ")


# -- 2 and 3. arbitrary message dicts from a stranger and from a dancer -------------------------


async def test_arbitrary_messages_get_one_answer_each_and_change_nothing(server: Running) -> None:
    settings = server.hub.settings
    dj_frames: list[dict[str, Any]] = []
    dj_closed: list[int | None] = []

    async def drain(dj: Peer) -> None:
        try:
            while True:
                dj_frames.append(json.loads(await dj.ws.get_message()))
        except ConnectionClosed as exc:
            dj_closed.append(exc.reason.code)

    async with (
        connect(server.url) as dj,
        connect(server.url) as stranger,
        connect(server.url) as dancer,
        trio.open_nursery() as nursery,
    ):
        await go_live(dj, LIVE)
        await dj.request("BROADCAST_TRACK", sessionId=LIVE, track=LIVE_TRACK)
        await dancer.request("SUBSCRIBE", sessionId=LIVE, clientId="client_dancer_0001")
        nursery.start_soon(drain, dj)

        examples = draw(messages, 600)
        streams = [("stranger", stranger, examples[::2]), ("dancer", dancer, examples[1::2])]
        tally = {"ACK": 0, "NACK": 0}
        for who, peer, batch in streams:
            for i, message in enumerate(batch):
                message_id = f"fz-{who}-{i}"
                frame = json.dumps({**message, "messageId": message_id})
                expected = refusal(frame, settings)
                with trio.fail_after(STEP_TIMEOUT):
                    await peer.send_raw(frame)
                    replies = await until_answered(peer, message_id, frame)
                answers = [r for r in replies if r["type"] in {"ACK", "NACK", "ERROR"}]
                assert len(answers) == 1, (who, frame, replies)  # no ERROR, no stray ACK/NACK
                answer = answers[0]
                tally[answer["type"]] += 1
                if expected is not None:
                    assert without_timestamp(answer) == expected_answer(expected), (who, frame, answer)
                elif message["type"] in DJ_ONLY:
                    assert answer["type"] == "NACK", (who, frame, answer)  # never the DJ
            with trio.fail_after(STEP_TIMEOUT):
                replies = await peer.request("PING", messageId=f"fz-{who}-last")
                assert [r["type"] for r in replies if r["type"] in {"ACK", "NACK", "ERROR"}] == ["ACK"]
                late = await peer.nothing_within(0.2)
                assert not [r for r in late if r["type"] in {"ACK", "NACK", "ERROR"}], late
        assert tally["ACK"] > 10 and tally["NACK"] > 200, tally  # both paths were exercised

        # The DJ was never disturbed: still seated, still answered, not replaced (4001).
        await dj.send("PING", messageId="fz-dj-last")
        with trio.fail_after(STEP_TIMEOUT):
            while not any(f.get("messageId") == "fz-dj-last" for f in dj_frames) and not dj_closed:
                await trio.sleep(0.01)
        assert dj_closed == [], dj_closed
        assert not [f for f in dj_frames if f["type"] in {"NACK", "ERROR", "SESSION_ENDED"}], dj_frames
        assert any(f["type"] == "ACK" and f.get("messageId") == "fz-dj-last" for f in dj_frames)
        room = hub_of(server, LIVE).rooms[LIVE]
        assert room.dj_conn is not None and room.dj_disconnected_at is None
        assert room.current is not None and room.current.track.title == LIVE_TRACK["title"]
        nursery.cancel_scope.cancel()
    assert rows(server, "SELECT title, artist FROM played_tracks") == [("Live Anthem", "The Fuzzers")]
    assert rows(server, "SELECT id, ended_at IS NULL FROM sessions") == [(LIVE, True)]
    for table in ("likes", "polls", "poll_votes", "announcements"):
        assert rows(server, f"SELECT count(*) FROM {table}") == [(0,)], table


# -- 4. the 64 KiB frame limit --------------------------------------------------------------------


def padded_ping(size: int, message_id: str) -> str:
    """A PING frame of exactly `size` bytes (ASCII, so as many characters)."""
    head = '{"type":"PING","messageId":"' + message_id + '","pad":"'
    frame = head + "x" * (size - len(head) - 2) + '"}'
    assert len(frame.encode()) == size
    return frame


@pytest.mark.parametrize("size", [60_000, 65_535, 65_536])
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
async def test_a_frame_up_to_64_kib_is_answered(server: Running, size: int, binary: bool) -> None:
    frame = padded_ping(size, "fz-big")
    async with connect(server.url, max_message_size=2**20) as peer:
        with trio.fail_after(STEP_TIMEOUT):
            await peer.send_raw(frame.encode() if binary else frame)
            replies = await until_answered(peer, "fz-big", f"{size}-byte frame")
        assert [r["type"] for r in replies] == ["PONG", "ACK"]
        assert [r["type"] for r in await peer.request("PING")] == ["PONG", "ACK"]


@pytest.mark.parametrize("size", [65_537, 70_000])
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.pair_excluded(FRAME_LIMIT)
async def test_a_frame_over_64_kib_closes_with_1009(server: Running, size: int, binary: bool) -> None:
    frame = padded_ping(size, "fz-too-big")
    async with connect(server.url, max_message_size=2**20) as peer, connect(server.url) as bystander:
        await peer.send_raw(frame.encode() if binary else frame)
        assert await peer.closed_with() == 1009
        assert [r["type"] for r in await bystander.request("PING")] == ["PONG", "ACK"]


@pytest.mark.pair_excluded(FRAME_LIMIT)
async def test_the_limit_counts_utf8_bytes_not_characters(server: Running) -> None:
    """30,000 '€' are 30,000 characters but 90,000 bytes: over 64 KiB (PROTOCOL.md §1: bytes)."""
    frame = '{"type":"PING","messageId":"fz-euro","pad":"' + "€" * 30_000 + '"}'
    assert len(frame) < 65_536 < len(frame.encode())
    async with connect(server.url, max_message_size=2**20) as peer:
        await peer.send_raw(frame)
        with trio.fail_after(STEP_TIMEOUT):
            try:
                answered = await peer.recv(STEP_TIMEOUT)
            except ConnectionClosed as exc:
                answered = exc.reason.code
        assert answered == 1009, f"a {len(frame.encode())}-byte frame was answered with {answered}"
