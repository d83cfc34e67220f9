"""The schema migration runner: applies `sql/migrations/NNNN_name.sql` files once each, in name order.

It is separate from `pika.db` and `pika.queries` because it must work before anything else
exists: one plain connection, its own few statements read by path from `sql/queries/
migrations_journal_*.sql`, and a journal table (`schema_migrations`) of file name and SHA-256.
An advisory lock serialises runners; each file commits together with its journal row.  Every
lock wait gives up after a timeout, and while one lasts a second connection says who holds it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

from pika.config import SQL_DIR, Settings
from pika.db import connect_sync, describe_url
from pika.errors import ConfigError, DatabaseUnavailable, MigrationRefused, PikaError

log = logging.getLogger("pika.migrate")

# Fixed key of the session-level advisory lock (the bytes "pika.mig"); advisory locks are per
# database, so runners on different databases of one server never wait for each other.
LOCK_KEY = int.from_bytes(b"pika.mig", "big")

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")
NEW_NAME = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
NEW_NAME_MAX = 60

State = Literal["applied", "pending", "changed", "missing"]

_JOURNAL_STATEMENTS = (
    "create",
    "exists",
    "try_lock",
    "lock",
    "unlock",
    "applied",
    "insert",
    "lock_timeout",
    "blockers",
)
LOCK_TIMEOUT = 30.0  # seconds; the server passes PIKA_MIGRATION_LOCK_TIMEOUT


class MigrationFailed(MigrationRefused):
    """A migration file's SQL failed; it was rolled back with its journal row (exit code 1)."""


@dataclass(frozen=True)
class MigrationFile:
    """One `NNNN_name.sql` file as it is on disk now."""

    name: str
    path: Path
    sha256: str

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


class Migrator:
    """Brings one database's schema up to the files in `migrations_dir`, and reports on it.

    `echo` receives one line per action ("applied 0001_x.sql in 12 ms"); the CLI prints them,
    the server and tests log them.  `queries_dir` holds the runner's own journal statements.
    A wait for any lock lasts at most `lock_timeout` seconds (then MigrationFailed, nothing of
    the file applied); while it lasts, `echo` hears which lock and which session holds it.
    """

    def __init__(
        self,
        url: str,
        migrations_dir: Path,
        *,
        queries_dir: Path | None = None,
        echo: Callable[[str], None] | None = None,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        self.url = url
        self.migrations_dir = Path(migrations_dir)
        self.lock_timeout = lock_timeout
        self._echo = echo or log.info
        self._sql = _load_journal_statements(queries_dir or SQL_DIR / "queries")
        self._waiting_for: str | None = None  # the last wait the watcher saw, for the error

    def up(self, dry_run: bool = False) -> list[str]:
        """Apply every pending file in order; return their names (or, dry run, those that would be).

        Raises MigrationRefused (nothing applied) when the journal and the files disagree, and
        MigrationFailed naming the file when a file's SQL fails (earlier files stay applied).
        """
        files = _scan(self.migrations_dir)
        if dry_run:
            with self._connect() as conn:
                pending = self._plan(files, self._read_journal(conn))
            for f in pending:
                self._echo(f"would apply {f.name}")
            if not pending:
                self._echo(f"nothing to apply: all {len(files)} migrations are applied")
            return [f.name for f in pending]

        applied: list[str] = []
        with self._connect() as conn, self._watching(conn), self._locked(conn):
            self._run(conn, "create")
            pending = self._plan(files, self._read_journal(conn))
            for f in pending:
                self._apply(conn, f)
                applied.append(f.name)
        if not applied:
            self._echo(f"nothing to apply: all {len(files)} migrations are applied")
        return applied

    def status(self) -> list[tuple[str, str]]:
        """(file name, state) for every file and journal row, in name order; writes nothing."""
        files = {f.name: f for f in _scan(self.migrations_dir)}
        with self._connect() as conn:
            journal = self._read_journal(conn)
        rows: list[tuple[str, str]] = []
        for name in sorted(files.keys() | journal.keys()):
            state: State
            if name not in journal:
                state = "pending"
            elif name not in files:
                state = "missing"
            elif files[name].sha256 != journal[name]:
                state = "changed"
            else:
                state = "applied"
            rows.append((name, state))
        return rows

    def baseline(self) -> list[str]:
        """Mark every current file applied without running it; return the names newly marked.

        For a database whose schema was built another way (a restored dump, SQL run by hand).
        """
        files = _scan(self.migrations_dir)
        marked: list[str] = []
        with self._connect() as conn, self._watching(conn), self._locked(conn):
            self._run(conn, "create")
            for f in self._plan(files, self._read_journal(conn)):
                self._run(conn, "insert", filename=f.name, sha256=f.sha256, duration_ms=None)
                self._echo(f"marked {f.name} applied (not run)")
                marked.append(f.name)
        if not marked:
            self._echo(f"nothing to mark: all {len(files)} migrations are applied")
        return marked

    def verify(self) -> None:
        """Raise MigrationRefused when an applied file was edited or removed, or a pending one sorts early."""
        files = _scan(self.migrations_dir)
        with self._connect() as conn:
            self._plan(files, self._read_journal(conn), check_sql=False)

    # -- helpers -----------------------------------------------------------------------------

    def _plan(
        self, files: list[MigrationFile], journal: dict[str, str], check_sql: bool = True
    ) -> list[MigrationFile]:
        """The files still to apply, after refusing every disagreement between journal and files."""
        on_disk = {f.name: f for f in files}
        problems = []
        for name, sha in sorted(journal.items()):
            if name not in on_disk:
                problems.append(
                    f"{name} was applied but is no longer in {self.migrations_dir} "
                    "(restore it from version control; never delete an applied migration)"
                )
            elif on_disk[name].sha256 != sha:
                problems.append(
                    f"{name} was edited after it was applied (checksum differs); "
                    "restore it from version control and put the change in a new migration"
                )
        pending = [f for f in files if f.name not in journal]
        last = max(journal, default="")
        for f in pending:
            if f.name < last:
                problems.append(
                    f"{f.name} is pending but sorts before the applied {last}; "
                    "rename it to the next free number (python -m pika.migrate new NAME shows it)"
                )
            elif check_sql and not _has_statement(f.sql()):
                problems.append(f"{f.name} holds no SQL statement; write the change or delete the file")
        if problems:
            raise MigrationRefused("refusing to migrate, nothing applied: " + "; ".join(problems))
        return pending

    def _apply(self, conn: psycopg.Connection[Any], f: MigrationFile) -> None:
        """Run one file and write its journal row in one transaction: both happen or neither does."""
        sql = f.sql()
        started = time.perf_counter()
        try:
            with conn.transaction():
                conn.execute(sql)  # no parameters: sent as-is, several statements allowed
                duration_ms = round((time.perf_counter() - started) * 1000)
                self._run(conn, "insert", filename=f.name, sha256=f.sha256, duration_ms=duration_ms)
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise DatabaseUnavailable(
                    f"lost the connection to {describe_url(self.url)} while applying {f.name}; "
                    "it was rolled back, run the migration again"
                ) from None
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise MigrationFailed(
                    f"{f.name} was rolled back (nothing from it is applied): {self._gave_up()}"
                ) from None
            raise MigrationFailed(
                f"{f.name} failed and was rolled back (nothing from it is applied): {_pg_message(exc, sql)}"
            ) from None
        self._echo(f"applied {f.name} in {duration_ms} ms")

    def _read_journal(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        """filename -> sha256 of every applied file; empty when the journal table does not exist yet."""
        row = self._run(conn, "exists").fetchone()
        if not row or not row["present"]:
            return {}
        return {r["filename"]: r["sha256"] for r in self._run(conn, "applied").fetchall()}

    @contextlib.contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        """An autocommit connection; PostgreSQL errors outside a migration become one-line PikaErrors."""
        conn = connect_sync(self.url, autocommit=True)
        try:
            self._run(conn, "lock_timeout", timeout=f"{max(1, round(self.lock_timeout * 1000))}ms")
            yield conn
        except PikaError:
            raise
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                raise DatabaseUnavailable(
                    f"lost the connection to {describe_url(self.url)}; nothing more was applied"
                ) from None
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise MigrationRefused(f"nothing more was applied: {self._gave_up()}") from None
            raise MigrationRefused(
                f"cannot use the migration journal in {describe_url(self.url)}: {_pg_message(exc)}"
            ) from None
        finally:
            conn.close()

    @contextlib.contextmanager
    def _locked(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Hold the migration advisory lock; say so when another runner makes us wait."""
        row = self._run(conn, "try_lock", key=LOCK_KEY).fetchone()
        if not row or not row["locked"]:
            self._echo("another migration runner holds the lock; waiting for it to finish")
            self._run(conn, "lock", key=LOCK_KEY)
        try:
            yield
        finally:
            if not (conn.closed or conn.broken):
                self._run(conn, "unlock", key=LOCK_KEY)

    @contextlib.contextmanager
    def _watching(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """While the body runs, a thread on a second connection looks (four times per timeout, at
        least every second) for a lock `conn` waits for, and says once per holder who holds it."""
        pid = conn.info.backend_pid
        every = min(1.0, self.lock_timeout / 4)
        stop = threading.Event()

        def watch() -> None:
            try:
                with connect_sync(self.url, autocommit=True) as watcher:
                    while not stop.wait(every):
                        wait = _describe_wait(self._run(watcher, "blockers", pid=pid).fetchall())
                        if wait is not None and wait != self._waiting_for:
                            self._echo(f"waiting for {wait}; giving up after {self.lock_timeout:g} s")
                            self._waiting_for = wait
            except (PikaError, psycopg.Error):
                return  # only a report: the runner's own connection decides what happens

        self._waiting_for = None
        thread = threading.Thread(target=watch, name="pika-migrate-watch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _gave_up(self) -> str:
        waited_for = self._waiting_for or "a lock another session holds"
        return (
            f"gave up after {self.lock_timeout:g} s waiting for {waited_for} "
            "(end that session or wait for it, then run again; PIKA_MIGRATION_LOCK_TIMEOUT sets the wait)"
        )

    def _run(self, conn: psycopg.Connection[Any], statement: str, **params: Any) -> psycopg.Cursor[Any]:
        return conn.execute(self._sql[statement], params or None)


def new_migration(migrations_dir: Path, name: str) -> Path:
    """Create the next numbered, empty migration `NNNN_<name>.sql` with a header; return its path."""
    migrations_dir = Path(migrations_dir)
    if not NEW_NAME.fullmatch(name) or len(name) > NEW_NAME_MAX:
        raise MigrationRefused(
            f"migration name {name!r} is not lower snake case (a-z, 0-9 and single underscores, "
            f"starting with a letter, at most {NEW_NAME_MAX} characters), e.g. add_poll_colors"
        )
    files = _scan(migrations_dir)
    number = max((int(f.name[:4]) for f in files), default=0) + 1
    if number > 9999:
        raise MigrationRefused(f"{migrations_dir} already has migration 9999; there is no next number")
    path = migrations_dir / f"{number:04d}_{name}.sql"
    header = (
        f"-- {path.stem}: <what this changes and why>\n"
        "--\n"
        "-- Applied once by `python -m pika.migrate up`, in one transaction with its journal row, so\n"
        "-- write no BEGIN/COMMIT.  Once applied anywhere, never edit this file: add a new migration.\n"
        "\n"
    )
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(header)
    except FileExistsError:
        raise MigrationRefused(f"{path} already exists; run the command again") from None
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m pika.migrate`: exit 0 done, 1 refused or failed, 2 cannot connect or bad settings."""
    parser = argparse.ArgumentParser(
        prog="python -m pika.migrate",
        description="Apply and inspect Pika!'s schema migrations (sql/migrations/NNNN_name.sql).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="up",
        choices=["up", "status", "baseline", "verify", "new"],
        help="up (default): apply pending files; status: list files and states; baseline: mark all "
        "files applied without running them; verify: check applied files are unchanged; new NAME: "
        "create the next numbered file",
    )
    parser.add_argument("name", nargs="?", help="name of the new migration (lower snake case), for `new`")
    parser.add_argument(
        "--dry-run", action="store_true", help="with up: list what would be applied, apply nothing"
    )
    parser.add_argument("--database-url", help="PostgreSQL URL (default: PIKA_DATABASE_URL, else embedded)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    if (args.command == "new") != (args.name is not None):
        parser.print_usage(sys.stderr)
        print("a NAME is given with `new` and only with `new`", file=sys.stderr)
        return 2
    if args.dry_run and args.command != "up":
        print("--dry-run goes with `up` only", file=sys.stderr)
        return 2

    try:
        settings = Settings.from_env(database_url=args.database_url)
        migrations_dir = settings.sql_dir / "migrations"
        if args.command == "new":
            print(f"created {new_migration(migrations_dir, args.name)}")
            return 0
        with _database_url(settings) as url:
            migrator = Migrator(
                url,
                migrations_dir,
                queries_dir=settings.sql_dir / "queries",
                echo=print,
                lock_timeout=settings.migration_lock_timeout,
            )
            return _run_command(migrator, args.command, args.dry_run)
    except PikaError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; a migration in progress was rolled back", file=sys.stderr)
        return 130


# -- module helpers ----------------------------------------------------------------------------


def _run_command(migrator: Migrator, command: str, dry_run: bool) -> int:
    if command == "up":
        migrator.up(dry_run=dry_run)
    elif command == "baseline":
        migrator.baseline()
    elif command == "verify":
        migrator.verify()
        states = [state for _, state in migrator.status()]
        applied, pending = states.count("applied"), states.count("pending")
        print(f"ok: {applied} applied migrations match their files, {pending} pending")
    else:
        rows = migrator.status()
        width = max([len("file"), *(len(name) for name, _ in rows)])
        print(f"{'file':<{width}}  state")
        for name, state in rows:
            print(f"{name:<{width}}  {state}")
        if not rows:
            print(f"(no migration files in {migrator.migrations_dir})")
    return 0


@contextlib.contextmanager
def _database_url(settings: Settings) -> Iterator[str]:
    """The configured URL, or the embedded PostgreSQL's while it runs."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    from pika.embedded import embedded_postgres  # imported late: it sets XDG_RUNTIME_DIR

    with embedded_postgres(settings.pgdata) as url:
        yield url


def _scan(migrations_dir: Path) -> list[MigrationFile]:
    """Every `*.sql` file in name order, with checksums; refuse names that would sort unpredictably."""
    if not migrations_dir.is_dir():
        raise ConfigError(
            f"migrations folder {migrations_dir} does not exist (set PIKA_SQL_DIR to the repo's sql/ folder)"
        )
    files = []
    for path in sorted(migrations_dir.glob("*.sql")):
        if not FILE_NAME.fullmatch(path.name):
            raise MigrationRefused(
                f"{path.name} in {migrations_dir} is not named NNNN_lower_snake_name.sql; "
                "rename it (python -m pika.migrate new NAME makes a correctly named file)"
            )
        files.append(MigrationFile(path.name, path, hashlib.sha256(path.read_bytes()).hexdigest()))
    return files


def _load_journal_statements(queries_dir: Path) -> dict[str, str]:
    statements = {}
    for name in _JOURNAL_STATEMENTS:
        path = queries_dir / f"migrations_journal_{name}.sql"
        try:
            statements[name] = path.read_text(encoding="utf-8")
        except OSError:
            raise ConfigError(
                f"the migration runner's statement {path} is missing "
                "(set PIKA_SQL_DIR to the repo's sql/ folder)"
            ) from None
    return statements


def _describe_wait(rows: list[dict[str, Any]]) -> str | None:
    """One phrase for what a connection waits for, from migrations_journal_blockers rows."""
    if not rows:
        return None
    first = rows[0]
    holders = ", ".join(
        f"pid {r['pid']} ({r['state'] or '?'}{': ' + r['query'] if r['query'] else ''})" for r in rows
    )
    if first["locktype"] == "advisory":
        return f"the migration lock, held by {holders} (another migration runner)"
    what = f"relation {first['relation']}" if first["relation"] else first["locktype"]
    return f"{first['mode']} on {what}, held by {holders}"


def _has_statement(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


def _pg_message(exc: psycopg.Error, sql: str | None = None) -> str:
    """PostgreSQL's primary message on one line, with the file line it points at when known."""
    first_line = next(iter(str(exc).splitlines()), "")
    message = " ".join((exc.diag.message_primary or first_line or type(exc).__name__).split())
    position = str(exc.diag.statement_position or "")
    if sql is not None and position.isdigit():
        message += f" (line {sql[: int(position) - 1].count(chr(10)) + 1})"
    return message


if __name__ == "__main__":
    sys.exit(main())
