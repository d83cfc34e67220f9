"""The database gateway against the real PostgreSQL: lanes share the pool without starving it."""

from __future__ import annotations

import threading
from pathlib import Path

import trio

from pika.db import Tx, open_database
from pika.queries import load_queries, query

GET_SESSION = query("get_session")
QUERIES = Path(__file__).resolve().parents[1] / "sql" / "queries"


async def test_a_busy_lane_leaves_the_rest_of_the_pool_to_everyone_else(db_url: str) -> None:
    async with open_database(db_url, load_queries(QUERIES), pool_size=4) as db:
        web = db.lane(2)
        release = threading.Event()
        inside = 0
        most = 0
        lock = threading.Lock()

        def hold(tx: Tx) -> None:
            nonlocal inside, most
            with lock:
                inside += 1
                most = max(most, inside)
            release.wait(10)
            with lock:
                inside -= 1

        async with trio.open_nursery() as nursery:
            for _ in range(6):  # six slow HTTP-side units of work at once
                nursery.start_soon(web.run, hold)
            await trio.sleep(0.3)
            with trio.fail_after(5):  # the live side still gets a connection at once
                assert await db.one(GET_SESSION, session_id="nobody") is None
            assert most == 2
            release.set()
        assert most == 2  # the six ran two at a time
