"""The database gateway against the real PostgreSQL: lanes share the pool without starving it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from pika.db import DatabaseStalled, Tx, open_database
from pika.queries import load_queries, query
from tests.wsclient import until

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
            await until(lambda: inside == 2)  # the HTTP side's two connections are taken
            with trio.fail_after(5):  # the live side still gets a connection at once
                assert await db.one(GET_SESSION, session_id="nobody") is None
            assert most == 2
            release.set()
        assert most == 2  # the six ran two at a time


# -- the deadline (PROTOCOL.md §5 "Database unavailable") ----------------------------------------

INSERT_SESSION = query("insert_session")
RECENT_APPLIED_MESSAGES = query("recent_applied_messages")


def _insert_session(session_id: str) -> Callable[[Tx], Any]:
    return lambda tx: tx.one(
        INSERT_SESSION, session_id=session_id, dj_id=None, dj_name="DJ", resume_key_sha256="0" * 64
    )


def _stored_sessions(db_url: str) -> list[tuple[str]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT id FROM sessions ORDER BY id").fetchall()


def _backends(db_url: str, where: str) -> int:
    """How many other backends of this database match `where` (on pg_stat_activity / pg_locks)."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(where).fetchone()
    assert row is not None
    return int(row[0])


BUSY = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()"
)
WAITING_FOR_ADVISORY = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"


async def test_a_write_not_done_by_the_deadline_is_refused_and_never_commits_later(db_url: str) -> None:
    async with open_database(db_url, load_queries(QUERIES), pool_size=4, deadline=0.5) as db:
        with psycopg.connect(db_url) as blocker:
            blocker.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")  # PostgreSQL "stalls"
            with pytest.raises(DatabaseStalled, match="Database unavailable, retry"):
                await db.run(_insert_session("stalled_1"))
            # Known to be stalled: refused at once, even what PostgreSQL could answer now.
            with pytest.raises(DatabaseStalled):
                await db.all(RECENT_APPLIED_MESSAGES)
        # The lock is gone: the abandoned INSERT runs now, and its transaction rolls back.
        with trio.fail_after(10):
            while _backends(db_url, BUSY):
                await trio.sleep(0.05)
        with trio.fail_after(10):  # one call a second finds out that PostgreSQL answers again
            while True:
                try:
                    await db.all(RECENT_APPLIED_MESSAGES)
                    break
                except DatabaseStalled:
                    await trio.sleep(0.1)
        assert await db.run(_insert_session("after_it_1")) is not None
    assert _stored_sessions(db_url) == [("after_it_1",)]


async def test_a_commit_under_way_at_the_deadline_is_waited_for_never_disowned(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:  # a COMMIT that waits on a lock of ours
        conn.execute(
            "CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON sessions "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit()"
        )
    written: list[Any] = []
    async with open_database(db_url, load_queries(QUERIES), pool_size=4, deadline=0.5) as db:
        with psycopg.connect(db_url, autocommit=True) as blocker:
            blocker.execute("SELECT pg_advisory_lock(4242)")
            async with trio.open_nursery() as nursery:

                async def write() -> None:
                    written.append(await db.run(_insert_session("committing_1")))

                nursery.start_soon(write)
                with trio.fail_after(10):
                    while not _backends(db_url, WAITING_FOR_ADVISORY):
                        await trio.sleep(0.05)
                await trio.sleep(1.0)  # not a synchronisation: the deadline (0.5 s) passes meanwhile
                assert written == []  # its COMMIT was sent: no "unavailable" while it may succeed
                blocker.execute("SELECT pg_advisory_unlock(4242)")
    assert written[0]["started_at"] is not None  # the committed row, answered as committed
    assert _stored_sessions(db_url) == [("committing_1",)]


async def test_a_slow_http_read_does_not_make_the_live_rooms_fail_fast(db_url: str) -> None:
    async with open_database(db_url, load_queries(QUERIES), pool_size=4, deadline=0.3) as db:
        web = db.lane(2)
        release = threading.Event()
        try:
            with pytest.raises(DatabaseStalled):
                await web.run(lambda tx: release.wait(10))  # one slow report past its deadline
            assert await db.one(GET_SESSION, session_id="nobody") is None  # the rooms go on
        finally:
            release.set()
