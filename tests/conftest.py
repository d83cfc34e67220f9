"""Shared fixtures: one embedded PostgreSQL for the whole run, a fresh database per test.

Every test that touches data gets its own database, cloned from a migrated template
(`CREATE DATABASE … TEMPLATE`, ~50 ms), so tests never see each other's rows and need no
cleanup.  The PostgreSQL is the real one `pika` embeds (pgserver), on a Unix socket.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from pika.config import SQL_DIR, Settings
from pika.embedded import embedded_postgres
from pika.server import Running, serve
from tests.browser import Dancer, Server, chromium, running_server

_counter = itertools.count()


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
    """Settings for a server under test: its own database, any free port, short timers."""
    base = {"database_url": db_url, "port": 0, "dj_grace_seconds": 3.0, "log_level": "WARNING"}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
async def server(nursery: trio.Nursery, db_url: str) -> Running:
    """The real server (HTTP + /ws) on a free port, on its own fresh database."""
    return await nursery.start(serve, test_settings(db_url))


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
