"""The DJ console (/dj/console) in a real browser: Chromium against `python -m pika serve`.

The DJ software is a protocol client holding the account's token (tests/browser.py), or the DJ
agent itself (`python -m pika.dj`) following an m3u; the console
is a phone (390×844) that signs in and attaches to its session; dancers are other phones.
Screenshots go to test-artifacts/ (git-ignored; PIKA_TEST_ARTIFACTS moves them).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from tests.browser import Dancer, Server, artifact, dj_live
from tests.test_dj_sources import append
from tests.test_web import by, expect, wait_live

EMAIL, PASSWORD = "console@example.com", "correct horse battery"


def sign_up(site: Server, name: str = "DJ Console") -> str:
    body = {"email": EMAIL, "password": PASSWORD, "displayName": name}
    return site.post_json("/api/auth/register", body, {"X-Pika-Client": "pika-e2e"})["token"]


def signed_in_console(phone: Dancer) -> Any:
    page = phone.goto("/dj/console")
    by(page, "email").fill(EMAIL)
    by(page, "password").fill(PASSWORD)
    by(page, "signin-submit").click()
    return page


def test_the_console_attaches_runs_a_poll_and_an_announcement_and_ends_the_set(
    site: Server, phones: Any
) -> None:
    token = sign_up(site)
    with dj_live(site.url, "console_web1", token=token) as dj:
        dj.play("Quizás, Quizás, Quizás", "Osvaldo Farrés", bpm=118)
        console_phone = phones()
        console = signed_in_console(console_phone)
        expect(by(console, "console")).to_be_visible()
        wait_live(console)
        expect(by(console, "mode")).to_have_text("is live · console attached")
        expect(by(console, "track-title")).to_have_text("Quizás, Quizás, Quizás")
        expect(by(console, "share-link")).to_have_attribute("href", "/live/console_web1")
        assert console_phone.sent_types().count("ATTACH_SESSION") == 1
        assert "REGISTER_SESSION" not in console_phone.sent_types()  # the DJ's software keeps its seat

        dancer = phones().goto("/live/console_web1")
        wait_live(dancer)
        expect(by(console, "listener-count")).to_have_text("1 listener")
        by(dancer, "like-button").click()
        by(dancer, "tempo-faster").click()
        by(dancer, "thanks-button").click()
        expect(by(console, "track-likes")).to_have_text("1")
        expect(by(console, "tempo-faster")).to_have_text("1")
        expect(by(console, "thanks-count")).to_have_text("1")
        expect(by(console, "played-likes").first).to_have_text("♥ 1")

        by(console, "preset-0").click()
        expect(by(console, "poll-question-input")).to_have_value("What should come next?")
        by(console, "poll-start").click()
        expect(by(dancer, "poll-question")).to_have_text("What should come next?")
        by(dancer, "poll-option-1").click()
        expect(by(console, "poll-count-1")).to_have_text("1 · 100%")
        expect(by(console, "poll-status")).to_contain_text("1 vote")
        assert dj.wait_for(lambda m: m["type"] == "POLL_UPDATE")["votes"] == [0, 1, 0]

        by(console, "jump-announce").click()  # one thumb: the bottom bar jumps to each tool
        expect(by(console, "announce-message")).to_be_in_viewport()
        by(console, "announce-message").fill("Water is free at the bar")
        by(console, "announce-send").click()
        expect(by(dancer, "announcement-message")).to_have_text("Water is free at the bar")
        expect(by(console, "announcement-message")).to_have_text("Water is free at the bar")
        console.evaluate("() => window.scrollTo(0, 0)")
        console.screenshot(path=artifact("console-390-top.png"))
        console.screenshot(path=artifact("console-390-full.png"), full_page=True)
        dancer.screenshot(path=artifact("console-390-dancer.png"))

        by(console, "announcement-cancel").click()
        expect(by(dancer, "announcement")).to_be_hidden()
        by(console, "poll-end").click()
        expect(by(console, "poll-status")).to_contain_text("“Slower” wins")
        expect(by(dancer, "poll-label")).to_have_text("Poll closed")

        dj.play("Bésame Mucho", "Consuelo Velázquez")  # the agent goes on sending tracks
        expect(by(console, "track-title")).to_have_text("Bésame Mucho")
        expect(by(console, "track-likes")).to_have_text("0")
        expect(by(console, "played-track")).to_have_count(2)

        by(console, "end-session").click()
        expect(by(console, "end-session")).to_have_text("Tap again to end it")
        by(console, "end-session").click()
        expect(by(console, "session-ended")).to_be_visible()
        expect(by(console, "ended-summary")).to_have_text("2 tracks · 1 like · 1 thank-you")
        expect(by(dancer, "session-ended")).to_be_visible()
        dj.wait_for(lambda m: m["type"] == "SESSION_ENDED", what="SESSION_ENDED")
        console.screenshot(path=artifact("console-390-ended.png"))


def test_the_console_attaches_to_a_set_the_agent_runs_and_the_agent_keeps_sending_tracks(
    site: Server, phones: Any, tmp_path: Path
) -> None:
    token = sign_up(site, "DJ Agent")
    playlist = tmp_path / "set.m3u"
    append(playlist, "#EXTM3U\n#EXTINF:200,Osvaldo Farrés - Quizás, Quizás, Quizás\n/m/q.mp3\n")
    command = [sys.executable, "-m", "pika.dj", "live", "--url", site.url, "--session", "console_agent1"]
    command += ["--source", "m3u", "--path", str(playlist), "--catch-up"]
    command += ["--queue", str(tmp_path / "q.sqlite")]
    env = {**os.environ, "PIKA_DJ_TOKEN": token}
    with subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as agent:
        try:
            dancer = phones().goto("/live/console_agent1")
            wait_live(dancer)
            expect(by(dancer, "track-title")).to_have_text("Quizás, Quizás, Quizás", timeout=30_000)
            console = signed_in_console(phones())
            wait_live(console)
            expect(by(console, "mode")).to_have_text("is live · console attached")
            expect(by(console, "track-title")).to_have_text("Quizás, Quizás, Quizás")

            by(console, "preset-0").click()
            by(console, "poll-start").click()
            by(dancer, "poll-option-1").click()
            expect(by(console, "poll-count-1")).to_have_text("1 · 100%")
            by(console, "announce-message").fill("Last dance in 5 minutes")
            by(console, "announce-send").click()
            expect(by(dancer, "announcement-message")).to_have_text("Last dance in 5 minutes")

            append(playlist, "#EXTINF:180,Consuelo Velázquez - Bésame Mucho\n/m/b.mp3\n")
            expect(by(console, "track-title")).to_have_text("Bésame Mucho", timeout=30_000)
            expect(by(dancer, "track-title")).to_have_text("Bésame Mucho")
            expect(by(console, "played-track")).to_have_count(2)
            console.evaluate("() => window.scrollTo(0, 0)")
            console.screenshot(path=artifact("console-390-agent.png"))
            assert agent.poll() is None  # the console ran the crowd beside the agent, never displacing it
        finally:
            agent.terminate()
            agent.wait(timeout=30)


def test_without_the_agent_the_dj_goes_live_from_the_console_and_types_the_tracks(
    site: Server, phones: Any
) -> None:
    sign_up(site, "DJ By Hand")
    login_phone = phones()
    login = login_phone.goto("/dj/login")
    by(login, "email").fill(EMAIL)
    by(login, "password").fill(PASSWORD)
    by(login, "submit").click()
    expect(by(login, "token-panel")).to_contain_text("python -m pika.dj")
    assert "DJ app" not in by(login, "token-panel").inner_text()
    by(login, "console-link").click()  # the console opens signed in (this tab's token)
    console = login
    expect(by(console, "not-live")).to_be_visible()
    expect(by(console, "account-name")).to_have_text("DJ By Hand")
    console.screenshot(path=artifact("console-390-not-live.png"))
    by(console, "go-live").click()
    wait_live(console)
    expect(by(console, "mode")).to_have_text("is live from this phone")
    expect(by(console, "share-link")).to_have_attribute("href", re.compile(r"^/live/pika_[A-Za-z0-9_-]+$"))
    live_path = by(console, "share-link").get_attribute("href")
    qr = by(console, "qr")
    expect(qr).to_have_attribute("src", f"{live_path}/qr.svg")
    console.wait_for_function("() => document.querySelector('[data-testid=qr]').naturalWidth > 0")
    assert qr.bounding_box()["width"] >= 300  # large enough to photograph from a phone

    dancer = phones().goto(live_path)
    wait_live(dancer)
    by(console, "manual-artist").fill("Celia Cruz")
    by(console, "manual-title").fill("La Vida Es Un Carnaval")
    by(console, "manual-play").click()
    expect(by(dancer, "track-title")).to_have_text("La Vida Es Un Carnaval")
    expect(by(console, "track-title")).to_have_text("La Vida Es Un Carnaval")
    by(console, "manual-title").fill("   ")
    by(console, "manual-artist").fill("Someone")
    by(console, "manual-play").click()
    expect(by(console, "toast")).to_have_text("Enter the artist and the title")
    console.screenshot(path=artifact("console-390-by-hand.png"))

    console.reload()  # a phone reloads the tab: it takes its own session back, as its DJ
    expect(by(console, "mode")).to_have_text("is live from this phone")
    expect(by(console, "track-title")).to_have_text("La Vida Es Un Carnaval")
    expect(by(console, "listener-count")).to_have_text("1 listener")
    registers = [f for f in login_phone.sent if f.get("type") == "REGISTER_SESSION"]
    assert [f.get("sessionId") for f in registers] == [None, live_path.rsplit("/", 1)[1]]
    assert "ATTACH_SESSION" not in login_phone.sent_types()
    by(console, "manual-artist").fill("Héctor Lavoe")
    by(console, "manual-title").fill("El Cantante")
    by(console, "manual-play").click()
    expect(by(dancer, "track-title")).to_have_text("El Cantante")
    expect(by(dancer, "session-ended")).to_be_hidden()


def test_the_console_says_when_the_database_is_unavailable(site: Server, phones: Any, db_url: str) -> None:
    token = sign_up(site)
    with dj_live(site.url, "console_web3", token=token):
        console = signed_in_console(phones())
        expect(by(console, "listener-count")).to_be_visible()  # attached
        expect(by(console, "db-down")).to_be_hidden()
        dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
        with psycopg.connect(db_url, autocommit=True) as pg:
            others = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            frozen = [pid for (pid,) in pg.execute(others, (dbname,)).fetchall()]
        assert frozen, "the server holds no connection to its database"
        for pid in frozen:  # the server's connections stop answering; nothing fails outright
            os.kill(pid, signal.SIGSTOP)
        try:
            expect(by(console, "db-down")).to_be_visible(timeout=20_000)  # /health answers 503
            console.screenshot(path=artifact("console-390-db-down.png"))
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        expect(by(console, "db-down")).to_be_hidden(timeout=20_000)
        expect(by(console, "connection-status")).to_have_attribute("data-state", "live")
