"""Rules the schema enforces whatever the code does (sql/migrations/0002_one_like_per_track.sql):
existing likes moved under one like per client per track, and bad rows refused by PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pika.config import SQL_DIR
from pika.migrate import Migrator
from pika.protocol import TrackInfo
from pika.queries import load_queries

SESSION, OTHER = "schema_night_1", "schema_night_2"


def key(artist: str, title: str) -> str:
    return TrackInfo(title=title, artist=artist).match_key


def run(url: str, sql: str, **params: Any) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def session(url: str, session_id: str) -> None:
    run(
        url,
        "INSERT INTO sessions (id, dj_name, resume_key_sha256) VALUES (%(id)s, 'DJ', %(key)s)",
        id=session_id,
        key="0" * 64,
    )


def play(url: str, session_id: str, artist: str, title: str) -> int:
    return run(
        url,
        "INSERT INTO played_tracks (session_id, artist, title, match_key) "
        "VALUES (%(s)s, %(a)s, %(t)s, %(k)s) RETURNING id",
        s=session_id,
        a=artist,
        t=title,
        k=key(artist, title),
    )[0][0]


def test_migrating_a_database_with_duplicate_likes_keeps_each_client_s_earliest_like(
    empty_db: str, tmp_path: Path
) -> None:
    at_0001 = tmp_path / "migrations"
    at_0001.mkdir()
    shutil.copy(SQL_DIR / "migrations" / "0001_initial_schema.sql", at_0001)
    Migrator(empty_db, at_0001).up()
    session(empty_db, SESSION)
    session(empty_db, OTHER)
    first = play(empty_db, SESSION, "Prince", "Kiss")
    play(empty_db, SESSION, "Other", "Song")
    again = play(empty_db, SESSION, " prince ", "KISS")  # the same track, written differently
    elsewhere = play(empty_db, OTHER, "Prince", "Kiss")
    run(empty_db, "UPDATE sessions SET current_play_id = %(p)s WHERE id = %(s)s", p=elsewhere, s=SESSION)
    like = (
        "INSERT INTO likes (session_id, played_track_id, client_id, liked_at) "
        "VALUES (%(s)s, %(p)s, %(c)s, %(at)s::timestamptz)"
    )
    run(empty_db, like, s=SESSION, p=first, c="client_aaaaaaaa", at="2026-01-01T21:00:00Z")
    run(empty_db, like, s=SESSION, p=again, c="client_aaaaaaaa", at="2026-01-01T22:00:00Z")  # the bug
    run(empty_db, like, s=SESSION, p=again, c="client_bbbbbbbb", at="2026-01-01T22:01:00Z")
    run(
        empty_db, like, s=SESSION, p=elsewhere, c="client_cccccccc", at="2026-01-01T22:02:00Z"
    )  # wrong session

    assert Migrator(empty_db, SQL_DIR / "migrations").up()[0] == "0002_one_like_per_track.sql"

    likes = "SELECT client_id, session_id, played_track_id, match_key FROM likes ORDER BY client_id"
    assert run(empty_db, likes) == [
        ("client_aaaaaaaa", SESSION, first, key("Prince", "Kiss")),  # the earliest of two
        ("client_bbbbbbbb", SESSION, again, key("Prince", "Kiss")),
        ("client_cccccccc", OTHER, elsewhere, key("Prince", "Kiss")),  # moved to its play's session
    ]
    assert run(empty_db, "SELECT current_play_id FROM sessions WHERE id = %(s)s", s=SESSION) == [(None,)]


@pytest.fixture
def night(db_url: str) -> tuple[str, int, int]:
    """A live session with one play, another session with one play: (url, play, other play)."""
    session(db_url, SESSION)
    session(db_url, OTHER)
    return db_url, play(db_url, SESSION, "Prince", "Kiss"), play(db_url, OTHER, "Other", "Song")


def test_a_like_must_name_its_play_s_session_and_track(night: tuple[str, int, int]) -> None:
    url, kiss, other = night
    like = (
        "INSERT INTO likes (session_id, played_track_id, match_key, client_id) "
        "VALUES (%(s)s, %(p)s, %(k)s, 'client_aaaaaaaa')"
    )
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="likes_play_fk"):
        run(url, like, s=SESSION, p=other, k=key("Other", "Song"))  # another session's play
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="likes_play_fk"):
        run(url, like, s=SESSION, p=kiss, k=key("Other", "Song"))  # another track's key
    run(url, like, s=SESSION, p=kiss, k=key("Prince", "Kiss"))
    with pytest.raises(psycopg.errors.UniqueViolation, match="likes_one_per_client_track"):
        run(url, like, s=SESSION, p=play(url, SESSION, "PRINCE", "kiss"), k=key("Prince", "Kiss"))


def test_a_session_s_current_play_is_its_own_and_an_ended_session_has_none(
    night: tuple[str, int, int],
) -> None:
    url, kiss, other = night
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="sessions_current_play_fk"):
        run(url, "UPDATE sessions SET current_play_id = %(p)s WHERE id = %(s)s", p=other, s=SESSION)
    run(url, "UPDATE sessions SET current_play_id = %(p)s WHERE id = %(s)s", p=kiss, s=SESSION)
    with pytest.raises(psycopg.errors.CheckViolation, match="sessions_ended_has_no_current_play"):
        run(url, "UPDATE sessions SET ended_at = now(), end_reason = 'dj_ended' WHERE id = %(s)s", s=SESSION)


def test_end_reasons_and_reactions_are_only_what_the_server_writes(night: tuple[str, int, int]) -> None:
    url, _, _ = night
    with pytest.raises(psycopg.errors.CheckViolation, match="sessions_end_reason_check"):
        run(url, "UPDATE sessions SET ended_at = now(), end_reason = 'bored' WHERE id = %(s)s", s=OTHER)
    with pytest.raises(psycopg.errors.CheckViolation, match="sessions_end_reason_check"):
        run(url, "UPDATE sessions SET end_reason = 'idle' WHERE id = %(s)s", s=OTHER)  # still live
    run(url, "UPDATE sessions SET ended_at = now(), end_reason = 'grace_expired' WHERE id = %(s)s", s=OTHER)
    reaction = "INSERT INTO reactions (session_id, client_id, reaction) VALUES (%(s)s, 'client_a', %(r)s)"
    with pytest.raises(psycopg.errors.CheckViolation, match="reactions_reaction_check"):
        run(url, reaction, s=SESSION, r="boo")
    run(url, reaction, s=SESSION, r="thank_you")


def test_a_play_cannot_be_recorded_in_an_ended_session_nor_end_the_one_before(
    night: tuple[str, int, int],
) -> None:
    url, kiss, other = night
    run(url, "UPDATE sessions SET ended_at = now(), end_reason = 'admin' WHERE id = %(s)s", s=OTHER)
    insert = load_queries(SQL_DIR / "queries")["insert_played_track"]
    track = TrackInfo(title="Late", artist="Band")
    params = {"artist": "Band", "title": "Late", "match_key": track.match_key, **track.analytics()}
    tally = {"slower": 1, "perfect": 2, "faster": 3}

    assert run(url, insert, session_id=OTHER, ended_play_id=other, **params, **tally) == []
    assert run(url, insert, session_id=SESSION, ended_play_id=kiss, **params, **tally) != []
    plays = "SELECT session_id, title, ended_at IS NOT NULL, tempo_faster FROM played_tracks ORDER BY id"
    assert run(url, plays) == [
        (SESSION, "Kiss", True, 3),
        (OTHER, "Song", False, None),
        (SESSION, "Late", False, None),
    ]
