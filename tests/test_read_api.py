"""The read side of the HTTP API (PROTOCOL.md §8) against the real server and PostgreSQL.

Sessions and plays are made through the real WebSocket protocol; likes, polls, tempo tallies
and accounts are written with plain SQL, so these tests depend only on the read routes.  HTTP
goes through urllib in a worker thread, as any client would see it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest
import trio

from pika.config import SQL_DIR
from pika.http import stats
from pika.protocol import TrackInfo
from pika.security.tokens import new_token, token_digest
from pika.server import Running
from tests.wsclient import Peer, connect, go_live, track

PREFIXES = ("/api/sessions", "/api/session", "/sessions")
RESUME_DIGEST = "0" * 64


# -- helpers ------------------------------------------------------------------------------------


async def http(
    server: Running, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON) for one request; a POST when `body` is given."""

    def call() -> tuple[int, Any, str]:
        req = urllib.request.Request(server.url + path, data=body, headers=headers or {})
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")

    status, raw, content_type = await trio.to_thread.run_sync(call)
    assert content_type.startswith("application/json"), (path, status, content_type, raw[:200])
    return status, json.loads(raw)


async def get(server: Running, path: str, **headers: str) -> Any:
    status, body = await http(server, path, headers=headers)
    assert status == 200, (path, status, body)
    return body


async def post(server: Running, path: str, payload: Any) -> tuple[int, Any]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await http(server, path, body=raw)


async def sql(server: Running, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    def run() -> list[tuple[Any, ...]]:
        with psycopg.connect(server.database_url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    return await trio.to_thread.run_sync(run)


async def play(dj: Peer, session_id: str, title: str, artist: str = "Test Artist", **extra: Any) -> None:
    replies = await dj.request("BROADCAST_TRACK", sessionId=session_id, track=track(title, artist, **extra))
    assert replies[-1]["type"] == "ACK", replies


async def end(dj: Peer, session_id: str) -> None:
    replies = await dj.request("END_SESSION", sessionId=session_id)
    assert replies[-1]["type"] == "ACK", replies


async def like(server: Running, session_id: str, title: str, client_id: str, at: str | None = None) -> None:
    await sql(
        server,
        "INSERT INTO likes (session_id, played_track_id, match_key, client_id, liked_at) "
        "SELECT session_id, id, match_key, %(client)s, coalesce(%(at)s::timestamptz, now()) "
        "FROM played_tracks WHERE session_id = %(session)s AND title = %(title)s",
        {"session": session_id, "title": title, "client": client_id, "at": at},
    )


async def make_dj(server: Running, slug: str, name: str) -> tuple[int, str]:
    """An account with one API token, written directly; returns (dj id, token)."""
    token = new_token()
    rows = await sql(
        server,
        "WITH dj AS (INSERT INTO djs (email, display_name, slug, password_hash) "
        "VALUES (%(email)s, %(name)s, %(slug)s, 'not-a-hash') RETURNING id) "
        "INSERT INTO dj_tokens (dj_id, token_sha256) SELECT id, %(digest)s FROM dj RETURNING dj_id",
        {"email": f"{slug}@example.org", "name": name, "slug": slug, "digest": token_digest(token)},
    )
    return rows[0][0], token


async def make_session(
    server: Running, session_id: str, dj_id: int | None, dj_name: str, titles: list[str], started: str
) -> None:
    """An ended session of `dj_id` with one play per title, a minute apart from `started`."""
    await sql(
        server,
        "INSERT INTO sessions (id, dj_id, dj_name, resume_key_sha256, started_at, ended_at) "
        "VALUES (%s, %s, %s, %s, %s::timestamptz, %s::timestamptz + interval '2 hours')",
        (session_id, dj_id, dj_name, RESUME_DIGEST, started, started),
    )
    for n, title in enumerate(titles):
        await sql(
            server,
            "INSERT INTO played_tracks (session_id, artist, title, match_key, played_at) "
            "VALUES (%s, 'Artist', %s, %s, %s::timestamptz + %s * interval '1 minute')",
            (session_id, title, TrackInfo(title=title, artist="Artist").match_key, started, n),
        )


# -- /active ------------------------------------------------------------------------------------


async def test_active_says_not_live_when_no_session_is_live(server: Running) -> None:
    for prefix in PREFIXES:
        assert await get(server, f"{prefix}/active") == {"live": False, "sessions": []}


async def test_active_lists_live_sessions_with_track_and_listeners(server: Running) -> None:
    async with connect(server.url) as dj1, connect(server.url) as dj2, connect(server.url) as dancer:
        await go_live(dj1, "active_one", "DJ One")
        await go_live(dj2, "active_two", "DJ Two")
        await play(dj1, "active_one", "Billie Jean", "Michael Jackson", bpm=117, key="F#m")
        await dancer.request("SUBSCRIBE", sessionId="active_one", clientId="client_active_1")
        body = await get(server, "/api/sessions/active")

    assert body["live"] is True and body["count"] == 2
    one, two = body["sessions"]
    assert set(one) == {"sessionId", "djName", "startedAt", "currentTrack", "listenerCount"}
    assert one["sessionId"] == "active_one" and one["djName"] == "DJ One"
    assert one["startedAt"].endswith("Z")
    assert one["currentTrack"] == {"title": "Billie Jean", "artist": "Michael Jackson", "bpm": 117}
    assert one["listenerCount"] == 1
    assert two["sessionId"] == "active_two"
    assert two["currentTrack"] is None and two["listenerCount"] == 0


async def test_active_omits_bpm_when_the_track_has_none(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "active_nobpm")
        await play(dj, "active_nobpm", "No Tempo Here")
        body = await get(server, "/sessions/active")
    assert body["sessions"][0]["currentTrack"] == {"title": "No Tempo Here", "artist": "Test Artist"}


# -- /recent and /history -----------------------------------------------------------------------


async def test_recent_lists_the_five_latest_ended_sessions_newest_first(server: Running) -> None:
    async with connect(server.url) as dj, connect(server.url) as still_live:
        for n in range(6):
            await go_live(dj, f"recent_{n:03d}", f"DJ {n}")
            await end(dj, f"recent_{n:03d}")
        await go_live(still_live, "recent_live")
        bodies = [await get(server, f"{prefix}/recent") for prefix in PREFIXES]

    assert bodies[0] == bodies[1] == bodies[2]
    recent = bodies[0]
    assert [s["id"] for s in recent] == ["recent_005", "recent_004", "recent_003", "recent_002", "recent_001"]
    first = recent[0]
    assert set(first) == {"id", "djName", "startedAt", "endedAt"}
    assert first["djName"] == "DJ 5"
    assert first["startedAt"].endswith("Z") and first["endedAt"].endswith("Z")
    assert first["startedAt"] <= first["endedAt"]


async def test_history_lists_plays_newest_first(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "history_01")
        for title in ("First", "Second", "Third"):
            await play(dj, "history_01", title)
        bodies = [await get(server, f"{prefix}/history_01/history") for prefix in PREFIXES]

    assert bodies[0] == bodies[1] == bodies[2]
    history = bodies[0]
    assert [h["title"] for h in history] == ["Third", "Second", "First"]
    assert set(history[0]) == {"id", "artist", "title", "playedAt"}
    assert history[0]["artist"] == "Test Artist" and history[0]["playedAt"].endswith("Z")
    assert history[0]["id"] > history[1]["id"] > history[2]["id"]


async def test_history_of_an_unknown_session_is_empty(server: Running) -> None:
    assert await get(server, "/api/sessions/never_existed/history") == []


# -- /recap -------------------------------------------------------------------------------------


async def test_recap_lists_tracks_in_play_order_with_likes_and_tempo(server: Running) -> None:
    sid = "recap_0001"
    async with connect(server.url) as dj:
        await go_live(dj, sid, "DJ Recap")
        await play(
            dj,
            sid,
            "Opener",
            "Band A",
            bpm=120,
            key="8A",
            energy=70,
            danceability=80,
            brightness=55,
            acousticness=10,
            groove=65,
        )
        await play(dj, sid, "Middle", "Band B")
        await play(dj, sid, "Closer", "Band C", bpm=128)
        await like(server, sid, "Opener", "client_recap_1")
        await like(server, sid, "Opener", "client_recap_2")
        await like(server, sid, "Closer", "client_recap_1")

        live = await get(server, f"/api/sessions/{sid}/recap")
        assert live["endedAt"] is None  # a live session's recap
        await end(dj, sid)

    await sql(
        server,
        "UPDATE played_tracks SET (tempo_slower, tempo_perfect, tempo_faster) = "
        "(CASE WHEN title = 'Opener' THEN 1 END, CASE WHEN title = 'Opener' THEN 3 END, "
        " CASE WHEN title = 'Opener' THEN 0 END) WHERE session_id = %s",
        (sid,),
    )
    bodies = [await get(server, f"{prefix}/{sid}/recap") for prefix in PREFIXES]
    assert bodies[0] == bodies[1] == bodies[2]
    recap = bodies[0]

    assert set(recap) == {"sessionId", "djName", "startedAt", "endedAt", "trackCount", "totalLikes", "tracks"}
    assert recap["sessionId"] == sid and recap["djName"] == "DJ Recap"
    assert recap["endedAt"].endswith("Z") and recap["startedAt"] <= recap["endedAt"]
    assert recap["trackCount"] == 3 and recap["totalLikes"] == 3
    opener, middle, closer = recap["tracks"]
    assert [t["position"] for t in recap["tracks"]] == [1, 2, 3]
    assert opener == {
        "position": 1,
        "artist": "Band A",
        "title": "Opener",
        "bpm": 120,
        "key": "8A",
        "energy": 70,
        "danceability": 80,
        "brightness": 55,
        "acousticness": 10,
        "groove": 65,
        "playedAt": opener["playedAt"],
        "likes": 2,
        "tempo": {"slower": 1, "perfect": 3, "faster": 0},
    }
    assert middle == {
        "position": 2,
        "artist": "Band B",
        "title": "Middle",
        "playedAt": middle["playedAt"],
        "likes": 0,
        "tempo": None,
    }
    assert closer["likes"] == 1 and closer["bpm"] == 128 and closer["tempo"] is None
    assert opener["playedAt"] <= middle["playedAt"] <= closer["playedAt"]


async def test_recap_of_an_unknown_session_is_404(server: Running) -> None:
    for prefix in PREFIXES:
        status, body = await http(server, f"{prefix}/nobody_home/recap")
        assert status == 404
        assert "nobody_home" in body["error"]


async def test_the_owning_dj_also_gets_polls_in_the_recap(server: Running) -> None:
    owner_id, owner_token = await make_dj(server, "dj-owner", "DJ Owner")
    _, other_token = await make_dj(server, "dj-other", "DJ Other")
    sid = "owned_0001"
    await make_session(server, sid, owner_id, "DJ Owner", ["One", "Two"], "2026-01-10T20:00:00Z")
    polls = await sql(
        server,
        "INSERT INTO polls (session_id, question, options, status, started_at, ended_at) VALUES "
        "(%(s)s, 'Next genre?', ARRAY['House', 'Techno', 'Disco'], 'closed', "
        " '2026-01-10T20:10:00Z', '2026-01-10T20:12:00Z'), "
        "(%(s)s, 'One more?', ARRAY['Yes', 'No'], 'active', '2026-01-10T20:30:00Z', NULL) "
        "RETURNING id",
        {"s": sid},
    )
    first_poll, second_poll = polls[0][0], polls[1][0]
    for n, option in enumerate([1, 2, 2, 1]):  # a 2-2 tie: the first highest index wins
        await sql(
            server,
            "INSERT INTO poll_votes (poll_id, client_id, option_index) VALUES (%s, %s, %s)",
            (first_poll, f"voter_{n:04d}", option),
        )

    anonymous = await get(server, f"/api/sessions/{sid}/recap")
    stranger = await get(server, f"/api/sessions/{sid}/recap", Authorization=f"Bearer {other_token}")
    garbage = await get(server, f"/api/sessions/{sid}/recap", Authorization="Bearer pk_dj_nope")
    for body in (anonymous, stranger, garbage):
        assert "polls" not in body and "totalPolls" not in body and "totalPollVotes" not in body
        assert body["trackCount"] == 2

    owned = [
        await get(server, f"{prefix}/{sid}/recap", Authorization=f"Bearer {owner_token}")
        for prefix in PREFIXES
    ]
    assert owned[0] == owned[1] == owned[2]
    recap = owned[0]
    assert recap["totalPolls"] == 2 and recap["totalPollVotes"] == 4
    assert recap["polls"] == [
        {
            "id": first_poll,
            "question": "Next genre?",
            "options": ["House", "Techno", "Disco"],
            "votes": [0, 2, 2],
            "totalVotes": 4,
            "winnerIndex": 1,
            "winner": "Techno",
            "startedAt": "2026-01-10T20:10:00.000Z",
            "endedAt": "2026-01-10T20:12:00.000Z",
        },
        {
            "id": second_poll,
            "question": "One more?",
            "options": ["Yes", "No"],
            "votes": [0, 0],
            "totalVotes": 0,
            "winnerIndex": -1,
            "startedAt": "2026-01-10T20:30:00.000Z",
        },
    ]
    assert recap["tracks"] == anonymous["tracks"]


# -- invalid ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["short", "has!bang_in_it", "x" * 65, "spaces%20are%20bad"])
async def test_a_malformed_session_id_is_a_400_naming_the_rule(server: Running, bad: str) -> None:
    for prefix in PREFIXES:
        for route in ("history", "recap"):
            status, body = await http(server, f"{prefix}/{bad}/{route}")
            assert status == 400, (prefix, route, body)
            assert body == {"error": "sessionId: must be 8-64 characters of A-Z a-z 0-9 _ -"}


async def test_a_malformed_client_id_or_slug_is_a_400_naming_the_rule(server: Running) -> None:
    for bad in ("short", "x" * 257):
        status, body = await http(server, f"/api/client/{bad}/likes")
        assert (status, body) == (400, {"error": "clientId: must be 8-256 characters"})
    for bad in ("a", "-leading", "trailing-", "under_score", "x" * 33, "caf%C3%A9"):
        status, body = await http(server, f"/api/dj/{bad}")
        assert status == 400, bad
        assert body["error"].startswith("slug: must be 2-32 characters")


# -- DJ pages and a client's likes ----------------------------------------------------------------


async def test_a_dj_page_lists_their_sessions_newest_first_with_totals(server: Running) -> None:
    dj_id, _ = await make_dj(server, "dj-mira", "DJ Mira")
    other_id, _ = await make_dj(server, "dj-else", "Someone Else")
    await make_session(server, "mira_older", dj_id, "Mira at the Barn", ["A", "B"], "2026-01-01T20:00:00Z")
    await make_session(server, "mira_newer", dj_id, "Mira Live", ["C"], "2026-01-08T20:00:00Z")
    await make_session(server, "else_sess1", other_id, "Else", ["D", "E", "F"], "2026-01-05T20:00:00Z")

    body = await get(server, "/api/dj/dj-mira")
    assert await get(server, "/api/dj/DJ-Mira") == body  # slugs are lower-case; the path need not be
    assert body == {
        "slug": "dj-mira",
        "djName": "DJ Mira",
        "sessions": [
            {
                "id": "mira_newer",
                "djName": "Mira Live",
                "startedAt": "2026-01-08T20:00:00.000Z",
                "endedAt": "2026-01-08T22:00:00.000Z",
                "trackCount": 1,
            },
            {
                "id": "mira_older",
                "djName": "Mira at the Barn",
                "startedAt": "2026-01-01T20:00:00.000Z",
                "endedAt": "2026-01-01T22:00:00.000Z",
                "trackCount": 2,
            },
        ],
        "totalSessions": 2,
        "totalTracks": 3,
    }
    status, missing = await http(server, "/api/dj/nobody-here")
    assert status == 404 and "nobody-here" in missing["error"]


async def test_a_client_sees_their_likes_newest_first(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "likes_sess", "DJ Likes")
        await play(dj, "likes_sess", "Loved", "Band L")
        await play(dj, "likes_sess", "Also Loved", "Band M")
        await like(server, "likes_sess", "Loved", "client_likes_01", "2026-01-01T21:00:00Z")
        await like(server, "likes_sess", "Also Loved", "client_likes_01", "2026-01-01T22:00:00Z")
        await like(server, "likes_sess", "Loved", "client_someone_else")
        body = await get(server, "/api/client/client_likes_01/likes")

    assert body["clientId"] == "client_likes_01" and body["totalLikes"] == 2
    newest, oldest = body["likes"]
    assert set(newest) == {"id", "sessionId", "artist", "title", "likedAt", "djName", "sessionDate"}
    assert (newest["title"], newest["artist"], newest["likedAt"]) == (
        "Also Loved",
        "Band M",
        "2026-01-01T22:00:00.000Z",
    )
    assert oldest["title"] == "Loved" and oldest["sessionId"] == "likes_sess"
    assert newest["djName"] == "DJ Likes" and newest["sessionDate"].endswith("Z")
    nobody = await get(server, "/api/client/client_without_likes/likes")
    assert nobody == {"clientId": "client_without_likes", "totalLikes": 0, "likes": []}


# -- stats --------------------------------------------------------------------------------------


async def test_stats_count_likes_per_track_across_sessions_and_are_cached(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "stats_one")
        await play(dj, "stats_one", "Billie Jean", "Michael Jackson")
        await play(dj, "stats_one", "Thriller", "Michael Jackson")
        await end(dj, "stats_one")
        await go_live(dj, "stats_two")
        await play(dj, "stats_two", "billie  JEAN", "michael jackson")  # the same track
        await end(dj, "stats_two")
    await like(server, "stats_one", "Billie Jean", "client_stats_1")
    await like(server, "stats_one", "Billie Jean", "client_stats_2")
    await like(server, "stats_two", "billie  JEAN", "client_stats_1")
    await like(server, "stats_one", "Thriller", "client_stats_3")

    top = await get(server, "/api/stats/top-tracks")
    assert top == [
        {"artist": "michael jackson", "title": "billie  JEAN", "likeCount": 3},  # latest spelling
        {"artist": "Michael Jackson", "title": "Thriller", "likeCount": 1},
    ]
    assert await get(server, "/api/stats/global") == {"totalSessions": 2, "totalTracks": 3, "totalLikes": 4}

    await like(server, "stats_one", "Thriller", "client_stats_4")
    await like(server, "stats_one", "Thriller", "client_stats_5")
    await like(server, "stats_one", "Thriller", "client_stats_6")
    assert await get(server, "/api/stats/top-tracks") == top  # within 10 s: the cached answer
    assert (await get(server, "/api/stats/global"))["totalLikes"] == 4

    later = time.monotonic() + stats.STATS_TTL + 1
    monkeypatch.setattr(stats, "monotonic", lambda: later)
    top = await get(server, "/api/stats/top-tracks")
    assert [(t["title"], t["likeCount"]) for t in top] == [("Thriller", 4), ("billie  JEAN", 3)]
    assert (await get(server, "/api/stats/global"))["totalLikes"] == 7


async def test_stats_of_an_empty_database(server: Running) -> None:
    assert await get(server, "/api/stats/top-tracks") == []
    assert await get(server, "/api/stats/global") == {"totalSessions": 0, "totalTracks": 0, "totalLikes": 0}


# -- push subscriptions -------------------------------------------------------------------------


async def test_push_subscribe_stores_one_row_per_endpoint(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "push_sess1")
    endpoint = "https://updates.push.services.mozilla.com/send/abc123"
    first = {"endpoint": endpoint, "keys": {"p256dh": "BPk1", "auth": "au1"}, "clientId": "client_push_1"}
    assert await post(server, "/api/push/subscribe", first) == (200, {"success": True})
    again = {**first, "keys": {"p256dh": "BPk2", "auth": "au2"}, "sessionId": "push_sess1"}
    assert await post(server, "/api/push/subscribe", again) == (200, {"success": True})
    unknown_session = {**first, "endpoint": endpoint + "/2", "sessionId": "never_a_session"}
    assert await post(server, "/api/push/subscribe", unknown_session) == (200, {"success": True})

    rows = await sql(
        server,
        "SELECT endpoint, p256dh, auth, client_id, session_id FROM push_subscriptions ORDER BY id",
    )
    assert rows == [
        (endpoint, "BPk2", "au2", "client_push_1", "push_sess1"),
        (endpoint + "/2", "BPk1", "au1", "client_push_1", None),
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "body"),
        ([], "body"),
        ({"keys": {"p256dh": "k", "auth": "a"}}, "endpoint"),
        ({"endpoint": "http://push.example.org/x", "keys": {"p256dh": "k", "auth": "a"}}, "endpoint"),
        ({"endpoint": "https://", "keys": {"p256dh": "k", "auth": "a"}}, "endpoint"),
        (
            {"endpoint": "https://fcm.googleapis.com/" + "x" * 2048, "keys": {"p256dh": "k", "auth": "a"}},
            "endpoint",
        ),
        ({"endpoint": "https://fcm.googleapis.com/x"}, "keys"),
        ({"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "k"}}, "keys.auth"),
        ({"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "", "auth": "a"}}, "keys.p256dh"),
        (
            {
                "endpoint": "https://fcm.googleapis.com/x",
                "keys": {"p256dh": "k", "auth": "a"},
                "clientId": "c",
            },
            "clientId",
        ),
        (
            {
                "endpoint": "https://fcm.googleapis.com/x",
                "keys": {"p256dh": "k", "auth": "a"},
                "sessionId": 7,
            },
            "sessionId",
        ),
        (
            {
                "endpoint": "https://fcm.googleapis.com/x",
                "keys": {"p256dh": "k", "auth": "a"},
                "sessionId": "a b",
            },
            "sessionId",
        ),
    ],
)
async def test_a_bad_push_subscription_is_a_400_naming_the_field(
    server: Running, payload: Any, field: str
) -> None:
    status, body = await post(server, "/api/push/subscribe", payload)
    assert status == 400, body
    assert body["error"].startswith(f"{field}:"), body
    assert await sql(server, "SELECT count(*) FROM push_subscriptions") == [(0,)]


# -- query plans --------------------------------------------------------------------------------


async def test_history_and_recap_use_the_play_index_on_10000_plays(server: Running) -> None:
    sid = "explain_0001"
    await make_session(server, sid, None, "DJ Big Night", [], "2026-01-01T18:00:00Z")
    await sql(
        server,
        "INSERT INTO played_tracks (session_id, artist, title, match_key, bpm, played_at) "
        "SELECT %(s)s, 'Artist ' || i, 'Title ' || i, 'artist ' || i || chr(31) || 'title ' || i, "
        "       100 + mod(i, 100), '2026-01-01T18:00:00Z'::timestamptz + i * interval '1 second' "
        "FROM generate_series(1, 10000) AS i",
        {"s": sid},
    )
    # The other nights in the table, as in production: 200 sessions of 500 plays, liked now and then.
    # (With only this session in the table, a sequential scan would be the right plan.)
    await sql(
        server,
        "INSERT INTO sessions (id, dj_name, resume_key_sha256, started_at, ended_at) "
        "SELECT 'other_night_' || n, 'DJ ' || n, %(d)s, "
        "       '2025-01-01'::timestamptz + n * interval '1 day', "
        "       '2025-01-01'::timestamptz + n * interval '1 day' + interval '6 hours' "
        "FROM generate_series(1, 200) AS n",
        {"d": RESUME_DIGEST},
    )
    await sql(
        server,
        "INSERT INTO played_tracks (session_id, artist, title, match_key, played_at) "
        "SELECT 'other_night_' || (i / 500 + 1), 'Artist', 'T' || i, 'artist' || chr(31) || 't' || i, "
        "       '2025-01-01'::timestamptz + (i / 500 + 1) * interval '1 day' + mod(i, 500) * interval '40 s' "
        "FROM generate_series(0, 99999) AS i",
    )
    await sql(
        server,
        "INSERT INTO likes (session_id, played_track_id, match_key, client_id) "
        "SELECT session_id, id, match_key, 'client_explain' FROM played_tracks WHERE mod(id, 10) = 0",
    )
    await sql(server, "ANALYZE")

    history_plan = await explain(server, "read_session_history", sid)
    recap_plan = await explain(server, "read_recap_tracks", sid)
    print(f"\nEXPLAIN ANALYZE read_session_history ({sid}: 10,000 of 110,000 plays):\n{history_plan}")
    print(f"\nEXPLAIN ANALYZE read_recap_tracks ({sid}: 10,000 of 110,000 plays):\n{recap_plan}")
    assert "Index" in history_plan and "played_tracks_session_time_idx" in history_plan
    assert "Seq Scan on played_tracks" not in recap_plan

    history = await get(server, f"/api/sessions/{sid}/history")
    assert len(history) == 50
    assert [h["title"] for h in history[:2]] == ["Title 10000", "Title 9999"]
    recap = await get(server, f"/api/sessions/{sid}/recap")
    assert recap["trackCount"] == 10000 and recap["totalLikes"] == 1000  # every 10th play
    assert recap["tracks"][0]["position"] == 1 and recap["tracks"][0]["title"] == "Title 1"
    assert (recap["tracks"][-1]["position"], recap["tracks"][-1]["title"]) == (10000, "Title 10000")


async def explain(server: Running, name: str, session_id: str) -> str:
    text = (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")
    rows = await sql(server, "EXPLAIN (ANALYZE, BUFFERS) " + text, {"session_id": session_id})
    return "\n".join(row[0] for row in rows)
