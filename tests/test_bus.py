"""The bus on the real PostgreSQL: two PgBus instances (as two processes would have) on one
database; per-room order, a gap, a batch too big for a notification, the listener's backend
killed; and room ownership through advisory locks, released when the holder's connection dies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager

import psycopg
import pytest
import trio

from pika.bus.envelope import MAX_PAYLOAD
from pika.bus.ownership import Ownership
from pika.bus.postgres import PgBus
from pika.config import SQL_DIR
from pika.db import Database, DatabaseStalled, Tx, open_database
from pika.queries import load_queries
from tests.wsclient import until


class Rooms:
    """A subscriber that records what it is told: frames per room, and re-reads."""

    def __init__(self) -> None:
        self.frames: dict[str, list[str]] = {}
        self.rereads: list[Collection[str] | None] = []
        self.changed = trio.Event()

    def deliver(self, session_id: str, frames: tuple[str, ...]) -> None:
        self.frames.setdefault(session_id, []).extend(frames)
        self.changed.set()

    def reread(self, session_ids: Collection[str] | None) -> None:
        self.rereads.append(None if session_ids is None else list(session_ids))
        self.changed.set()

    async def until(self, condition: object) -> None:
        with trio.fail_after(10):
            while not condition():  # type: ignore[operator]
                self.changed = trio.Event()
                await self.changed.wait()


@asynccontextmanager
async def process(
    nursery: trio.Nursery, url: str, name: str, deadline: float = 3.0
) -> AsyncIterator[tuple[PgBus, Rooms, Database]]:
    """What one server process holds of the bus: a pool, a listening PgBus and its subscriber."""
    async with open_database(url, load_queries(SQL_DIR / "queries"), 2, deadline=deadline) as db:
        rooms = Rooms()
        bus = PgBus(url, db, rooms, name)
        async with trio.open_nursery() as own:
            await own.start(bus.run)
            yield bus, rooms, db
            own.cancel_scope.cancel()


def frame(n: int, room: str) -> str:
    return f'{{"type":"LIKE_COUNT","room":"{room}","n":{n}}}'


async def test_batches_arrive_in_order_per_room_and_not_back_at_the_sender(
    nursery: trio.Nursery, db_url: str
) -> None:
    async with (
        process(nursery, db_url, "a") as (a, a_rooms, _),
        process(nursery, db_url, "b") as (_, b_rooms, _),
    ):
        for n in range(60):
            await a.publish([("r1", [frame(n, "r1")]), ("r2", [frame(n, "r2"), frame(n + 1000, "r2")])])
        await b_rooms.until(lambda: len(b_rooms.frames.get("r2", [])) == 120)
        assert b_rooms.frames["r1"] == [frame(n, "r1") for n in range(60)]
        assert b_rooms.frames["r2"] == [f for n in range(60) for f in (frame(n, "r2"), frame(n + 1000, "r2"))]
        assert b_rooms.rereads == []
        assert a_rooms.frames == {}  # the sender fanned its own out locally


async def test_a_batch_that_never_committed_is_re_read_unless_owed_then_it_goes_with_the_next(
    nursery: trio.Nursery, db_url: str
) -> None:
    """A publish that fails (here: past its deadline, waiting on a lock): a room's batch leaves a
    gap and the receiver re-reads that room; a batch no re-read could restore (`owed`, the
    relay's dancer actions) goes first in the next publish, with the number it had."""
    big = '{"type":"LIKE_COUNT","text":"' + "x" * MAX_PAYLOAD + '"}'

    def owed(key: str) -> bool:
        return key == "owed"

    async with (
        process(nursery, db_url, "a", deadline=0.5) as (a, _, _),
        process(nursery, db_url, "b") as (_, b_rooms, _),
    ):
        await a.publish([("r1", [frame(1, "r1")]), ("owed", [frame(1, "owed")])], owed)
        with psycopg.connect(db_url) as locker:  # the big batch's row waits for the table
            locker.execute("LOCK TABLE bus_events")
            with pytest.raises(DatabaseStalled):
                await a.publish([("r1", [frame(2, "r1")]), ("owed", [frame(2, "owed"), big])], owed)
            locker.rollback()
        assert a.owes

        async def sent() -> bool:  # the pool finds out PostgreSQL answers again
            try:
                await a.publish([], owed)
            except DatabaseStalled:
                return False
            return True

        await until(sent, seconds=10)
        await a.publish([("r1", [frame(3, "r1")]), ("owed", [frame(3, "owed")])], owed)
        await b_rooms.until(lambda: len(b_rooms.frames.get("owed", [])) == 4)
        assert b_rooms.frames["owed"] == [frame(1, "owed"), frame(2, "owed"), big, frame(3, "owed")]
        assert b_rooms.rereads == [["r1"]]  # r1's batch 3 came after 1: re-read, not patched
        assert b_rooms.frames["r1"] == [frame(1, "r1")]
        assert not a.owes


async def test_notices_in_a_transaction_that_rolled_back_are_never_heard_and_leave_no_gap(
    nursery: trio.Nursery, db_url: str
) -> None:
    """`notify_in`, the group commit's way (dancer actions told to their room's owner in the
    transaction that writes them): heard at commit, numbered only once committed, so the
    batch after a rolled-back one is the next one, not a gap that would drop it."""

    def batch(n: int, *, fails: bool = False) -> Callable[[Tx], Callable[[], None]]:
        def work(tx: Tx) -> Callable[[], None]:
            committed = a.notify_in(tx, [("actions", frame(n, "a")), ("actions", frame(n + 100, "a"))])
            if fails:
                raise RuntimeError("rolled back")
            return committed

        return work

    async with (
        process(nursery, db_url, "a") as (a, _, a_db),
        process(nursery, db_url, "b") as (_, b_rooms, _),
    ):
        (await a_db.run(batch(1)))()
        with pytest.raises(RuntimeError):
            await a_db.run(batch(2, fails=True))
        (await a_db.run(batch(3)))()
        await b_rooms.until(lambda: len(b_rooms.frames.get("actions", [])) == 4)
        assert b_rooms.frames["actions"] == [frame(1, "a"), frame(101, "a"), frame(3, "a"), frame(103, "a")]
        assert b_rooms.rereads == []


async def test_a_batch_too_big_for_a_notification_is_stored_and_read_by_the_receiver(
    nursery: trio.Nursery, db_url: str
) -> None:
    big = '{"type":"SESSIONS_LIST","sessions":"' + "é" * MAX_PAYLOAD + '"}'
    async with process(nursery, db_url, "a") as (a, _, _), process(nursery, db_url, "b") as (_, b_rooms, _):
        await a.publish([("r1", [frame(1, "r1"), big])])
        await a.publish([("r1", [frame(2, "r1")])])
        await b_rooms.until(lambda: len(b_rooms.frames.get("r1", [])) == 3)
        assert b_rooms.frames["r1"] == [frame(1, "r1"), big, frame(2, "r1")]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM bus_events").fetchone() == (1,)


async def test_after_its_connection_is_killed_the_listener_is_back_and_every_room_is_re_read(
    nursery: trio.Nursery, db_url: str
) -> None:
    async with process(nursery, db_url, "a") as (a, _, _), process(nursery, db_url, "b") as (b, b_rooms, _):
        await a.publish([("r1", [frame(1, "r1")])])
        await b_rooms.until(lambda: "r1" in b_rooms.frames)
        with psycopg.connect(db_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE '%%LISTEN pika_bus;'"
            ).fetchone()
        assert killed == (2,)
        await b_rooms.until(lambda: b_rooms.rereads == [None])  # b may have missed anything
        with trio.fail_after(10):
            await b.connected.wait()
        await a.publish([("r1", [frame(2, "r1")])])
        await b_rooms.until(lambda: len(b_rooms.frames["r1"]) == 2)
        assert b_rooms.frames["r1"] == [frame(1, "r1"), frame(2, "r1")]


def lock_holder(url: str, session_id: str) -> list[tuple[int]]:
    """Backends holding the advisory lock of `session_id` (bus_claim.sql's key)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended(%s, 17)",
            (session_id,),
        ).fetchall()


async def test_a_room_has_one_owner_until_it_is_released(db_url: str) -> None:
    queries = load_queries(SQL_DIR / "queries")
    a, b = Ownership(db_url, queries), Ownership(db_url, queries)
    try:
        assert await a.claim("friday")
        assert await a.claim("friday")  # already its own
        assert not await b.claim("friday")
        assert await b.claim("saturday")
        assert len(lock_holder(db_url, "friday")) == 1
        await a.release("friday")
        assert await b.claim("friday")
        assert not await a.claim("friday")
        assert b.owned == {"friday", "saturday"} and a.owned == set()
    finally:
        await a.close()
        await b.close()


async def test_an_owner_whose_connection_dies_loses_its_rooms_to_another_process(db_url: str) -> None:
    queries = load_queries(SQL_DIR / "queries")
    lost: list[set[str]] = []
    a, b = Ownership(db_url, queries, on_lost=lost.append), Ownership(db_url, queries)
    try:
        assert await a.claim("friday")
        assert not await b.claim("friday")
        [(holder,)] = lock_holder(db_url, "friday")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (holder,))
        await until(lambda: b.claim("friday"), 10)  # the lock went with the connection
        assert a.owned == {"friday"}  # a does not know yet: it finds out at its next check
        await a.check()
        assert a.owned == set() and a.regaining == {"friday"}
        await a.regain()
        assert lost == [{"friday"}] and a.owned == set() and a.regaining == set()  # b holds it now

    finally:
        await a.close()
        await b.close()


async def test_an_owner_whose_connection_died_claims_its_rooms_again(db_url: str) -> None:
    queries = load_queries(SQL_DIR / "queries")
    lost: list[set[str]] = []
    a = Ownership(db_url, queries, on_lost=lost.append)
    try:
        assert await a.claim("friday")
        [(holder,)] = lock_holder(db_url, "friday")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (holder,))
        await until(lambda: not lock_holder(db_url, "friday"), 10)
        await a.check()
        await a.regain()
        assert a.owned == {"friday"} and lost == []
        assert [pid for (pid,) in lock_holder(db_url, "friday")] != [holder]
    finally:
        await a.close()


async def test_claims_refused_clearly_while_the_database_is_unreachable(tmp_path: object) -> None:
    queries = load_queries(SQL_DIR / "queries")
    nowhere = Ownership(f"postgresql://postgres@/x?host={tmp_path}&connect_timeout=1", queries)
    with pytest.raises(DatabaseStalled):
        await nowhere.claim("friday")
    await nowhere.adopt("saturday")  # a room just opened: claimed once the database is back
    assert nowhere.owned == set() and nowhere.regaining == {"saturday"}
