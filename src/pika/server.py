"""The server's lifecycle: database, migrations, the live hub, HTTP (hypercorn, with the plain
ASGI `/ws`) and the live listener (the fast `/ws` on its own port).

`serve()` is the one entry point, used by `python -m pika serve` and by the tests (which run it
in their own nursery on free ports).  Everything it starts stops in reverse order: sockets close
with 1012 first (clients reconnect and resume), live sessions stay live in PostgreSQL, then the
pool closes and the embedded PostgreSQL stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from pika import __version__, metrics
from pika.admin_channel import AdminChannel
from pika.bus.ownership import ownership
from pika.config import Settings
from pika.db import Database, open_database
from pika.embedded import embedded_postgres
from pika.errors import MigrationRefused
from pika.http.app import create_app
from pika.live.endpoint import LiveEndpoint
from pika.live.hub import Hub
from pika.live.listener import LiveListener
from pika.live.relay import Relay
from pika.migrate import Migrator
from pika.queries import load_queries
from pika.sockets import Listeners

log = logging.getLogger("pika.server")


@dataclass
class Running:
    """What `serve` reports once it accepts connections (tests use it to reach the server)."""

    url: str  # http://host:port
    port: int
    live_url: str  # ws://host:live_port/ws, the live listener
    live_port: int
    hub: Hub
    db: Database
    database_url: str
    shutdown: trio.Event  # set it to stop the server gracefully


async def serve(
    settings: Settings,
    *,
    migrate: bool = True,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
    listeners: Listeners | None = None,
    worker: int = 0,
) -> None:
    """Run Pika! until `shutdown` is set (or the task is cancelled).  `listeners`: sockets made
    for it (worker number `worker` of `serve --workers N`); else it binds PIKA_HOST's ports."""
    if shutdown is None:
        shutdown = trio.Event()
    metrics.PROCESS_INFO.labels(settings.process, str(os.getpid())).set(1)
    async with database_url(settings) as url:
        await migrate_database(url, settings, apply=migrate)
        queries = load_queries(settings.sql_dir / "queries")
        async with (
            open_database(url, queries, settings.db_pool_size, settings.db_deadline_seconds) as db,
            ownership(url, queries) as owner,
            trio.open_nursery() as nursery,
        ):
            hub = Hub(settings, db, owner)
            hub.relay = relay = Relay(hub, url, settings.process)
            hub.forward = relay.forward
            await nursery.start(hub.run)
            await nursery.start(relay.run)
            await nursery.start(AdminChannel(url, hub).run)  # actions pending at start come first
            listener = LiveListener(settings, hub, listeners.live if listeners else None)
            live_port = await nursery.start(listener.run)
            web_db = db.lane(settings.db_pool_size // 2)  # the live rooms keep the other half
            app = _Dispatcher(LiveEndpoint(settings, hub), create_app(settings, web_db, hub, live_port))
            async with trio.open_nursery() as http:
                http_sock = listeners.http if listeners else None
                binds = await http.start(_serve_http, app, settings, hub, shutdown, http_sock, worker)
                port = listener.http_port = int(binds[0].rsplit(":", 1)[1])
                live_url = f"ws://{binds[0].split('://', 1)[1].rsplit(':', 1)[0]}:{live_port}/ws"
                log.info(
                    "serving",
                    extra={"fields": {"url": binds[0], "live_url": live_url, "version": __version__}},
                )
                task_status.started(Running(binds[0], port, live_url, live_port, hub, db, url, shutdown))
            # hypercorn has returned: every socket was closed with 1012; live sessions stay live.
            nursery.cancel_scope.cancel()


async def _serve_http(
    app: _Dispatcher,
    settings: Settings,
    hub: Hub,
    shutdown: trio.Event,
    sock: socket.socket | None,
    worker: int,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = HypercornConfig()
    # hypercorn takes over a socket of ours by its file descriptor (and closes it)
    config.bind = [f"fd://{sock.detach()}" if sock else f"{settings.host}:{settings.port}"]
    if settings.metrics_port is not None:  # each worker's own port, for a scraper to reach them all
        config.bind.append(f"{settings.host}:{settings.metrics_port + worker}")
    config.websocket_max_message_size = settings.max_frame_bytes
    # No protocol pings on the plain ASGI /ws: hypercorn 0.18's ping task races its own close
    # (`send_eof` beside a ping's `send_all`) and the BusyResourceError ends the whole HTTP server.
    # Its clients stay open by sending (pages PING every 10 s); the silent ones are closed here:
    config.websocket_ping_interval = None
    config.read_timeout = int(settings.idle_timeout)
    config.graceful_timeout = 2.0
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")

    async def stopping() -> None:
        await shutdown.wait()
        log.info("shutting down: closing connections with 1012, sessions stay live")
        await hub.shutdown()  # close every socket with 1012 before hypercorn stops listening

    await hypercorn_serve(app, config, shutdown_trigger=stopping, task_status=task_status, mode="asgi")


class _Dispatcher:
    """The ASGI app: `/ws` upgrades go to the live endpoint, everything else to Quart."""

    def __init__(self, live: LiveEndpoint, http: object) -> None:
        self.live = live
        self.http = http

    async def __call__(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await self.live(scope, receive, send)
        else:
            await self.http(scope, receive, send)  # type: ignore[operator]


@contextlib.asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured URL, or the embedded PostgreSQL's (started here, stopped on exit)."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = embedded_postgres(settings.pgdata)
    url = await trio.to_thread.run_sync(embedded.__enter__)
    try:
        yield url
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(embedded.__exit__, None, None, None)


async def migrate_database(url: str, settings: Settings, *, apply: bool) -> None:
    migrator = Migrator(url, settings.sql_dir / "migrations", lock_timeout=settings.migration_lock_timeout)
    if apply:
        applied = await trio.to_thread.run_sync(migrator.up)
        for name in applied:
            log.info("migration applied", extra={"fields": {"file": name}})
        return
    pending = [name for name, state in await trio.to_thread.run_sync(migrator.status) if state != "applied"]
    if pending:
        raise MigrationRefused(
            f"--no-migrate, but migrations are not applied: {', '.join(pending)} "
            "(run: python -m pika.migrate up)"
        )
