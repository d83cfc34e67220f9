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
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from pika.config import SQL_DIR, Settings
from pika.embedded import embedded_postgres
from pika.server import Running, serve
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


#: Modules whose tests speak the wire protocol: each of their tests using `server` runs twice,
#: on the live listener and on the plain ASGI `/ws` of the HTTP port (PROTOCOL.md §1: both speak
#: the whole contract).  Tests elsewhere use the live listener, as pages do.
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if "transport" in metafunc.fixturenames and module in BOTH_TRANSPORTS:
        metafunc.parametrize("transport", ["live", "asgi"], indirect=True)


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    """Which `/ws` the test's clients open: "live" (the live listener) or "asgi"."""
    return getattr(request, "param", "live")


@pytest.fixture
async def start_server(nursery: trio.Nursery, db_url: str, transport: str) -> AsyncIterator[StartServer]:
    """`await start_server(**settings)`: the real server on free ports and a fresh database,
    its test clients on the test's transport."""
    plain: list[str] = []

    async def start(**overrides: object) -> Running:
        running: Running = await nursery.start(serve, test_settings(db_url, **overrides))
        if transport == "asgi":
            ASGI_TRANSPORT.add(running.url)
            plain.append(running.url)
        return running

    yield start
    ASGI_TRANSPORT.difference_update(plain)


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
