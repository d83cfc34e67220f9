"""Frames written straight into sockets (live/wire.py) stay whole and in order.

A phone that reads slowly makes the kernel take a frame in part; the rest must go out before
anything else, pings included.  These tests use a raw client with a tiny receive buffer that
reads in bursts, and a ping every 50 ms, so partial writes, queued frames and pings all meet.
"""

from __future__ import annotations

import trio

from pika.server import serve
from tests.conftest import test_settings
from tests.rawws import RawPeer
from tests.wsclient import connect, go_live, track


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
