"""`/status`, the public status page, in headless Chromium against `python -m pika serve`: healthy
with a live session and a listener, and while PostgreSQL is stalled (SIGSTOP: it answers nothing).
Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from pika import __version__
from pika.http.pages import PAGE_CSP
from tests.browser import Dancer, Server, artifact, dj_live
from tests.conftest import PgCluster
from tests.procs import postmaster_pid, stalled
from tests.test_web import by, expect, wait_live


def test_the_status_page_is_public_short_cached_and_as_strict_as_every_page(site: Server) -> None:
    status, headers, body = site.get("/status")

    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "public, max-age=5"
    assert headers["Content-Security-Policy"] == PAGE_CSP
    assert b"<script" not in body and b"<style" not in body and b" style=" not in body


def test_the_status_page_shows_api_database_sessions_listeners_uptime_and_version(
    site: Server, phones: Any
) -> None:
    with dj_live(site.url, "status_live1", "DJ Status"):
        fan = phones()
        wait_live(fan.goto("/live/status_live1"))
        page = phones().goto("/status")

        expect(by(page, "overall")).to_have_attribute("data-state", "up")
        expect(by(page, "api")).to_have_text("operational")
        expect(by(page, "database")).to_have_text("connected")
        expect(by(page, "sessions")).to_have_text("1")
        expect(by(page, "listeners")).to_have_text("1")
        expect(by(page, "version")).to_have_text(__version__)
        expect(by(page, "uptime")).to_have_text(re.compile(r"^\d+[dhms]( \d+[dhms])?$"))
        page.screenshot(path=artifact("status-healthy.png"), full_page=True)


def test_the_status_page_says_the_database_is_unavailable_while_postgresql_is_stalled(
    browser: Any, site: Server, pg_cluster: PgCluster
) -> None:
    phone = Dancer(browser, site.url)
    try:
        with stalled(postmaster_pid(Path(conninfo_to_dict(pg_cluster.url)["host"]))):
            page = phone.goto("/status")

            expect(by(page, "overall")).to_have_attribute("data-state", "down")
            expect(by(page, "database")).to_have_text("unavailable")
            expect(by(page, "api")).to_have_text("operational")
            page.screenshot(path=artifact("status-database-stalled.png"), full_page=True)
        assert phone.errors == []
    finally:
        phone.close()
