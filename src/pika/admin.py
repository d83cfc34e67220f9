"""`python -m pika.admin`: account and session chores for the operator, straight on the database.

Revoke a DJ's tokens, reset a password, list tokens (never their digests), end a session by hand,
stop an embedded PostgreSQL that a crashed server left running; and the operator's tasks of
`pika.ops`: the telemetry report, backup and restore, and retention's prune on demand.  A running
server is told of each change through `admin_actions` and NOTIFY (pika/admin_channel.py), at once
or at its next start.
The database comes from the same settings as the server (`PIKA_DATABASE_URL`, else the embedded
PostgreSQL in `PIKA_DATA_DIR`).  Exit 0 done, 1 no such account/session or bad input, 2 database or
settings trouble — always with one line on stderr.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable
from typing import Any

import psycopg

from pika.config import Settings
from pika.db import Tx, connect_sync
from pika.embedded import stop_embedded
from pika.errors import PikaError
from pika.migrate import _database_url as database_url
from pika.ops.cli import OPS_COMMANDS, add_ops_parsers
from pika.ops.table import aligned, when
from pika.queries import load_queries, query
from pika.security.passwords import hash_password_blocking

AUTH_DJ_BY_EMAIL = query("auth_dj_by_email")
AUTH_SET_PASSWORD_HASH = query("auth_set_password_hash")
ADMIN_REVOKE_TOKENS = query("admin_revoke_tokens")
ADMIN_LIST_TOKENS = query("admin_list_tokens")
ADMIN_END_SESSION = query("admin_end_session")
GET_SESSION = query("get_session")
ADMIN_INSERT_ACTION = query("admin_insert_action")

PASSWORD_MIN, PASSWORD_MAX = 8, 128


class AdminRefused(PikaError):
    """No such account or session, or input the command cannot use (exit code 1)."""

    exit_code = 1


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        new_password = _read_password(sys.stdin) if getattr(args, "stdin", False) else None
        settings = Settings.from_env(database_url=args.database_url)
        if args.command == "stop-embedded":
            print(_stop_embedded(settings))
            return 0
        queries = load_queries(settings.sql_dir / "queries")
        with database_url(settings) as url:
            if args.command in OPS_COMMANDS:
                lines = OPS_COMMANDS[args.command](url, args, settings, queries)
            else:
                with connect_sync(url, autocommit=True) as conn:
                    lines = COMMANDS[args.command](Tx(conn, queries), args, new_password)
        for line in lines:
            print(line)
        return 0
    except PikaError as exc:
        print(f"pika.admin: {exc}", file=sys.stderr)
        return exc.exit_code
    except psycopg.Error as exc:
        print(f"pika.admin: database error: {_pg_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# -- commands: each returns the lines to print --------------------------------------------------


def revoke_tokens(tx: Tx, args: argparse.Namespace, _: str | None) -> list[str]:
    dj = _dj(tx, args.email)
    count = tx.execute(ADMIN_REVOKE_TOKENS, dj_id=dj["id"])
    tx.one(ADMIN_INSERT_ACTION, action="revoke_tokens", session_id=None, dj_id=dj["id"])
    return [
        f"revoked {count} token{'s' if count != 1 else ''} of {dj['email']}; "
        "a running server closes their live connections (4003)"
    ]


def reset_password(tx: Tx, args: argparse.Namespace, new_password: str | None) -> list[str]:
    dj = _dj(tx, args.email)
    password = new_password or secrets.token_urlsafe(12)
    tx.execute(AUTH_SET_PASSWORD_HASH, dj_id=dj["id"], password_hash=hash_password_blocking(password))
    tx.one(ADMIN_INSERT_ACTION, action="reset_password", session_id=None, dj_id=dj["id"])
    if new_password is not None:
        return [f"password of {dj['email']} set; existing tokens still work (revoke-tokens ends them)"]
    return [
        f"new password of {dj['email']}: {password}",
        "give it to the DJ privately; existing tokens still work (revoke-tokens ends them)",
    ]


def list_tokens(tx: Tx, args: argparse.Namespace, _: str | None) -> list[str]:
    dj = _dj(tx, args.email)
    rows = tx.all(ADMIN_LIST_TOKENS, dj_id=dj["id"])
    if not rows:
        return [f"{dj['email']} has no tokens"]
    table = [("id", "name", "created", "last used", "state")]
    for row in rows:
        state = "active" if row["revoked_at"] is None else f"revoked {when(row['revoked_at'])}"
        table.append((str(row["id"]), row["name"], when(row["created_at"]), when(row["last_used_at"]), state))
    return aligned(table)


def end_session(tx: Tx, args: argparse.Namespace, _: str | None) -> list[str]:
    if tx.one(ADMIN_END_SESSION, session_id=args.session_id) is not None:
        tx.one(ADMIN_INSERT_ACTION, action="end_session", session_id=args.session_id, dj_id=None)
        return [f"session {args.session_id} ended (reason: admin); a running server ends it now"]
    row = tx.one(GET_SESSION, session_id=args.session_id)
    if row is None:
        raise AdminRefused(f"no session with id {args.session_id!r}")
    raise AdminRefused(
        f"session {args.session_id} already ended at {when(row['ended_at'])} ({row['end_reason'] or '?'})"
    )


COMMANDS: dict[str, Callable[[Tx, argparse.Namespace, str | None], list[str]]] = {
    "revoke-tokens": revoke_tokens,
    "reset-password": reset_password,
    "list-tokens": list_tokens,
    "end-session": end_session,
}


# -- helpers ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pika.admin",
        description="Operator chores on Pika!'s database: DJ tokens, passwords, sessions.",
        epilog="Exit status: 0 done, 1 no such account/session or bad input, 2 database or settings error.",
    )
    parser.add_argument("--database-url", help="PostgreSQL URL (default: PIKA_DATABASE_URL, else embedded)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    revoke = sub.add_parser(
        "revoke-tokens",
        help="revoke every API token of a DJ (their apps must log in again; live ones are closed)",
    )
    revoke.add_argument("--email", required=True, help="the DJ account's email")
    reset = sub.add_parser(
        "reset-password",
        help="set a new password: prints a random one, or reads one line from stdin with --stdin",
    )
    reset.add_argument("--email", required=True, help="the DJ account's email")
    reset.add_argument(
        "--stdin", action="store_true", help=f"read the new password ({PASSWORD_MIN}-{PASSWORD_MAX} chars)"
    )
    listing = sub.add_parser("list-tokens", help="list a DJ's tokens: id, name, created, last used, state")
    listing.add_argument("--email", required=True, help="the DJ account's email")
    end = sub.add_parser(
        "end-session",
        help="end a session now (end_reason 'admin')",
        description="End a session (end_reason 'admin'): marked in the database, and a running "
        "server is told (PostgreSQL NOTIFY): its dancers get SESSION_ENDED at once. A server that "
        "is down finds the action when it starts.",
    )
    end.add_argument("session_id", metavar="ID", help="the session id")
    sub.add_parser(
        "stop-embedded",
        help="stop the embedded PostgreSQL a crashed server left running (in PIKA_DATA_DIR)",
        description="After kill -9 of the server its embedded PostgreSQL keeps running until the next "
        "start adopts it. Stop it here when no restart is wanted; refused while a server still uses it.",
    )
    add_ops_parsers(sub)
    return parser


def _stop_embedded(settings: Settings) -> str:
    if settings.database_url is not None:
        return "a database URL is set (PIKA_DATABASE_URL or --database-url): no embedded PostgreSQL to stop"
    return stop_embedded(settings.pgdata)


def _dj(tx: Tx, email: str) -> dict[str, Any]:
    row = tx.one(AUTH_DJ_BY_EMAIL, email=email.strip().lower())
    if row is None:
        raise AdminRefused(f"no DJ account with email {email.strip()!r}")
    return row


def _read_password(stream: Any) -> str:
    password = stream.readline().rstrip("\r\n")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AdminRefused(f"the password on stdin must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise AdminRefused("the password on stdin is not valid text (UTF-8)") from None
    return password


def _pg_message(exc: psycopg.Error) -> str:
    message = " ".join((exc.diag.message_primary or str(exc) or type(exc).__name__).split())
    if isinstance(exc, psycopg.errors.UndefinedTable):
        message += " (is the schema migrated? python -m pika.migrate up)"
    return message


if __name__ == "__main__":
    sys.exit(main())
