"""The operator's tasks of `python -m pika.admin` (telemetry, backup, restore, prune), run as an
operator runs them: real subprocesses against a seeded database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
import trio

from pika.config import SQL_DIR
from tests.conftest import PgCluster
from tests.test_admin import admin
from tests.test_retention import seed

MIGRATIONS = len(list((SQL_DIR / "migrations").glob("*.sql")))


def everything(url: str) -> dict[str, list[tuple]]:
    """Every table's rows, sorted: what a round trip must bring back unchanged."""
    with psycopg.connect(url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


async def test_telemetry_reports_disconnect_rate_reconnect_times_busiest_sessions_and_versions(
    db_url: str,
) -> None:
    seed(db_url)
    result = await admin(db_url, "telemetry", "--days", "7")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    header = lines.index("DJ connections, last 7 days")
    assert lines[header + 1].split() == [
        "sessions", "connections", "disconnects", "disconnect", "rate", "reconnect", "p50", "reconnect", "p95"
    ]  # fmt: skip
    # 3 sessions in the week, each: 2 connects + 2 reconnects, 2 drops; back after 1.8 s and 12.5 s
    assert lines[header + 2].split() == ["3", "12", "6", "50.0%", "7.2", "s", "12.5", "s"]
    busiest = lines[lines.index("Busiest sessions") + 2].split()
    assert (
        busiest[:2] == ["friday_milonga", "DJ"]
        and "live" in busiest
        and busiest[-4:] == ["25", "250", "30", "2"]
    )
    assert "summer_marathon" not in result.out  # ended 40 days ago
    versions = lines[lines.index("DJ client versions") + 2 :]
    assert [v.split()[:2] for v in versions] == [["1.4.1", "3"], ["1.4.0", "2"], ["1.3.2", "1"]]


async def test_telemetry_refuses_a_bad_window_with_one_line(db_url: str) -> None:
    result = await admin(db_url, "telemetry", "--days", "zero")
    assert result.code == 2
    assert "'zero' is not a whole number of days" in result.err


async def test_backup_then_restore_into_an_empty_database_brings_back_every_row(
    db_url: str, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    seed(db_url)
    original = everything(db_url)
    dump = tmp_path / "pika.dump"

    made = await admin(db_url, "backup", str(dump))
    assert made.code == 0, made.err
    assert f"to {dump}" in made.out and dump.stat().st_size > 0

    wiped = pg_cluster.create()
    restored = await admin(wiped, "restore", str(dump))
    assert restored.code == 0, restored.err
    assert f"migration journal ok: {MIGRATIONS} applied, 0 pending" in restored.out
    copy = everything(wiped)
    assert copy == original
    assert len(copy["likes"]) == 560 and len(copy["schema_migrations"]) == MIGRATIONS


async def test_restore_refuses_a_database_with_tables_unless_forced(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    original = everything(db_url)
    dump = tmp_path / "pika.dump"
    assert (await admin(db_url, "backup", str(dump))).code == 0
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM likes WHERE client_id = 'client-1'")
        conn.execute("UPDATE polls SET question = 'Changed?' WHERE status = 'closed'")
    changed = everything(db_url)

    refused = await admin(db_url, "restore", str(dump))
    assert refused.code == 1
    assert refused.err.count("\n") == 1 and "is not empty" in refused.err and "--force" in refused.err
    assert everything(db_url) == changed

    forced = await admin(db_url, "restore", "--force", str(dump))
    assert forced.code == 0, forced.err
    assert everything(db_url) == original


async def test_restore_of_a_missing_file_says_so(db_url: str, tmp_path: Path) -> None:
    result = await admin(db_url, "restore", str(tmp_path / "nope.dump"))
    assert result.code == 1 and "no backup file at" in result.err


async def test_backup_and_restore_work_on_the_embedded_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PIKA_DATABASE_URL"}
    env["PIKA_DATA_DIR"] = str(tmp_path / "state")
    dump = tmp_path / "embedded.dump"

    async def run(*args: str) -> str:
        with trio.fail_after(60):
            done = await trio.run_process(
                [sys.executable, "-m", *args], env=env, capture_stdout=True, capture_stderr=True, check=False
            )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    await run("pika.migrate", "up")
    assert "backed up database postgres" in await run("pika.admin", "backup", str(dump))
    assert f"migration journal ok: {MIGRATIONS} applied" in await run(
        "pika.admin", "restore", "--force", str(dump)
    )


async def test_prune_prints_what_it_deleted_and_keeps_product_data(db_url: str) -> None:
    seed(db_url)
    before = everything(db_url)
    result = await admin(db_url, "prune")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "deleted 7 rows of session_events older than 30 days (PIKA_RETENTION_DAYS)",
        "deleted 1 row of push_subscriptions older than 30 days (PIKA_RETENTION_DAYS)",
    ]
    after = everything(db_url)
    for table in ("sessions", "played_tracks", "likes", "polls", "poll_votes", "reactions", "djs"):
        assert after[table] == before[table]
    assert len(after["session_events"]) == len(before["session_events"]) - 7


async def test_restore_of_a_file_that_is_no_backup_fails_with_one_line_and_changes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    seed(db_url)
    before = everything(db_url)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a dump\n")
    result = await admin(db_url, "restore", "--force", str(junk))
    assert result.code == 2
    assert result.err.startswith("pika.admin: pg_restore failed:") and result.err.count("\n") == 1
    assert everything(db_url) == before
