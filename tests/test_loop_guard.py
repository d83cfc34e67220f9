"""The loop guard on the real server: while the loop lags, dancers wait their turn (the DJ never does),
and every frame a dancer sent is still handled, in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import trio

from pika.live.loop_guard import CpuWait
from pika.server import serve
from tests.conftest import rows, test_settings
from tests.test_server import fetch
from tests.wsclient import connect, go_live, track

SESSION = "conf_guard"


async def frames_held(url: str) -> float:
    text = (await fetch(url, "/metrics")).body.decode()
    found = re.search(r"^pika_dancer_frames_held_total (\S+)$", text, re.M)
    assert found, "pika_dancer_frames_held_total is missing from /metrics"
    return float(found.group(1))


async def hog_the_loop() -> None:
    """Another busy part of the process: 40 ms of work between two checkpoints."""
    while True:
        time.sleep(0.04)
        await trio.sleep(0)


async def test_while_the_loop_lags_dancers_wait_their_turn_and_lose_nothing(
    nursery: trio.Nursery, db_url: str
) -> None:
    server = await nursery.start(serve, test_settings(db_url, reactions_per_window=100))
    async with connect(server.url) as dj, connect(server.url) as dancer:
        await go_live(dj, SESSION)
        await dj.request("BROADCAST_TRACK", sessionId=SESSION, track=track("Before"))
        await dancer.request("SUBSCRIBE", sessionId=SESSION, clientId="guarded_dancer")
        held_before = await frames_held(server.url)

        async with trio.open_nursery() as hog:
            hog.start_soon(hog_the_loop)
            await trio.sleep(0.5)  # lag well over the guard's threshold: the gate is closed
            for n in range(12):
                await dancer.send("SEND_REACTION", sessionId=SESSION, reaction="thank_you", messageId=f"r{n}")
            during = await dj.request("BROADCAST_TRACK", sessionId=SESSION, track=track("During"), timeout=9)
            assert during[-1]["type"] == "ACK"
            acked: list[str] = []
            with trio.fail_after(30):
                while len(acked) < 12:
                    message = await dancer.recv(timeout=30)
                    if message["type"] in ("ACK", "NACK"):
                        assert message["type"] == "ACK", message
                        acked.append(message["messageId"])
            hog.cancel_scope.cancel()

        assert acked == [f"r{n}" for n in range(12)]  # every one, in the order sent
        assert await frames_held(server.url) > held_before  # they did wait for a turn
    assert rows(server, "SELECT count(*) FROM reactions WHERE client_id = 'guarded_dancer'") == [(12,)]


async def test_a_neighbour_hogging_the_cpu_holds_no_dancer_back(nursery: trio.Nursery, db_url: str) -> None:
    """Other processes on the server's core make every tick late, but the loop has no work of
    its own behind: holding dancers back would not give it the CPU, so nobody is held."""
    server = await nursery.start(serve, test_settings(db_url, reactions_per_window=100))
    core = min(os.sched_getaffinity(0))
    mine = os.sched_getaffinity(0)
    spin = f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(8)]
    try:
        os.sched_setaffinity(0, {core})  # this process (the server and its clients) shares the hogs' core
        async with connect(server.url) as dj, connect(server.url) as dancer:
            await go_live(dj, SESSION)
            await dj.request("BROADCAST_TRACK", sessionId=SESSION, track=track("Crowded"))
            await dancer.request("SUBSCRIBE", sessionId=SESSION, clientId="crowded_dancer")
            held_before = await frames_held(server.url)
            with CpuWait() as cpu_wait:  # this thread runs the server's loop
                waited_before = cpu_wait.seconds()
                for n in range(40):
                    thanks = {"sessionId": SESSION, "reaction": "thank_you", "messageId": f"n{n}"}
                    assert (await dancer.request("SEND_REACTION", **thanks))[-1]["type"] == "ACK"
                assert cpu_wait.seconds() - waited_before > 0.1  # the hogs kept the loop from its CPU
            assert await frames_held(server.url) == held_before
    finally:
        os.sched_setaffinity(0, mine)
        for hog in hogs:
            hog.kill()
            hog.wait()
