"""Frames encoded once (live/wire.py) are valid WebSocket frames at every length, and stay
whole and in order when written straight into sockets.

A phone that reads slowly makes the kernel take a frame in part; the rest must go out before
anything else, pings included.  The socket tests use a raw client with a tiny receive buffer
that reads in bursts, and a ping every 50 ms, so partial writes, queued frames and pings meet.
"""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from wsproto.connection import Connection as WsFrames
from wsproto.connection import ConnectionType
from wsproto.events import TextMessage

from pika.live.wire import PING, ack_frame, frame, joined
from pika.protocol import ack, encode
from pika.server import serve
from tests.conftest import test_settings
from tests.rawws import RawPeer
from tests.wsclient import connect, go_live, track

BOUNDARIES = [0, 1, 125, 126, 127, 65535, 65536, 70000]  # payload bytes: the header changes at 126 and 65536


def message_of(size: int, filler: str = "a") -> dict[str, str]:
    """A message whose encoded text is exactly `size` bytes (at least the bare message's)."""
    bare = len(encode({"type": "T", "p": ""}).encode())
    return {"type": "T", "p": filler * max(0, size - bare)}


def read_back(wire: bytes) -> list[str]:
    """What a client (wsproto) reads from these bytes: the texts of whole messages."""
    client = WsFrames(ConnectionType.CLIENT)
    client.receive_data(wire)
    texts, part = [], ""
    for event in client.events():
        assert isinstance(event, TextMessage), event
        part += event.data
        if event.message_finished:
            texts.append(part)
            part = ""
    assert part == ""
    return texts


@pytest.mark.parametrize("size", BOUNDARIES)
def test_a_frame_of_any_length_reads_back_as_its_text(size: int) -> None:
    message = message_of(size)
    encoded = frame(message)
    assert len(encoded.texts[0].encode()) == max(size, len(encode(message_of(0)).encode()))
    assert read_back(encoded.wire) == [encode(message)]


def test_a_multibyte_text_is_framed_by_its_bytes_not_its_characters() -> None:
    message = message_of(200, "é")  # ~100 characters, ~200 bytes: a two-byte length header
    assert read_back(frame(message).wire) == [encode(message)]


def test_joined_frames_read_back_in_order_with_one_write() -> None:
    frames = [frame(message_of(size, str(k % 10))) for k, size in enumerate(BOUNDARIES)]
    both = joined(frames)
    assert both.texts == tuple(f.texts[0] for f in frames)
    assert both.wire == b"".join(f.wire for f in frames)
    assert read_back(both.wire) == list(both.texts)
    assert joined(frames[:1]) is frames[0]  # one frame: no copy


@given(
    st.text(min_size=1, max_size=128) | st.text('ab\\" ~', min_size=1, max_size=128),
    st.floats(min_value=0, max_value=4e9),
)
def test_an_ack_frame_is_the_ack_message_encoded_for_any_message_id(message_id: str, now: float) -> None:
    assert ack_frame(message_id, now) == frame(ack(message_id, now))


def test_the_ping_frame_is_an_empty_unmasked_ping() -> None:
    client = WsFrames(ConnectionType.CLIENT)
    client.receive_data(PING.wire)
    (event,) = list(client.events())
    assert type(event).__name__ == "Ping" and event.payload == b""
    assert PING.texts == ()


async def test_a_slow_reader_gets_every_frame_whole_and_in_order(nursery: trio.Nursery, db_url: str) -> None:
    running = await nursery.start(
        serve, test_settings(db_url, outbox_frames=10_000, track_burst=10_000, ping_interval=0.05)
    )
    slow = await RawPeer.connect(running.url, rcvbuf=2048)
    await slow.send("SUBSCRIBE", sessionId="conf_wire", clientId="client_slow0001", messageId="s1")
    titles = [f"{k:03d} " + "é" * (1 + 37 * k % 490) for k in range(120)]  # frames of 100 B to 1 KiB and more
    async with connect(running.url) as dj:
        await go_live(dj, "conf_wire")
        for title in titles:
            await dj.request("BROADCAST_TRACK", sessionId="conf_wire", track=track(title))
        got: list[str] = []
        with trio.fail_after(30):
            while len(got) < len(titles):
                reply = await slow.recv()  # a broken frame would fail to parse here
                assert isinstance(reply, dict), f"closed with {reply} after {len(got)} tracks"
                if reply["type"] == "NOW_PLAYING":
                    got.append(reply["track"]["title"])
                if len(got) % 10 == 0:
                    await trio.sleep(0.05)  # read in bursts: the buffer fills, writes split
    await slow.abort()
    assert got == titles


async def test_frames_queued_behind_a_partial_one_keep_their_order_for_every_dancer(
    nursery: trio.Nursery, db_url: str
) -> None:
    running = await nursery.start(serve, test_settings(db_url, outbox_frames=10_000, track_burst=10_000))
    readers = [await RawPeer.connect(running.url, rcvbuf=2048 if i % 2 else None) for i in range(6)]
    for i, peer in enumerate(readers):
        await peer.send("SUBSCRIBE", sessionId="conf_order", clientId=f"client_order{i:03d}", messageId="s")
    titles = [f"{k:03d} " + "x" * 490 for k in range(60)]
    async with connect(running.url) as dj:
        await go_live(dj, "conf_order")
        for title in titles:
            await dj.request("BROADCAST_TRACK", sessionId="conf_order", track=track(title, "y" * 490))
    for peer in readers:
        got: list[str] = []
        with trio.fail_after(30):
            while len(got) < len(titles):
                reply = await peer.recv()
                assert isinstance(reply, dict), f"closed with {reply}"
                if reply["type"] == "NOW_PLAYING":
                    got.append(reply["track"]["title"])
        assert got == titles
        await peer.abort()


async def test_a_burst_to_the_dj_beyond_the_outbox_arrives_whole_and_in_order(
    nursery: trio.Nursery, db_url: str
) -> None:
    """Likes committed together reach the DJ together: gathered into one write, they are not a
    backlog (4 frames of outbox here) and the DJ is not closed as a slow consumer."""
    running = await nursery.start(serve, test_settings(db_url, outbox_frames=4))
    go = trio.Event()
    async with connect(running.url) as dj:
        await go_live(dj, "conf_burst")
        await dj.request("BROADCAST_TRACK", sessionId="conf_burst", track=track("Burst"))
        async with trio.open_nursery() as dancers:
            for i in range(30):
                await dancers.start(_like_on_cue, running.url, f"client_burst{i:03d}", go)
            go.set()  # all at once: one group-commit batch, or a few
        likes = []
        with trio.fail_after(10):
            while len(likes) < 30:
                reply = await dj.recv()
                if reply["type"] == "LIKE_RECEIVED":
                    likes.append(reply["payload"]["track"]["title"])
        assert likes == ["Burst"] * 30
        replies = await dj.request("TRACK_STOPPED", sessionId="conf_burst")  # still connected
        assert replies[-1]["type"] == "ACK"


async def _like_on_cue(
    url: str, client_id: str, go: trio.Event, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    async with connect(url) as dancer:
        await dancer.request("SUBSCRIBE", sessionId="conf_burst", clientId=client_id)
        task_status.started()
        await go.wait()
        replies = await dancer.request("SEND_LIKE", sessionId="conf_burst", payload={"track": track("Burst")})
        assert replies[-1]["type"] == "ACK", replies
