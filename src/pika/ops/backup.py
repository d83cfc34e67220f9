"""`python -m pika.admin backup FILE` / `restore FILE [--force]`: pg_dump and pg_restore, custom format.

The binaries are the ones `pgserver` ships (PostgreSQL 16), so they work on the embedded
database and on any PostgreSQL 16 or older at `PIKA_DATABASE_URL` without a client install.
A backup is written to a temporary file and renamed, so FILE is never half a dump; a restore
refuses a database that holds tables unless forced, and checks the migration journal after.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

from pika.config import Settings
from pika.db import Tx, connect_sync, describe_url
from pika.errors import PikaError
from pika.migrate import Migrator
from pika.queries import Queries, query

ADMIN_USER_TABLES = query("admin_user_tables")


class BackupFailed(PikaError):
    """pg_dump or pg_restore failed; the message is its last line (exit code 2)."""

    exit_code = 2


class RestoreRefused(PikaError):
    """The target database is not empty, or FILE is missing (exit code 1)."""

    exit_code = 1


def postgres_bin(name: str) -> Path:
    """The path of a PostgreSQL client program inside the installed pgserver package."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise BackupFailed("the pgserver package is not installed (pip install -e .)")
    return Path(spec.origin).parent / "pginstall" / "bin" / name


def backup(url: str, file: Path) -> list[str]:
    partial = file.with_name(file.name + ".partial")
    _run([str(postgres_bin("pg_dump")), "--format=custom", f"--file={partial}", f"--dbname={url}"])
    os.replace(partial, file)
    return [f"backed up {describe_url(url)} to {file} ({file.stat().st_size:,} bytes)"]


def restore(url: str, file: Path, *, force: bool, settings: Settings, queries: Queries) -> list[str]:
    if not file.is_file():
        raise RestoreRefused(f"no backup file at {file}")
    with connect_sync(url, autocommit=True) as conn:
        row = Tx(conn, queries).one(ADMIN_USER_TABLES) or {"tables": 0}
    if row["tables"] and not force:
        raise RestoreRefused(
            f"{describe_url(url)} is not empty ({row['tables']} tables): stop the server, then "
            "add --force to replace its contents with the backup"
        )
    _run(
        [
            str(postgres_bin("pg_restore")),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={url}",
            str(file),
        ]
    )
    migrator = Migrator(
        url,
        settings.sql_dir / "migrations",
        queries_dir=settings.sql_dir / "queries",
        lock_timeout=settings.migration_lock_timeout,
    )
    migrator.verify()
    states = [state for _, state in migrator.status()]
    pending = states.count("pending")
    lines = [
        f"restored {file} into {describe_url(url)}",
        f"migration journal ok: {states.count('applied')} applied, {pending} pending",
    ]
    if pending:
        lines.append("the backup is older than the code: python -m pika.migrate up applies the rest")
    return lines


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        # the command line holds the URL (and so maybe a password): only name the program
        raise BackupFailed(f"{Path(command[0]).name} failed: {lines[-1] if lines else 'no message'}")
