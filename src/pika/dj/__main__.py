"""`python -m pika.dj live --session ID --source SOURCE …`: put the DJ software's set on the dancers' phones.

Parses the command line, opens the source and the queue file, and runs the agent until Ctrl-C,
SIGTERM or `end`. The DJ's token comes only from PIKA_DJ_TOKEN, never from a flag that would land
in `ps` or the shell's history. Mistakes are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from pika.client import DEFAULT_URL, TOKEN_ENV, ClientError, tolerate_any_text, ws_url
from pika.dj.agent import Agent, AgentConfig
from pika.dj.crowd import Crowd
from pika.dj.outbox import Outbox, default_queue_path
from pika.dj.sources import SOURCES, SourceError, open_source
from pika.dj.view import PROG, View
from pika.protocol import SESSION_ID

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}", description="Pika! DJ agent: follow your DJ software and keep the set live."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{live}")
    live = commands.add_parser(
        "live",
        help="go live and broadcast every track the DJ software plays",
        description=(
            "Register the session, then broadcast each track the DJ software reports as played. Tracks "
            "wait in an on-disk queue until the server confirms them, so nothing is lost offline. Ctrl-C "
            f"leaves the session live for its grace period (start again to resume). Token: ${TOKEN_ENV}."
        ),
        epilog=f"example: {TOKEN_ENV}=pk_dj_… python -m {PROG} live --session friday_1 --source virtualdj",
    )
    live.add_argument("--session", required=True, metavar="ID", help="session id: 8-64 of A-Z a-z 0-9 _ -")
    live.add_argument(
        "--name", metavar="NAME", help="DJ name for an anonymous session (default: your account's)"
    )
    live.add_argument(
        "--url", default=DEFAULT_URL, help=f"server address, ws(s):// or http(s):// (default {DEFAULT_URL})"
    )
    live.add_argument(
        "--source", required=True, metavar="SOURCE", help=f"the DJ software: {', '.join(SOURCES)}"
    )
    live.add_argument(
        "--path", type=Path, metavar="PATH", help="its history file or folder (default: its usual place)"
    )
    live.add_argument(
        "--catch-up", action="store_true", help="also send the track playing when the agent starts"
    )
    live.add_argument(
        "--queue", type=Path, metavar="FILE", help=f"queue file (default {default_queue_path()})"
    )
    live.add_argument("--end-on-exit", action="store_true", help="end the session on Ctrl-C or SIGTERM")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tolerate_any_text(sys.stdout)
    try:
        if not SESSION_ID.fullmatch(args.session):
            raise ClientError(
                f"--session {args.session!r}: must be 8-64 characters of A-Z a-z 0-9 _ -", EXIT_USAGE
            )
        url = ws_url(args.url)
        source = open_source(args.source, args.path, started_at=time.time(), catch_up=args.catch_up)
        outbox = Outbox(args.queue or default_queue_path())
    except (ClientError, SourceError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    config = AgentConfig(
        session_id=args.session,
        ws_url=url,
        dj_name=args.name,
        token=os.environ.get(TOKEN_ENV) or None,
        end_on_exit=args.end_on_exit,
        read_commands=args.source != "stdin",
    )
    agent = Agent(config, outbox, source, View(Crowd(args.session)))
    try:
        return trio.run(agent.run)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; queued tracks are kept for the next start", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        outbox.close()


if __name__ == "__main__":
    sys.exit(main())
