"""Shared fixtures: one embedded PostgreSQL for the whole run, a fresh database per test.

Every test that touches data gets its own database, cloned from a migrated template
(`CREATE DATABASE … TEMPLATE`, ~50 ms), so tests never see each other's rows and need no
cleanup.  The PostgreSQL is the real one `pika` embeds (pgserver), on a Unix socket.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from pika.config import SQL_DIR, Settings
from pika.embedded import embedded_postgres
from pika.live.hub import Hub
from pika.server import Running, serve
from tests.balancer import Balancer
from tests.browser import Dancer, Server, chromium, running_server
from tests.wsclient import ASGI_TRANSPORT

_counter = itertools.count()
StartServer = Callable[..., Awaitable[Running]]


class PgCluster:
    """The embedded PostgreSQL server and helpers to make databases on it."""

    def __init__(self, url: str) -> None:
        self.url = url  # .../postgres?host=<socket dir>

    def url_for(self, dbname: str) -> str:
        base, _, query = self.url.partition("?")
        return base.rsplit("/", 1)[0] + "/" + dbname + ("?" + query if query else "")

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql)

    def create(self, template: str | None = None) -> str:
        name = f"t_{os.getpid()}_{next(_counter)}"
        self.admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url_for(name)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    with (
        tempfile.TemporaryDirectory(prefix="pika-test-") as tmp,
        embedded_postgres(Path(tmp) / "pgdata") as url,
    ):
        yield PgCluster(url)


@pytest.fixture(scope="session")
def migrated_template(pg_cluster: PgCluster) -> str:
    """A database with every migration applied, used as a template; returns its name."""
    from pika.migrate import Migrator

    name = "pika_template"
    pg_cluster.admin(f'CREATE DATABASE "{name}"')
    Migrator(pg_cluster.url_for(name), SQL_DIR / "migrations").up()
    return name


@pytest.fixture
def empty_db(pg_cluster: PgCluster) -> str:
    """URL of a new, empty database."""
    return pg_cluster.create()


@pytest.fixture
def db_url(pg_cluster: PgCluster, migrated_template: str) -> str:
    """URL of a new database with the current schema."""
    return pg_cluster.create(template=migrated_template)


def test_settings(db_url: str, **overrides: object) -> Settings:
    """Settings for a server under test: its own database, any free ports, short timers."""
    base = {
        "database_url": db_url,
        "port": 0,
        "live_port": 0,
        "dj_grace_seconds": 3.0,
        "log_level": "WARNING",
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


#: Modules whose tests speak the wire protocol: each of their tests using `server` runs three
#: times: on the live listener, on the plain ASGI `/ws` of the HTTP port (PROTOCOL.md §1: both
#: speak the whole contract), and on "pair" (issue 17: two servers sharing one database behind a
#: round-robin balancer, so a test's DJ and its dancers mostly sit on different processes).  Tests
#: elsewhere use the live listener, as pages do.  On the pair, a test about one process's own
#: counters is `pair_excluded` with its reason.  The pair variant takes less than the live one
#: (90 s against 124 s on 2 loaded cores): its 64 KiB frame tests, 5 s each in a close deadline,
#: are left to [live].
BOTH_TRANSPORTS = {
    "test_client",
    "test_fuzz_ws",
    "test_interactions",
    "test_listener",
    "test_live",
    "test_owned_sessions",
    "test_resume",
    "test_security",
    "test_server",
    "test_sessions",
}


#: A `pair_excluded` reason that is only time: the test would pass, but checks one connection's
#: framing behind a balancer that copies bytes, and spends 5 s in it.
FRAME_LIMIT = "one connection's frame limit, as on [live]; each waits out the 5 s close deadline"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pair_excluded(reason): not run on the pair: one process's internals")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "transport" in metafunc.fixturenames and module in BOTH_TRANSPORTS:
        metafunc.parametrize("transport", ["live", "asgi", *_on_pair(metafunc.definition)], indirect=True)


def _on_pair(test: pytest.Function) -> list[str]:
    """The "pair" variant of `test`: none when excluded."""
    return [] if test.get_closest_marker("pair_excluded") else ["pair"]


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    """Which `/ws` the test's clients open: "live" (the live listener), "asgi", or "pair": two
    servers on one database behind a round-robin balancer (tests/balancer.py, issue 17)."""
    return getattr(request, "param", "live")


@pytest.fixture
async def start_server(nursery: trio.Nursery, db_url: str, transport: str) -> AsyncIterator[StartServer]:
    """`await start_server(**settings)`: the real server on free ports and a fresh database,
    its test clients on the test's transport."""
    plain: list[str] = []

    async def start(**overrides: object) -> Running:
        if transport == "pair":
            return await start_pair(nursery, db_url, **overrides)
        running: Running = await nursery.start(serve, test_settings(db_url, **overrides))
        if transport == "asgi":
            ASGI_TRANSPORT.add(running.url)
            plain.append(running.url)
        return running

    yield start
    ASGI_TRANSPORT.difference_update(plain)


async def start_pair(nursery: trio.Nursery, db_url: str, **overrides: object) -> Running:
    """Two servers on one database (each its own hub, relay and ownership connection, in this
    trio loop) behind one balancer for their live ports and one for their HTTP ports; pages
    are sent to the live balancer (`public_live_url`).  What it returns names the balancers,
    and one shutdown event stops both servers.  Connections alternate from the first server:
    a test's first WebSocket (usually its DJ) lands on the first, its second on the other."""
    live, http = await Balancer.bind(), await Balancer.bind()
    shutdown = trio.Event()
    # behind a proxy, as README's "One public origin" configures it
    public = {
        "public_live_url": f"ws://127.0.0.1:{live.port}/ws",
        "public_origin": f"http://127.0.0.1:{http.port}",
    }
    settings = test_settings(db_url, **{**public, **overrides})
    pair: list[Running] = [await nursery.start(partial(serve, settings, shutdown=shutdown)) for _ in range(2)]
    await nursery.start(live.run, [running.live_port for running in pair])
    await nursery.start(http.run, [running.port for running in pair])
    first = pair[0]
    return replace(
        first,
        url=f"http://127.0.0.1:{http.port}",
        port=http.port,
        live_url=f"ws://127.0.0.1:{live.port}/ws",
        live_port=live.port,
        hub=PairHubs(pair),  # type: ignore[arg-type]  # no one hub serves the pair's clients
    )


class PairHubs:
    """`server.hub` of a pair: its settings (the same in both), or `each` hub; anything else a
    test asks one hub is a question about one process, which the pair cannot answer."""

    def __init__(self, pair: list[Running]) -> None:
        self.each = [running.hub for running in pair]
        self.settings = self.each[0].settings

    def __getattr__(self, name: str) -> object:
        raise AttributeError(f"hub.{name}: one process's internals, not the pair's (PairHubs.each)")


def hubs(running: Running) -> list[Hub]:
    """The hub of every process serving `running`'s clients: its own, or both of a pair."""
    return running.hub.each if isinstance(running.hub, PairHubs) else [running.hub]


def hub_of(running: Running, session_id: str) -> Hub:
    """The hub of the process that owns (decides for) the live session `session_id`."""
    return next(hub for hub in hubs(running) if session_id in hub.rooms)


@pytest.fixture
async def server(start_server: StartServer) -> Running:
    """The real server (HTTP and both `/ws`) on free ports, on its own fresh database."""
    return await start_server()


# -- the browser tests (tests/browser.py): Chromium, `python -m pika serve`, phones -------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Server]:
    """`python -m pika serve` on its own fresh database."""
    with running_server(db_url, tmp_path / "server.log") as server:
        yield server


@pytest.fixture
def phones(browser: Any, site: Server) -> Iterator[Any]:
    """`phones()` opens a new phone; all are closed after the test, which fails on a JS error."""
    opened: list[Dancer] = []

    def open_phone(**kwargs: Any) -> Dancer:
        dancer = Dancer(browser, site.url, **kwargs)
        opened.append(dancer)
        return dancer

    yield open_phone
    errors = [e for d in opened for e in d.errors]
    for dancer in opened:
        dancer.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def rows(running: Running, sql: str, *params: object) -> list[tuple]:
    """What the server under test has stored: run `sql` on its database."""
    with psycopg.connect(running.database_url) as conn:
        return conn.execute(sql, params).fetchall()
