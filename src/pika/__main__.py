"""`python -m pika serve | migrate …`: the command line.

Errors a person can fix (bad setting, unreachable database, refused migration) end the
process with one line and the error's exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import TypeVar

import trio

from pika import __version__, logs
from pika.config import Settings, describe
from pika.errors import PikaError
from pika.sockets import Listeners

log = logging.getLogger("pika")
E = TypeVar("E", bound=BaseException)
SUPERVISOR_CHECK_SECONDS = 1.0


def settings_help() -> str:
    lines = ["settings (environment variables):"]
    for group in ("server", "limits"):
        lines.append(f"  [{group}]")
        for name, default, text, g in describe():
            if g == group:
                lines.append(f"  {name:<32} {text} (default: {default or 'unset'})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pika",
        description="Pika! server: the DJ's set, live on every dancer's phone.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pika {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the HTTP + WebSocket server",
        description="Run the server. With no PIKA_DATABASE_URL it starts an embedded PostgreSQL in "
        "PIKA_DATA_DIR/pgdata and applies pending migrations first.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (overrides PIKA_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (overrides PIKA_PORT)")
    serve.add_argument("--live-port", type=int, help="live WebSocket port (overrides PIKA_LIVE_PORT)")
    serve.add_argument(
        "--workers",
        type=_workers,
        help="processes sharing the ports: a number, or auto = one per core (overrides PIKA_WORKERS)",
    )
    # a worker of `--workers N`, started by the supervisor (pika/supervisor.py), not by people:
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--http-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--live-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument(
        "--no-migrate", action="store_true", help="do not apply migrations; refuse to start if any is pending"
    )
    sub.add_parser("migrate", help="the migration runner (python -m pika migrate --help)", add_help=False)
    sub.add_parser(
        "admin",
        help="incident tooling: revoke tokens, reset passwords (python -m pika admin --help)",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["migrate"]:
        from pika.migrate import main as migrate_main

        return migrate_main(argv[1:])
    if argv[:1] == ["admin"]:
        from pika.admin import main as admin_main

        return admin_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            host=args.host, port=args.port, live_port=args.live_port, workers=args.workers
        )
        logs.setup(settings.log_level, settings.log_format)
        if args.worker is not None:
            from pika.supervisor import worker_listeners

            listeners = worker_listeners(settings, args.http_fd, args.live_fd)
            trio.run(_serve_until_signalled, settings, False, listeners, args.worker)
        elif settings.workers > 1:
            from pika.supervisor import Supervisor

            trio.run(Supervisor(settings, migrate=not args.no_migrate).run)
        else:
            trio.run(_serve_until_signalled, settings, not args.no_migrate)
    except BaseException as exc:  # trio wraps errors from nurseries in exception groups
        if _leaf(exc, KeyboardInterrupt):
            return 0
        error = _leaf(exc, PikaError)
        if error is None:
            raise
        print(f"pika: {error}", file=sys.stderr)
        return error.exit_code
    return 0


def _workers(raw: str) -> int:
    try:
        return Settings.from_env({"PIKA_WORKERS": raw}).workers
    except PikaError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("PIKA_WORKERS=", "")) from None


def _leaf(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of `kind` in `exc` or, for a group, anywhere inside it."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _leaf(inner, kind)
            if found is not None:
                return found
    return None


async def _serve_until_signalled(
    settings: Settings, migrate: bool, listeners: Listeners | None = None, worker: int = 0
) -> None:
    """Serve until SIGINT or SIGTERM, with the interpreter tuned for thousands of sockets: a
    process-wide choice, made here and not by `serve()`, so embedders and tests keep theirs."""
    from pika import interpreter
    from pika.server import serve

    shutdown = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def watch() -> None:
            async for signum in signals:
                log.info("signal received", extra={"fields": {"signal": signal.Signals(signum).name}})
                shutdown.set()
                return

        async def run(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
            await serve(
                settings,
                migrate=migrate,
                shutdown=shutdown,
                task_status=task_status,
                listeners=listeners,
                worker=worker,
            )
            nursery.cancel_scope.cancel()

        interpreter.tune()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            if listeners is not None:  # a worker of `--workers N`
                nursery.start_soon(_stop_without_supervisor, os.getppid(), shutdown)
            await nursery.start(run)
            interpreter.freeze_startup()


async def _stop_without_supervisor(supervisor: int, shutdown: trio.Event) -> None:
    """A worker whose supervisor died (SIGKILL) stops too, rather than serve on unsupervised."""
    while os.getppid() == supervisor:
        await trio.sleep(SUPERVISOR_CHECK_SECONDS)
    log.warning("supervisor gone: stopping", extra={"fields": {"supervisor": supervisor}})
    shutdown.set()


if __name__ == "__main__":
    sys.exit(main())
