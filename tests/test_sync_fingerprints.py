"""`POST {P}/:id/sync-fingerprints` (PROTOCOL.md §8): the DJ's analytics onto the set's plays.

Plays are made through the real WebSocket protocol and accounts written with plain SQL (the
helpers of test_read_api); the answer is read back through the recap, as a DJ would see it.
"""

from __future__ import annotations

import json

from pika.server import Running
from tests.test_read_api import PREFIXES, get, http, make_dj, make_session, play
from tests.wsclient import connect, go_live


async def sync(
    server: Running, session_id: str, payload: object, token: str | None = None, prefix: str = "/api/sessions"
) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await http(server, f"{prefix}/{session_id}/sync-fingerprints", body=raw, headers=headers)


async def test_the_owner_syncs_bpm_and_key_onto_the_plays_of_the_set(server: Running) -> None:
    dj_id, token = await make_dj(server, "dj-sync", "DJ Sync")
    await make_session(server, "sync_owned1", dj_id, "DJ Sync", ["One", "Two"], "2026-11-01T20:00:00Z")
    tracks = [
        {"artist": "artist", "title": "  ONE ", "bpm": 122.5, "key": "8A"},  # the same track, folded
        {"artist": "Artist", "title": "Two"},  # nothing to sync
        {"artist": "Artist", "title": "Never Played", "bpm": 100},
    ]
    for prefix in PREFIXES:
        status, body = await sync(server, "sync_owned1", {"tracks": tracks}, token, prefix)
        assert (status, body) == (200, {"synced": 1, "total": 3, "sessionId": "sync_owned1"})
    recap = await get(server, "/api/sessions/sync_owned1/recap")
    one, two = recap["tracks"]
    assert (one["title"], one["bpm"], one["key"]) == ("One", 122.5, "8A")
    assert "bpm" not in two and "key" not in two


async def test_an_owned_session_refuses_a_missing_or_foreign_token_and_changes_nothing(
    server: Running,
) -> None:
    dj_id, _token = await make_dj(server, "dj-mine", "DJ Mine")
    _other_id, other = await make_dj(server, "dj-other", "DJ Other")
    await make_session(server, "sync_owned2", dj_id, "DJ Mine", ["One"], "2026-11-01T20:00:00Z")
    payload = {"tracks": [{"artist": "Artist", "title": "One", "bpm": 99}]}
    for token in (None, other, "pk_dj_" + "0" * 32):
        status, body = await sync(server, "sync_owned2", payload, token)
        assert status == 401 and "Bearer" in body["error"]
    assert "bpm" not in (await get(server, "/api/sessions/sync_owned2/recap"))["tracks"][0]


async def test_an_anonymous_session_syncs_without_a_token(server: Running) -> None:
    async with connect(server.url) as dj:
        await go_live(dj, "sync_anon01")
        await play(dj, "sync_anon01", "Live One")
        status, body = await sync(
            server, "sync_anon01", {"tracks": [{"artist": "Test Artist", "title": "Live One", "bpm": 128}]}
        )
    assert (status, body) == (200, {"synced": 1, "total": 1, "sessionId": "sync_anon01"})
    assert (await get(server, "/api/sessions/sync_anon01/recap"))["tracks"][0]["bpm"] == 128


async def test_bad_bodies_are_a_400_naming_the_rule_and_unknown_sessions_a_404(server: Running) -> None:
    await make_session(server, "sync_anon02", None, "DJ", ["One"], "2026-11-01T20:00:00Z")
    cases = [
        (b"not json", "tracks: must be a list of at most 1000 tracks"),
        ({"tracks": "One"}, "tracks: must be a list of at most 1000 tracks"),
        ({"tracks": [{"artist": "A", "title": "T"}] * 1001}, "tracks: must be a list of at most 1000 tracks"),
        ({"tracks": [{"artist": "A", "title": "T"}, {"artist": "A", "title": ""}]}, "tracks[1].title"),
        ({"tracks": [{"artist": "A", "title": "One", "bpm": 900}]}, "tracks[0].bpm"),
        ({"tracks": ["One"]}, "tracks[0]: must be an object"),
    ]
    for payload, error in cases:
        status, body = await sync(server, "sync_anon02", payload)
        assert status == 400 and body["error"].startswith(error), (payload, body)
    status, body = await sync(server, "sync_nobody1", {"tracks": []})
    assert status == 404 and body == {"error": "Session sync_nobody1 not found"}
    assert "bpm" not in (await get(server, "/api/sessions/sync_anon02/recap"))["tracks"][0]
