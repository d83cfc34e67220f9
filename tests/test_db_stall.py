"""PostgreSQL stalls mid-set (SIGSTOP: it neither answers nor fails), against the real server.

The DJ's client plays on: it queues every track with its messageId, sends the queue oldest
first, one at a time, and retries a track refused with "Database unavailable, retry", as the DJ
agent does; with or without `playedAt` (when each was played).  When the database is back, the
room must show the DJ's latest track, and every ACKed track must be in the history, in order.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from psycopg.conninfo import conninfo_to_dict

from pika.protocol import iso
from pika.server import Running, serve
from tests.conftest import PgCluster, rows, test_settings
from tests.procs import postmaster_pid, stalled
from tests.test_server import fetch
from tests.wsclient import Peer, connect, go_live, track, types

SESSION = "conf_stall"
DEADLINE = 2.0
STALL = 35.0
UNAVAILABLE = "Database unavailable, retry"


@dataclass
class DjClient:
    """A DJ's client: a queue of plays sent oldest first, each retried until ACKed."""

    peer: Peer
    stamps: bool  # sends playedAt
    queue: list[dict[str, Any]] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    unavailable: int = 0
    _ids: itertools.count = field(default_factory=itertools.count)
    _wake: trio.Event = field(default_factory=trio.Event)

    def play(self, title: str) -> None:
        message = {"messageId": f"play-{next(self._ids)}", "sessionId": SESSION, "track": track(title)}
        if self.stamps:
            message["playedAt"] = iso(time.time())
        self.queue.append(message)
        self._wake.set()

    async def send_forever(self) -> None:
        while True:
            if not self.queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            head = self.queue[0]
            # A refusal must come within the deadline (plus the loop's slack), never hang.
            reply = (await self.peer.request("BROADCAST_TRACK", timeout=DEADLINE + 3, **head))[-1]
            if reply["type"] == "ACK":
                self.acked.append(head["track"]["title"])
                self.queue.pop(0)
                continue
            assert reply["error"] == UNAVAILABLE, reply
            self.unavailable += 1
            await trio.sleep(0.5)  # back off, then the same message again


@pytest.mark.parametrize("stamps", [False, True], ids=["without-playedAt", "with-playedAt"])
async def test_after_a_35_s_stall_the_room_shows_the_djs_latest_track_and_history_is_complete(
    nursery: trio.Nursery, db_url: str, pg_cluster: PgCluster, stamps: bool
) -> None:
    running: Running = await nursery.start(serve, test_settings(db_url, db_deadline_seconds=DEADLINE))
    postmaster = postmaster_pid(Path(conninfo_to_dict(pg_cluster.url)["host"]))
    played: list[str] = []
    async with connect(running.url) as dj_peer, connect(running.url) as dancer:
        await go_live(dj_peer, SESSION, "DJ Steady")
        await dancer.request("SUBSCRIBE", sessionId=SESSION, clientId="client_stall01")
        dj = DjClient(dj_peer, stamps)
        async with trio.open_nursery() as client:
            client.start_soon(dj.send_forever)

            async def play(title: str) -> None:
                played.append(title)
                dj.play(title)
                await trio.sleep(1.0)  # a track per second: far faster than any DJ, on purpose

            for i in range(3):
                await play(f"Before {i}")
            with trio.fail_after(10):
                while dj.queue:
                    await trio.sleep(0.05)
            with stalled(postmaster):
                for i in range(int(STALL)):
                    await play(f"During {i}")
                    if i == 5:  # the HTTP API says so too, with nothing half-done
                        reply = await fetch(
                            running.url, f"/api/sessions/{SESSION}/history", timeout=DEADLINE + 3
                        )
                        assert (reply.status, reply.json()) == (503, {"error": UNAVAILABLE})
            for i in range(3):
                await play(f"After {i}")
            with trio.fail_after(30):
                while dj.queue:
                    await trio.sleep(0.05)
            client.cancel_scope.cancel()

        assert dj.unavailable > 0  # the stall was seen, and answered within the deadline
        assert dj.acked == played  # nothing refused for having been queued, nothing lost
        last = played[-1]
        with trio.fail_after(10):
            while (await dancer.recv_type("NOW_PLAYING"))["track"]["title"] != last:
                pass
        async with connect(running.url) as late:
            replies = await late.request("SUBSCRIBE", sessionId=SESSION, clientId="client_stall02")
            assert types(replies) == ["SESSIONS_LIST", "LISTENER_COUNT", "NOW_PLAYING", "ACK"]
            assert replies[2]["track"]["title"] == last
    history = [r[0] for r in rows(running, "SELECT title FROM played_tracks ORDER BY id")]
    assert history == played
