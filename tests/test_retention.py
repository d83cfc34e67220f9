"""Retention (PIKA_RETENTION_DAYS): old telemetry and dead push subscriptions go, product data stays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import trio
from trio.testing import MockClock

from pika.config import SQL_DIR
from pika.db import Database
from pika.queries import load_queries
from pika.retention import DAY, prune, run_daily
from tests.conftest import StartServer

SEED = (Path(__file__).parent / "ops_seed.sql").read_text(encoding="utf-8")
PRODUCT = ("djs", "sessions", "played_tracks", "likes", "polls", "poll_votes", "reactions", "dj_tokens")


def seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(SEED)


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def product_counts(url: str) -> dict[str, int]:
    return {table: count(url, f"SELECT count(*) FROM {table}") for table in PRODUCT}


OLD_EVENTS = "SELECT count(*) FROM session_events WHERE created_at < now() - interval '30 days'"
NEW_EVENTS = "SELECT count(*) FROM session_events WHERE created_at >= now() - interval '30 days'"


@pytest.fixture
async def seeded(db_url: str) -> AsyncIterator[tuple[str, Database]]:
    seed(db_url)
    db = Database(db_url, load_queries(SQL_DIR / "queries"), pool_size=2)
    await db.open()
    try:
        yield db_url, db
    finally:
        await db.close()


async def test_prune_deletes_rows_older_than_the_window_and_keeps_newer_and_product_data(
    seeded: tuple[str, Database],
) -> None:
    url, db = seeded
    before, old, new = product_counts(url), count(url, OLD_EVENTS), count(url, NEW_EVENTS)
    assert old > 0 and new > 0

    deleted = await prune(db, days=30)

    assert deleted == {"session_events": old, "push_subscriptions": 1}
    assert count(url, OLD_EVENTS) == 0
    assert count(url, NEW_EVENTS) == new
    endpoints = count(
        url, "SELECT count(*) FROM push_subscriptions WHERE endpoint <> 'https://push.example/old'"
    )
    assert endpoints == count(url, "SELECT count(*) FROM push_subscriptions") == 2
    assert product_counts(url) == before


async def test_prune_works_in_small_batches_until_nothing_old_is_left(seeded: tuple[str, Database]) -> None:
    url, db = seeded
    old = count(url, OLD_EVENTS)
    assert old > 2

    deleted = await prune(db, days=30, batch=2)

    assert deleted["session_events"] == old
    assert count(url, OLD_EVENTS) == 0


async def test_a_shorter_window_deletes_more_and_a_second_run_deletes_nothing(
    seeded: tuple[str, Database],
) -> None:
    url, db = seeded
    week_old = count(url, "SELECT count(*) FROM session_events WHERE created_at < now() - interval '5 days'")

    assert (await prune(db, days=5))["session_events"] == week_old
    assert await prune(db, days=5) == {"session_events": 0, "push_subscriptions": 0}


async def test_the_running_server_prunes_at_start_then_daily(db_url: str, start_server: StartServer) -> None:
    seed(db_url)
    new = count(db_url, NEW_EVENTS)
    await start_server(retention_days=30)
    with trio.fail_after(10):
        while count(db_url, OLD_EVENTS):
            await trio.sleep(0.05)
    assert count(db_url, NEW_EVENTS) >= new


async def test_retention_runs_at_start_then_once_a_day_and_a_failed_day_does_not_stop_it(
    mock_clock: MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    runs: list[float] = []

    async def step() -> dict[str, int]:
        runs.append(trio.current_time())
        if len(runs) == 2:
            raise RuntimeError("database away")
        return {"session_events": 0}

    with trio.move_on_after(3.5 * DAY):
        await run_daily(step, days=30)
    assert runs == [0.0, DAY, 2 * DAY, 3 * DAY]
