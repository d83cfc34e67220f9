"""The dancers' web app in a real browser (issue 7): Chromium against `python -m pika serve`.

Each test starts its own server on a fresh database and drives a DJ over the protocol
(tests/browser.py); dancers are browser contexts at phone size.  Every wait is bounded by a
Playwright timeout or the DJ helper's.  Screenshots go to test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from pika.http.pages import PAGE_CSP, WEB_DIR, qr_svg
from tests.browser import Dancer, Server, artifact, dj_live, running_server
from tests.procs import free_port
from tests.wsclient import ASGI_TRANSPORT

expect: Any
try:
    from playwright.sync_api import expect
except ImportError:  # reported by chromium(): the tests fail with the install hint

    def expect(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("playwright is not installed: `pip install playwright==1.65.2`")


def by(page: Any, testid: str) -> Any:
    return page.get_by_test_id(testid)


def wait_live(page: Any, timeout: float = 10_000) -> None:
    expect(by(page, "connection-status")).to_have_attribute("data-state", "live", timeout=timeout)


# -- serving ------------------------------------------------------------------------------------

PAGES = [
    "/",
    "/live",
    "/live/conf_page01",
    "/recap/conf_page01",
    "/dj/some-dj",
    "/dj/register",
    "/dj/login",
    "/dj/console",
]


def test_pages_are_html_with_no_cache_a_strict_csp_and_the_security_headers(site: Server) -> None:
    for path in [*PAGES, "/my-likes"]:
        status, headers, body = site.get(path)
        assert status == 200, path
        assert headers["Content-Type"] == "text/html; charset=utf-8", path
        assert headers["Cache-Control"] == "no-cache", path
        assert headers["Content-Security-Policy"] == PAGE_CSP, path
        assert "default-src 'self'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin", path
        html = body.decode()
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, f"inline script in {path}"
        assert "<style" not in html and " style=" not in html, f"inline style in {path}"
        assert re.search(r"\son[a-z]+=", html) is None, f"inline event handler in {path}"
        etag = headers["ETag"]
        assert site.get(path, {"If-None-Match": etag})[0] == 304


def test_assets_are_cached_for_an_hour_with_their_content_types(site: Server) -> None:
    _, _, body = site.get("/live/conf_page01")
    refs = re.findall(r'"(/static/[^"]+)"', body.decode())
    kinds = {
        ".css": "text/css; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".svg": "image/svg+xml",
        ".webmanifest": "application/manifest+json",
    }
    assert {Path(r.split("?")[0]).suffix for r in refs} == set(kinds)
    for ref in refs:
        assert re.search(r"\?v=[0-9a-f]{10}$", ref), ref  # a new release changes the URL
        status, headers, _ = site.get(ref)
        assert status == 200, ref
        assert headers["Content-Type"] == kinds[Path(ref.split("?")[0]).suffix], ref
        assert headers["Cache-Control"] == "public, max-age=3600", ref
        assert headers["X-Content-Type-Options"] == "nosniff", ref
        assert site.get(ref, {"If-None-Match": headers["ETag"]})[0] == 304
    for path in ["/static/nope.js", "/static/..%2Fpages.py"]:
        status, headers, _ = site.get(path)
        assert status == 404 and headers["Content-Type"].startswith("application/json"), path


def test_a_malformed_address_gets_a_not_found_page(site: Server) -> None:
    for path in ["/live/short", "/recap/bad!id_1234", "/dj/-x-", "/live/short/qr.svg"]:
        status, headers, body = site.get(path)
        assert status == 404, path
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert b'data-testid="not-found"' in body


def test_the_qr_code_of_a_live_page_is_an_svg_of_its_address(site: Server) -> None:
    status, headers, body = site.get("/live/conf_qr0001/qr.svg")
    assert status == 200
    assert headers["Content-Type"] == "image/svg+xml"
    assert headers["Cache-Control"] == "public, max-age=3600"
    url = f"{site.url}/live/conf_qr0001"
    assert body == qr_svg(url)
    svg = body.decode()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ')
    assert f"<title>{url}</title>" in svg
    assert_readable_symbol(drawn_modules(svg))


def test_web_files_use_no_inline_script_or_style() -> None:
    for path in WEB_DIR.glob("*.html"):
        html = path.read_text()
        assert "<style" not in html and " style=" not in html, path.name
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, path.name
    for path in (WEB_DIR / "static").glob("*.js"):
        source = path.read_text()
        assert "innerHTML" not in source and "eval(" not in source, path.name  # text stays text


# -- QR code ------------------------------------------------------------------------------------

FINDER = ["#######", "#.....#", "#.###.#", "#.###.#", "#.###.#", "#.....#", "#######"]


def drawn_modules(svg: str) -> list[str]:
    """The symbol as drawn on its white square: segno's dark path is runs of `h` moved by `m`,
    one row per y + .5. Rows of '#'/'.' without the quiet zone, after checking it is 4 modules."""
    side = int(re.search(r'viewBox="0 0 (\d+) \1"', svg).group(1))  # type: ignore[union-attr]
    path = re.search(r'stroke="#000" d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    grid = [["."] * side for _ in range(side)]
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for col in range(int(x), int(x) + int(a)):
                grid[int(y)][col] = "#"
            x += float(a)
    rows = ["".join(row) for row in grid]
    assert all(set(row) == {"."} for row in rows[:4] + rows[-4:])
    assert all(set(row[:4] + row[-4:]) == {"."} for row in rows)
    return [row[4:-4] for row in rows[4:-4]]


def assert_readable_symbol(grid: list[str]) -> None:
    """Finders, timing, the dark module and the format information (level M or better, valid BCH) are where
    a phone's camera looks for them."""
    n = len(grid)
    version = (n - 17) // 4
    assert n == 17 + 4 * version and version >= 1
    for top, left in ((0, 0), (0, n - 7), (n - 7, 0)):
        assert [row[left : left + 7] for row in grid[top : top + 7]] == FINDER
    assert grid[6][8 : n - 8] == "".join("#."[i % 2] for i in range(8, n - 8))  # timing row
    assert "".join(row[6] for row in grid[8 : n - 8]) == grid[6][8 : n - 8]  # timing column
    assert grid[n - 8][8] == "#"  # the dark module
    first = [grid[i][8] for i in (0, 1, 2, 3, 4, 5, 7, 8)] + [grid[8][c] for c in (7, 5, 4, 3, 2, 1, 0)]
    second = [grid[8][n - 1 - i] for i in range(8)] + [grid[n - 7 + i][8] for i in range(7)]
    assert first == second
    fmt = sum(1 << i for i, m in enumerate(first) if m == "#") ^ 0x5412
    assert fmt >> 13 != 0b01  # error correction M or better (segno raises it when the data leaves room)
    assert _bch_remainder(fmt, 0x537, 10) == 0


def _bch_remainder(value: int, generator: int, degree: int) -> int:
    for shift in range(value.bit_length() - degree - 1, -1, -1):
        if value >> (shift + degree) & 1:
            value ^= generator << shift
    return value


@pytest.mark.parametrize("length", [1, 40, 106, 213, 400])
def test_qr_codes_of_any_address_length_are_readable_symbols(length: int) -> None:
    data = ("https://pika.example/live/" + "x" * length)[:length]
    svg = qr_svg(data).decode()
    assert svg == qr_svg(data).decode()  # deterministic: the ETag holds
    assert_readable_symbol(drawn_modules(svg))


# -- the live player ----------------------------------------------------------------------------


def test_the_page_opens_the_live_websocket_the_server_names(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_where01"):
        dancer = phones()
        wait_live(dancer.goto("/live/conf_where01"))
        live_url = site.get_json("/api/live")["url"]
        assert live_url != site.url.replace("http://", "ws://") + "/ws"  # the live listener's port
        assert dancer.sockets == [live_url]


def test_a_page_that_cannot_reach_the_live_url_goes_live_on_its_own_origin(
    browser: Any, db_url: str, tmp_path: Path
) -> None:
    unreachable = f"ws://127.0.0.1:{free_port()}/ws"  # a proxy that routes /ws nowhere
    with running_server(db_url, tmp_path / "server.log", PIKA_PUBLIC_LIVE_URL=unreachable) as server:
        ASGI_TRANSPORT.add(server.url)  # the test's DJ, too, on the HTTP port's /ws
        dancer = Dancer(browser, server.url)
        try:
            with dj_live(server.url, "conf_where02"):
                wait_live(dancer.goto("/live/conf_where02"), timeout=20_000)
            assert dancer.sockets[0] == unreachable
            assert dancer.sockets[-1] == server.url.replace("http://", "ws://") + "/ws"
            assert dancer.errors == []
        finally:
            dancer.close()
            ASGI_TRANSPORT.discard(server.url)


def test_a_dancer_finds_the_live_dj_sees_the_track_and_likes_it(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_happy01", "DJ Happy") as dj:
        dj.play("Billie Jean", "Michael Jackson", bpm=117)
        dancer = phones()
        page = dancer.goto("/live")
        card = by(page, "session-card").filter(has_text="DJ Happy")
        expect(card).to_contain_text("Billie Jean")
        card.click()
        expect(page).to_have_url(re.compile(r"/live/conf_happy01$"))
        expect(by(page, "track-title")).to_have_text("Billie Jean")
        expect(by(page, "track-artist")).to_have_text("Michael Jackson")
        expect(by(page, "track-bpm")).to_have_text("117 BPM")
        expect(by(page, "dj-name")).to_have_text("DJ Happy")
        wait_live(page)
        expect(by(page, "listener-count")).to_have_text("1 listener")

        by(page, "like-button").click()
        like = dj.wait_for(lambda m: m["type"] == "LIKE_RECEIVED", 5, "LIKE_RECEIVED")
        assert like["payload"]["track"] == {"title": "Billie Jean", "artist": "Michael Jackson"}
        expect(by(page, "like-button")).to_have_attribute("aria-pressed", "true")

        for title in ("Smooth Criminal", "Thriller", "Beat It"):
            dj.play(title, "Michael Jackson")
            time.sleep(0.3)
        expect(by(page, "track-title")).to_have_text("Beat It")
        expect(by(page, "like-button")).to_have_attribute("aria-pressed", "false")
        expect(by(page, "history-title")).to_have_text(["Thriller", "Smooth Criminal", "Billie Jean"])
        by(page, "toast").wait_for(state="hidden", timeout=6000)
        page.screenshot(path=artifact("live-player-390x844.png"))
        assert page.viewport_size == {"width": 390, "height": 844}


def test_undoing_a_like_removes_it(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_undo001") as dj:
        dj.play("Undo Me", "Band")
        dancer = phones()
        page = dancer.goto("/live/conf_undo001")
        wait_live(page)
        by(page, "like-button").click()
        dj.wait_for(lambda m: m["type"] == "LIKE_RECEIVED", 5, "LIKE_RECEIVED")
        expect(by(page, "like-label")).to_have_text("Liked · undo")
        by(page, "like-button").click()
        expect(by(page, "like-button")).to_have_attribute("aria-pressed", "false")
        client = dancer.client_id()
        assert re.fullmatch(r"client_[0-9a-f]{32}", client)
        deadline = time.monotonic() + 5
        while site.get_json(f"/api/client/{client}/likes")["totalLikes"] != 0:
            assert time.monotonic() < deadline, "the like was not removed"
            time.sleep(0.1)
        assert "REMOVE_LIKE" in dancer.sent_types()


def test_tempo_votes_toggle_and_thanks_reach_the_dj(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_tempo01") as dj:
        dj.play("Tempo Song", "Band", bpm=180)
        page = phones().goto("/live/conf_tempo01")
        wait_live(page)
        faster = by(page, "tempo-faster")
        faster.click()
        expect(faster).to_have_attribute("aria-pressed", "true")
        dj.wait_for(lambda m: m["type"] == "TEMPO_FEEDBACK" and m["faster"] == 1, 5, "a faster vote")
        faster.click()  # tap again: take the vote back
        expect(faster).to_have_attribute("aria-pressed", "false")
        dj.wait_for(lambda m: m["type"] == "TEMPO_FEEDBACK" and m["total"] == 0, 5, "the vote cleared")
        by(page, "tempo-perfect").click()
        expect(by(page, "tempo-perfect")).to_have_attribute("aria-pressed", "true")
        dj.wait_for(lambda m: m["type"] == "TEMPO_FEEDBACK" and m["perfect"] == 1, 5, "a perfect vote")
        dj.play("Next Song", "Band")
        expect(by(page, "tempo-perfect")).to_have_attribute("aria-pressed", "false")  # a new track

        by(page, "thanks-button").click()
        thanks = dj.wait_for(lambda m: m["type"] == "REACTION_RECEIVED", 5, "REACTION_RECEIVED")
        assert thanks["reaction"] == "thank_you"
        expect(by(page, "toast")).to_contain_text("Thank-you sent to DJ Test")


def test_a_like_made_offline_reaches_the_dj_once_when_back_online(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_offl001") as dj:
        dj.play("Earlier Song", "Band")
        dj.play("Offline Song", "Band")
        dancer = phones()
        page = dancer.goto("/live/conf_offl001")
        wait_live(page)
        expect(by(page, "history-title")).to_have_text(["Earlier Song"])

        dancer.context.set_offline(True)
        expect(by(page, "connection-status")).to_have_attribute("data-state", "offline")
        expect(by(page, "offline")).to_be_visible()
        by(page, "like-button").click()
        by(page, "history-like").click()  # a second like while offline: both go in one message
        expect(by(page, "like-button")).to_have_attribute("data-queued", "true")
        time.sleep(1)
        assert dj.received("LIKE_RECEIVED") == []

        dancer.context.set_offline(False)
        dj.wait_for(lambda m: m["type"] == "LIKE_RECEIVED", 10, "LIKE_RECEIVED")
        expect(by(page, "like-button")).to_have_attribute("data-queued", "false")
        time.sleep(2)
        liked = sorted(m["payload"]["track"]["title"] for m in dj.received("LIKE_RECEIVED"))
        assert liked == ["Earlier Song", "Offline Song"]  # each exactly once
        assert dancer.sent_types().count("SEND_BULK_LIKE") == 1
        assert "SEND_LIKE" not in dancer.sent_types()


def test_a_like_queued_offline_survives_closing_the_page(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_offl002") as dj:
        dj.play("Kept Song", "Band")
        dancer = phones()
        page = dancer.goto("/live/conf_offl002")
        wait_live(page)
        expect(by(page, "track-title")).to_have_text("Kept Song")
        dancer.context.set_offline(True)
        by(page, "like-button").click()
        expect(by(page, "like-button")).to_have_attribute("data-queued", "true")
        page.close()
        dancer.context.set_offline(False)
        assert dj.received("LIKE_RECEIVED") == []
        dancer.page = page = dancer.context.new_page()
        page.goto("/my-likes")
        expect(by(page, "queued-like")).to_contain_text("Kept Song")
        page.goto("/live/conf_offl002")
        dj.wait_for(lambda m: m["type"] == "LIKE_RECEIVED", 10, "LIKE_RECEIVED")
        expect(by(page, "like-button")).to_have_attribute("aria-pressed", "true")
        time.sleep(1)
        assert len(dj.received("LIKE_RECEIVED")) == 1


def test_a_dj_dropping_for_five_seconds_never_shows_ended(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_drop001", "DJ Flaky") as dj:
        dj.play("Before The Drop", "Band")
        page = phones().goto("/live/conf_drop001")
        expect(by(page, "track-title")).to_have_text("Before The Drop")
        page.evaluate(
            """() => {
                const ended = document.querySelector('[data-testid="session-ended"]');
                window.__everEnded = !ended.hidden;
                new MutationObserver(() => { if (!ended.hidden) window.__everEnded = true; })
                    .observe(ended, {attributes: true});
            }"""
        )
        dj.drop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            expect(by(page, "session-ended")).to_be_hidden(timeout=1)
            expect(by(page, "track-title")).to_have_text("Before The Drop", timeout=1000)
            time.sleep(0.25)
        dj.resume()
        dj.play("After The Drop", "Band")
        expect(by(page, "track-title")).to_have_text("After The Drop")
        assert page.evaluate("() => window.__everEnded") is False


def test_the_page_shows_signal_lost_when_the_server_goes_away_and_recovers(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_lost001", "DJ Steady") as dj:
        dj.play("Before Restart", "Band")
        page = phones().goto("/live/conf_lost001")
        wait_live(page)
        expect(by(page, "signal-lost")).to_be_hidden()
        site.stop()
        expect(by(page, "connection-status")).to_have_attribute("data-state", "reconnecting", timeout=5000)
        expect(by(page, "signal-lost")).to_be_visible(timeout=40_000)
        expect(by(page, "connection-status")).to_have_text("Signal lost")
        expect(by(page, "track-title")).to_have_text("Before Restart")  # what was known stays
        page.screenshot(path=artifact("live-player-signal-lost.png"))

        site.start()  # same port, same database
        wait_live(page, timeout=30_000)
        expect(by(page, "signal-lost")).to_be_hidden()
        expect(by(page, "track-title")).to_have_text("Before Restart")
        dj.resume()
        dj.play("After Restart", "Band")
        expect(by(page, "track-title")).to_have_text("After Restart")
        expect(by(page, "session-ended")).to_be_hidden()


def test_two_dancers_vote_in_a_poll_and_see_the_results(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_poll001") as dj:
        dj.play("Poll Song", "Band")
        one, two = phones(), phones()
        p1, p2 = one.goto("/live/conf_poll001"), two.goto("/live/conf_poll001")
        wait_live(p1)
        wait_live(p2)
        poll_id = dj.start_poll("Which style next?", ["Lindy Hop", "Balboa", "Collegiate Shag"])
        for page in (p1, p2):
            expect(by(page, "poll-question")).to_have_text("Which style next?")
            expect(by(page, "poll-status")).to_contain_text("Tap an option to vote")
        by(p1, "poll-option-0").click()
        by(p2, "poll-option-1").click()
        for page in (p1, p2):
            expect(by(page, "poll-status")).to_contain_text("2 votes")
            expect(by(page, "poll-count-0")).to_have_text("1 · 50%")
            expect(by(page, "poll-count-1")).to_have_text("1 · 50%")
            expect(by(page, "poll-count-2")).to_have_text("0 · 0%")
            expect(by(page, "poll-option-2")).to_be_disabled()
        expect(by(p1, "poll-status")).to_contain_text("You voted for “Lindy Hop”")
        expect(by(p2, "poll-status")).to_contain_text("You voted for “Balboa”")

        p1.evaluate(f"() => localStorage.removeItem('pika.vote.{poll_id}')")  # the server remembers
        p1.reload()
        expect(by(p1, "poll-status")).to_contain_text("You voted for “Lindy Hop”")
        expect(by(p1, "poll-option-0")).to_have_attribute("data-mine", "true")
        expect(by(p1, "poll-count-1")).to_have_text("1 · 50%")
        p1.screenshot(path=artifact("live-player-poll.png"))

        dj.end_poll(poll_id)
        for page in (p1, p2):
            expect(by(page, "poll-label")).to_have_text("Poll closed")
            expect(by(page, "poll-status")).to_contain_text("Result: “Lindy Hop” wins · 2 votes")
            expect(by(page, "poll-option-0")).to_have_attribute("data-winner", "true")


def test_an_announcement_counts_down_and_goes_when_it_expires(site: Server, phones: Any) -> None:
    with dj_live(site.url, "conf_annc001", "DJ Voice") as dj:
        dj.play("Announce Song", "Band")
        page = phones().goto("/live/conf_annc001")
        wait_live(page)
        dj.announce("Cancelled soon", 30)
        expect(by(page, "announcement-message")).to_have_text("Cancelled soon")
        dj.request("CANCEL_ANNOUNCEMENT", sessionId="conf_annc001")
        expect(by(page, "announcement")).to_be_hidden(timeout=5000)

        dj.announce("Jam circle at midnight!", 20)
        shown_at = time.monotonic()
        expect(by(page, "announcement-message")).to_have_text("Jam circle at midnight!")
        expect(by(page, "announcement-from")).to_have_text("From DJ Voice")
        countdown = by(page, "announcement-countdown")
        expect(countdown).to_have_text(re.compile(r"^(20|19|18) s left$"))
        first = int(countdown.get_attribute("data-seconds"))
        page.reload()  # the announcement comes back with the session's state
        expect(by(page, "announcement-message")).to_have_text("Jam circle at midnight!")
        expect(countdown).to_have_text(re.compile(r"^\d+ s left$"))
        expect(countdown).not_to_have_attribute("data-seconds", str(first), timeout=5000)  # ticking
        page.screenshot(path=artifact("live-player-announcement.png"))
        expect(by(page, "announcement")).to_be_hidden(timeout=25_000)
        assert time.monotonic() - shown_at > 15  # not before it was due


def test_a_session_ending_shows_ended_and_leads_to_the_set_list(site: Server, phones: Any) -> None:
    account = site.post_json(
        "/api/auth/register",
        {"email": "ella@example.com", "password": "swing-it-123", "displayName": "DJ Ella"},
        {"X-Pika-Client": "pika-e2e"},
    )
    slug = account["user"]["slug"]
    with dj_live(site.url, "conf_recap01", token=account["token"]) as dj:
        dj.play("Tain't What You Do", "Ella Fitzgerald", bpm=160, key="Bb")
        dancer = phones()
        page = dancer.goto("/live/conf_recap01")
        wait_live(page)
        expect(by(page, "dj-name")).to_have_text("DJ Ella")
        by(page, "like-button").click()
        by(page, "tempo-faster").click()
        dj.wait_for(lambda m: m["type"] == "TEMPO_FEEDBACK" and m["faster"] == 1, 5, "the tempo vote")
        dj.play("A-Tisket, A-Tasket", "Ella Fitzgerald")
        dj.end()
        expect(by(page, "session-ended")).to_be_visible()
        expect(by(page, "like-button")).to_be_disabled()
        page.screenshot(path=artifact("live-player-ended.png"))
        by(page, "recap-link").click()

        expect(page).to_have_url(re.compile(r"/recap/conf_recap01$"))
        expect(by(page, "recap-dj")).to_have_text("DJ Ella")
        expect(by(page, "recap-title")).to_have_text(["Tain't What You Do", "A-Tisket, A-Tasket"])
        expect(by(page, "recap-likes")).to_have_text(["♥ 1", "♥ 0"])
        expect(by(page, "recap-track-count")).to_have_text("2")
        expect(by(page, "recap-total-likes")).to_have_text("1")
        expect(by(page, "recap-track").first).to_contain_text("160 BPM")
        expect(by(page, "recap-tempo").first).to_have_text(re.compile(r"slower 0\s*perfect 0\s*faster 1"))
        page.screenshot(path=artifact("recap.png"), full_page=True)

        page.goto("/my-likes")
        expect(by(page, "liked-title")).to_have_text(["Tain't What You Do"])
        expect(by(page, "liked-track")).to_contain_text("DJ Ella")

        page.goto(f"/dj/{slug}")
        expect(by(page, "dj-profile-name")).to_have_text("DJ Ella")
        expect(by(page, "dj-total-sessions")).to_have_text("1")
        expect(by(page, "dj-session")).to_contain_text("2 tracks")
        by(page, "dj-session").get_by_role("link").first.click()
        expect(page).to_have_url(re.compile(r"/recap/conf_recap01$"))


def test_the_live_list_follows_djs_going_live_and_ending(site: Server, phones: Any) -> None:
    page = phones().goto("/")
    expect(by(page, "no-live")).to_be_visible()
    wait_live(page)
    with dj_live(site.url, "conf_list001", "DJ Newcomer") as dj:
        card = by(page, "session-card").filter(has_text="DJ Newcomer")
        expect(card).to_be_visible(timeout=5000)  # SESSION_STARTED, no reload
        expect(by(page, "no-live")).to_be_hidden()
        dj.play("Fresh Track", "Band")
        expect(card.get_by_test_id("session-track")).to_contain_text("Fresh Track", timeout=10_000)
        page.screenshot(path=artifact("live-list.png"))
        dj.end()
        expect(card).to_be_hidden(timeout=5000)
        expect(by(page, "recent-session")).to_contain_text("DJ Newcomer", timeout=5000)


def test_a_dj_registers_copies_regenerates_and_signs_in(site: Server, phones: Any, browser: Any) -> None:
    dancer = phones()
    dancer.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = dancer.goto("/dj/register")
    expect(by(page, "auth-title")).to_have_text("Create a DJ account")
    by(page, "display-name").fill("DJ Nova")
    by(page, "email").fill("nova@example.com")
    by(page, "password").fill("short")
    by(page, "submit").click()
    expect(by(page, "form-error")).to_contain_text("at least 8 characters")
    by(page, "password").fill("correct horse battery")
    by(page, "submit").click()
    token_box = by(page, "api-token")
    expect(token_box).to_have_value(re.compile(r"^pk_dj_[0-9a-f]{32}$"))
    first = token_box.input_value()
    expect(by(page, "dj-page-link")).to_have_attribute("href", "/dj/dj-nova")
    page.screenshot(path=artifact("dj-token.png"))
    by(page, "copy-token").click()
    expect(by(page, "toast")).to_have_text("Token copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == first

    by(page, "regenerate-token").click()
    expect(token_box).not_to_have_value(first)
    second = token_box.input_value()
    assert re.fullmatch(r"pk_dj_[0-9a-f]{32}", second)
    assert site.get("/api/auth/me", {"Authorization": f"Bearer {first}"})[0] == 401
    assert site.get("/api/auth/me", {"Authorization": f"Bearer {second}"})[0] == 200

    page.goto("/dj/login")
    expect(by(page, "auth-title")).to_have_text("DJ sign in")
    expect(by(page, "name-field")).to_be_hidden()
    by(page, "email").fill("nova@example.com")
    by(page, "password").fill("wrong password!")
    by(page, "submit").click()
    expect(by(page, "form-error")).to_have_text("Invalid email or password")
    by(page, "password").fill("correct horse battery")
    by(page, "submit").click()
    expect(token_box).to_have_value(re.compile(r"^pk_dj_[0-9a-f]{32}$"))
    assert token_box.input_value() not in (first, second)
    expect(by(page, "welcome-name")).to_have_text("DJ Nova")


@pytest.mark.parametrize("width", [360, 390])
def test_every_page_fits_a_phone_without_sideways_scrolling(site: Server, phones: Any, width: int) -> None:
    with dj_live(site.url, "conf_wide001", "DJ With A Rather Long Name For A Small Screen") as dj:
        dj.play("A Very Long Song Title That Goes On And On Across The Screen", "An Orchestra Named Long")
        dj.start_poll("Which one?", ["An option with quite a long label indeed", "Short"])
        dj.announce("A long announcement that needs wrapping on a small phone screen, really", 60)
        page = phones(viewport={"width": width, "height": 740}).page
        for path in [*PAGES, "/my-likes", "/recap/conf_wide001", "/live/conf_wide001"]:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("() => document.scrollingElement.scrollWidth")
            assert overflow <= width, f"{path} is {overflow}px wide at {width}px"
            name = path.strip("/").replace("/", "_") or "index"
            page.screenshot(path=artifact(f"{width}-{name}.png"), full_page=True)


def test_a_phone_refused_at_a_full_address_waits_as_the_server_says_then_gets_in(
    browser: Any, db_url: str, tmp_path: Path
) -> None:
    # One open connection per address: the first phone takes it, the second is refused.
    limits = {"PIKA_WS_OPEN_PER_IP": "1", "PIKA_WS_CONNECTS_WINDOW": "2"}
    with running_server(db_url, tmp_path / "server.log", **limits) as server:
        first, second = Dancer(browser, server.url), Dancer(browser, server.url)
        try:
            wait_live(first.goto("/live/conf_full001"))
            asking = lambda r: r.url.endswith("/ws") and r.request.resource_type == "fetch"  # noqa: E731
            with second.page.expect_response(asking, timeout=10_000) as asked:
                page = second.goto("/live/conf_full001")
            # The refused upgrade's answer, which the page can only learn by asking over HTTP.
            assert (asked.value.status, asked.value.headers.get("retry-after")) == (429, "2")
            expect(by(page, "connection-status")).not_to_have_attribute("data-state", "live")

            first.close()  # the slot frees: the second phone gets in at its next try
            wait_live(page, timeout=20_000)
            assert first.errors == second.errors == []
        finally:
            first.close()
            second.close()
