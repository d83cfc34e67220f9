"""The operator's subcommands of `python -m pika.admin`: telemetry, backup, restore, prune.

Each gets the database URL (embedded or `PIKA_DATABASE_URL`) and opens what it needs: a
connection, pg_dump/pg_restore, or a small pool for retention's batched deletes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from pika.config import Settings
from pika.db import Database, Tx, connect_sync
from pika.ops.backup import backup, restore
from pika.ops.telemetry_report import telemetry_report
from pika.queries import Queries
from pika.retention import prune

Command = Callable[[str, argparse.Namespace, Settings, Queries], list[str]]


def add_ops_parsers(sub: Any) -> None:
    """Declare the subcommands on admin's subparsers."""
    report = sub.add_parser(
        "telemetry",
        help="the stability report: disconnect rate, reconnect p50/p95, busiest sessions, versions",
    )
    report.add_argument("--days", type=_days, default=7, help="how many days back (default 7)")
    dump = sub.add_parser("backup", help="write a pg_dump (custom format) of the database to FILE")
    dump.add_argument("file", metavar="FILE", type=Path, help="where to write the backup")
    load = sub.add_parser(
        "restore",
        help="restore a backup FILE (refuses a non-empty database without --force)",
        description="Restore a `backup` FILE with pg_restore, in one transaction, then check the "
        "migration journal. Stop the server first.",
    )
    load.add_argument("file", metavar="FILE", type=Path, help="a file written by `backup`")
    load.add_argument("--force", action="store_true", help="replace what a non-empty database holds")
    sub.add_parser(
        "prune",
        help="delete telemetry and other operational rows older than PIKA_RETENTION_DAYS now",
        description="What the server's daily retention does, on demand: deletes session_events and "
        "the push subscriptions of sessions ended longer than PIKA_RETENTION_DAYS ago, in small "
        "batches. Likes, plays, polls and sessions are kept.",
    )


def telemetry(url: str, args: argparse.Namespace, _: Settings, queries: Queries) -> list[str]:
    with connect_sync(url, autocommit=True) as conn:
        return telemetry_report(Tx(conn, queries), args.days)


def backup_command(url: str, args: argparse.Namespace, _: Settings, __: Queries) -> list[str]:
    return backup(url, args.file)


def restore_command(url: str, args: argparse.Namespace, settings: Settings, queries: Queries) -> list[str]:
    return restore(url, args.file, force=args.force, settings=settings, queries=queries)


def prune_command(url: str, _: argparse.Namespace, settings: Settings, queries: Queries) -> list[str]:
    async def run() -> dict[str, int]:
        db = Database(url, queries, pool_size=1)
        await db.open()
        try:
            return await prune(db, settings.retention_days)
        finally:
            await db.close()

    deleted = trio.run(run)
    return [
        f"deleted {count} row{'s' if count != 1 else ''} of {table} older than "
        f"{settings.retention_days} days (PIKA_RETENTION_DAYS)"
        for table, count in deleted.items()
    ]


OPS_COMMANDS: dict[str, Command] = {
    "telemetry": telemetry,
    "backup": backup_command,
    "restore": restore_command,
    "prune": prune_command,
}


def _days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of days") from None
    if not 1 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"{days} is out of range (1-36500 days)")
    return days
