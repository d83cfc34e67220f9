"""The migration runner against a real PostgreSQL: what an operator sees when migrating a database."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pika.config import SQL_DIR
from pika.errors import MigrationRefused
from pika.migrate import LOCK_KEY, MigrationFailed, Migrator, main, new_migration

SHIPPED = sorted(p.name for p in (SQL_DIR / "migrations").glob("*.sql"))  # the repository's own
INITIAL = SHIPPED[0]


def migrations(tmp_path: Path, **extra: str) -> Path:
    """A copy of the real migrations folder plus `extra` files (name without .sql -> SQL)."""
    folder = tmp_path / "migrations"
    shutil.copytree(SQL_DIR / "migrations", folder)
    for name, sql in extra.items():
        (folder / f"{name}.sql").write_text(sql)
    return folder


def sql_dir(tmp_path: Path, **extra: str) -> Path:
    """A PIKA_SQL_DIR for the CLI: the real queries and a copy of the migrations."""
    migrations(tmp_path, **extra)
    shutil.copytree(SQL_DIR / "queries", tmp_path / "queries")
    return tmp_path


def journal(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,):
            return []
        return [r[0] for r in conn.execute("SELECT filename FROM schema_migrations ORDER BY filename")]


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_an_empty_database_gets_every_migration_and_its_tables(empty_db: str) -> None:
    lines: list[str] = []
    applied = Migrator(empty_db, SQL_DIR / "migrations", echo=lines.append).up()

    assert applied == SHIPPED
    assert {"djs", "sessions", "played_tracks", "likes", "schema_migrations"} <= tables(empty_db)
    assert journal(empty_db) == SHIPPED
    assert len(lines) == len(SHIPPED)
    assert lines[0].startswith(f"applied {INITIAL} in ") and lines[0].endswith(" ms")


def test_a_second_run_applies_nothing(empty_db: str) -> None:
    Migrator(empty_db, SQL_DIR / "migrations").up()
    lines: list[str] = []

    assert Migrator(empty_db, SQL_DIR / "migrations", echo=lines.append).up() == []
    assert journal(empty_db) == SHIPPED
    assert lines == [f"nothing to apply: all {len(SHIPPED)} migrations are applied"]


def test_an_edited_applied_file_is_refused_and_nothing_is_applied(empty_db: str, tmp_path: Path) -> None:
    folder = migrations(tmp_path)
    Migrator(empty_db, folder).up()
    with (folder / INITIAL).open("a") as f:
        f.write("\n-- a harmless-looking edit\n")
    (folder / "0902_add_notes.sql").write_text("CREATE TABLE notes (id int);\n")
    migrator = Migrator(empty_db, folder)

    with pytest.raises(MigrationRefused, match=re.escape(f"{INITIAL} was edited after it was applied")):
        migrator.up()
    with pytest.raises(MigrationRefused, match=re.escape(INITIAL)):
        migrator.verify()
    assert "notes" not in tables(empty_db)
    assert journal(empty_db) == SHIPPED


def test_a_removed_applied_file_is_refused(empty_db: str, tmp_path: Path) -> None:
    folder = migrations(tmp_path, **{"0902_add_notes": "CREATE TABLE notes (id int);"})
    Migrator(empty_db, folder).up()
    (folder / "0902_add_notes.sql").unlink()
    (folder / "0903_add_tags.sql").write_text("CREATE TABLE tags (id int);")

    with pytest.raises(
        MigrationRefused, match=re.escape("0902_add_notes.sql was applied but is no longer in")
    ):
        Migrator(empty_db, folder).up()
    assert "tags" not in tables(empty_db)


def test_a_pending_file_that_sorts_before_an_applied_one_is_refused(empty_db: str, tmp_path: Path) -> None:
    folder = migrations(tmp_path, **{"0903_add_tags": "CREATE TABLE tags (id int);"})
    Migrator(empty_db, folder).up()
    (folder / "0902_add_notes.sql").write_text("CREATE TABLE notes (id int);")

    with pytest.raises(
        MigrationRefused, match=re.escape("0902_add_notes.sql is pending but sorts before the applied 0903")
    ):
        Migrator(empty_db, folder).up()
    assert "notes" not in tables(empty_db)
    assert journal(empty_db) == [*SHIPPED, "0903_add_tags.sql"]


def test_a_failing_migration_leaves_neither_its_changes_nor_its_journal_row(
    empty_db: str, tmp_path: Path
) -> None:
    broken = "-- half a change\nCREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n"
    folder = migrations(tmp_path, **{"0902_broken": broken})

    with pytest.raises(
        MigrationFailed, match=r'0902_broken\.sql failed .*"no_such_table" does not exist \(line 3\)'
    ):
        Migrator(empty_db, folder).up()
    assert "half_done" not in tables(empty_db)
    assert journal(empty_db) == SHIPPED

    (folder / "0902_broken.sql").write_text("CREATE TABLE half_done (id int);\n")
    assert Migrator(empty_db, folder).up() == ["0902_broken.sql"]
    assert "half_done" in tables(empty_db)


def test_the_cli_reports_a_failing_migration_in_one_line_and_exits_1(
    empty_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIKA_SQL_DIR", str(sql_dir(tmp_path, **{"0902_broken": "SELECT * FROM nope;"})))

    assert main(["up", "--database-url", empty_db]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"applied {INITIAL} in ")
    assert err.count("\n") == 1
    assert "0902_broken.sql failed" in err and '"nope" does not exist' in err


def test_two_runners_at_once_apply_each_file_exactly_once(empty_db: str, tmp_path: Path) -> None:
    folder = migrations(tmp_path, **{"0902_slow": "SELECT pg_sleep(1);"})
    start = threading.Barrier(2)
    results: list[list[str]] = []
    lines: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(Migrator(empty_db, folder, echo=lines.append).up())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert sorted(results, key=len) == [[], [*SHIPPED, "0902_slow.sql"]]
    assert "another migration runner holds the lock; waiting for it to finish" in lines
    assert journal(empty_db) == [*SHIPPED, "0902_slow.sql"]


def test_baseline_adopts_a_database_built_by_hand(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        for path in sorted((SQL_DIR / "migrations").glob("*.sql")):
            conn.execute(path.read_text())
    migrator = Migrator(empty_db, SQL_DIR / "migrations")

    assert migrator.baseline() == SHIPPED
    assert migrator.up() == []
    assert migrator.status() == [(name, "applied") for name in SHIPPED]
    migrator.verify()


def test_status_lists_applied_changed_missing_and_pending_files(empty_db: str, tmp_path: Path) -> None:
    folder = migrations(
        tmp_path,
        **{"0902_add_notes": "CREATE TABLE notes (id int);", "0903_add_tags": "CREATE TABLE tags (id int);"},
    )
    Migrator(empty_db, folder).up()
    (folder / "0902_add_notes.sql").write_text("CREATE TABLE notes (id bigint);")
    (folder / "0903_add_tags.sql").unlink()
    (folder / "0904_add_colors.sql").write_text("CREATE TABLE colors (id int);")

    assert Migrator(empty_db, folder).status() == [
        *[(name, "applied") for name in SHIPPED],
        ("0902_add_notes.sql", "changed"),
        ("0903_add_tags.sql", "missing"),
        ("0904_add_colors.sql", "pending"),
    ]


def test_the_status_command_prints_a_table_of_files_and_states(
    empty_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "PIKA_SQL_DIR", str(sql_dir(tmp_path, **{"0902_add_notes": "CREATE TABLE notes (id int);"}))
    )
    Migrator(empty_db, SQL_DIR / "migrations").up()

    assert main(["status", "--database-url", empty_db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out] == [
        ["file", "state"],
        *[[name, "applied"] for name in SHIPPED],
        ["0902_add_notes.sql", "pending"],
    ]


def test_dry_run_lists_what_would_be_applied_and_changes_nothing(
    empty_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PIKA_SQL_DIR", raising=False)

    assert main(["up", "--dry-run", "--database-url", empty_db]) == 0
    assert capsys.readouterr().out == "".join(f"would apply {name}\n" for name in SHIPPED)
    assert tables(empty_db) == set()
    assert Migrator(empty_db, SQL_DIR / "migrations").up(dry_run=True) == SHIPPED
    assert tables(empty_db) == set()


def test_the_cli_with_an_unreachable_database_says_so_in_one_line_without_the_password() -> None:
    url = "postgresql://u:secretpw@127.0.0.1:1/nodb"
    proc = subprocess.run(
        [sys.executable, "-m", "pika.migrate", "up", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "cannot connect to PostgreSQL: database nodb on 127.0.0.1:1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "secretpw" not in proc.stdout + proc.stderr


def test_new_creates_the_next_numbered_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = sql_dir(tmp_path, **{"0907_add_notes": "CREATE TABLE notes (id int);"})
    monkeypatch.setenv("PIKA_SQL_DIR", str(root))

    assert main(["new", "add_poll_colors"]) == 0
    created = root / "migrations" / "0908_add_poll_colors.sql"
    assert capsys.readouterr().out == f"created {created}\n"
    assert created.read_text().startswith("-- 0908_add_poll_colors: ")

    assert new_migration(root / "migrations", "add_tags").name == "0909_add_tags.sql"


def test_new_refuses_a_name_that_is_not_lower_snake_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = sql_dir(tmp_path)
    monkeypatch.setenv("PIKA_SQL_DIR", str(root))

    assert main(["new", "Add-Colors"]) == 1
    assert "'Add-Colors' is not lower snake case" in capsys.readouterr().err
    assert sorted(p.name for p in (root / "migrations").iterdir()) == SHIPPED


def test_a_new_file_left_empty_is_refused_rather_than_recorded(empty_db: str, tmp_path: Path) -> None:
    folder = migrations(tmp_path)
    created = new_migration(folder, "add_notes")

    assert created.name == f"{int(SHIPPED[-1][:4]) + 1:04d}_add_notes.sql"
    with pytest.raises(MigrationRefused, match=re.escape(f"{created.name} holds no SQL statement")):
        Migrator(empty_db, folder).up()
    assert journal(empty_db) == []


def run_in_thread(work: Callable[[], object], timeout: float = 30) -> BaseException | None:
    """Run `work` in a thread (a hang guard for a runner that would wait forever); return what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the runner is still waiting"
    return raised[0] if raised else None


def test_a_migration_behind_a_held_table_lock_gives_up_and_names_the_lock_and_its_holder(
    empty_db: str, tmp_path: Path
) -> None:
    folder = migrations(tmp_path, **{"0901_add_note": "ALTER TABLE likes ADD COLUMN note text;"})
    Migrator(empty_db, SQL_DIR / "migrations").up()
    lines: list[str] = []
    with psycopg.connect(empty_db) as holder:  # a transaction left open on the table
        holder.execute("SELECT count(*) FROM likes")
        pid = holder.info.backend_pid
        failed = run_in_thread(lambda: Migrator(empty_db, folder, echo=lines.append, lock_timeout=1.0).up())
        holder.rollback()

    holder_said = "idle in transaction: SELECT count(*) FROM likes"
    wait = f"AccessExclusiveLock on relation likes, held by pid {pid} ({holder_said})"
    assert lines == [f"waiting for {wait}; giving up after 1 s"]
    assert isinstance(failed, MigrationFailed)
    assert str(failed) == (
        "0901_add_note.sql was rolled back (nothing from it is applied): "
        f"gave up after 1 s waiting for {wait} (end that session or wait for it, then run again; "
        "PIKA_MIGRATION_LOCK_TIMEOUT sets the wait)"
    )
    assert journal(empty_db) == SHIPPED
    assert Migrator(empty_db, folder).up() == ["0901_add_note.sql"]  # once the lock is gone


def test_a_runner_behind_another_runner_s_lock_gives_up_and_says_so(empty_db: str) -> None:
    lines: list[str] = []
    with psycopg.connect(empty_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        failed = run_in_thread(
            lambda: Migrator(empty_db, SQL_DIR / "migrations", echo=lines.append, lock_timeout=1.0).up()
        )
        pid = other.info.backend_pid

    assert isinstance(failed, MigrationRefused)
    assert f"waiting for the migration lock, held by pid {pid}" in lines[1]
    assert str(failed).startswith(
        f"nothing more was applied: gave up after 1 s waiting for the migration lock, held by pid {pid} "
    )
    assert journal(empty_db) == []
