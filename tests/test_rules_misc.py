"""Announcements, like de-duplication and the like/reaction frames, as pure rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pika.live.announcements import Announcement
from pika.live.likes import like_received, reaction_received, unique_tracks
from pika.protocol import REACTIONS, TrackInfo


def test_an_announcement_shows_until_it_ends():
    announcement = Announcement("conf_0001", "Last song!", "DJ Bob", created_at=100.0, ends_at=160.0)
    assert announcement.active(100) and announcement.active(159.999)
    assert not announcement.active(160) and not announcement.active(1e9)


def test_an_announcement_without_an_end_never_expires():
    assert Announcement("conf_0001", "Hi", "DJ", created_at=0.0, ends_at=None).active(1e12)


def test_announcement_received_has_the_protocol_keys_and_iso_times():
    message = Announcement(
        "conf_0001", "Last song!", "DJ Bob", created_at=0.25, ends_at=60.0
    ).received_message()
    assert message == {
        "type": "ANNOUNCEMENT_RECEIVED",
        "sessionId": "conf_0001",
        "message": "Last song!",
        "djName": "DJ Bob",
        "timestamp": "1970-01-01T00:00:00.250Z",
        "endsAt": "1970-01-01T00:01:00.000Z",
    }


def test_an_open_ended_announcement_sends_no_ends_at():
    announcement = Announcement("conf_0001", "Hi", "DJ", created_at=0.0, ends_at=None)
    assert "endsAt" not in announcement.received_message()
    assert announcement.summary() == {"message": "Hi", "timestamp": "1970-01-01T00:00:00.000Z"}


def test_the_sessions_list_summary_carries_message_and_times():
    summary = Announcement("conf_0001", "Hi", "DJ", created_at=0.0, ends_at=30.0).summary()
    assert summary == {
        "message": "Hi",
        "timestamp": "1970-01-01T00:00:00.000Z",
        "endsAt": "1970-01-01T00:00:30.000Z",
    }


words = st.sampled_from(["Billie Jean", "billie  jean", " BILLIE JEAN ", "Thriller", "thriller", "Bad"])
artists = st.sampled_from(["Michael Jackson", "michael jackson", "MJ"])
tracks = st.builds(TrackInfo, title=words, artist=artists, bpm=st.none() | st.floats(40, 300))


@given(st.lists(tracks, max_size=20))
def test_unique_tracks_keeps_one_of_each_song_and_loses_none(items):
    result = unique_tracks(items)
    keys = [t.match_key for t in result]
    assert len(keys) == len(set(keys))
    assert set(keys) == {t.match_key for t in items}
    assert all(t is next(u for u in items if u.match_key == t.match_key) for t in result)  # the first wins
    assert [t for t in items if any(t is r for r in result)] == result  # order kept


def test_unique_tracks_keeps_the_first_spelling_of_a_song():
    first = TrackInfo(title="Billie Jean", artist="Michael Jackson", bpm=117)
    again = TrackInfo(title="billie   JEAN", artist=" michael jackson")
    other = TrackInfo(title="Thriller", artist="Michael Jackson")
    assert unique_tracks([first, other, again]) == [first, other]


def test_like_received_nests_the_track_under_payload():
    track = TrackInfo(title="Billie Jean", artist="Michael Jackson", bpm=117.0)
    assert like_received("conf_0001", track) == {
        "type": "LIKE_RECEIVED",
        "sessionId": "conf_0001",
        "payload": {"track": {"title": "Billie Jean", "artist": "Michael Jackson", "bpm": 117.0}},
    }


def test_reaction_received_names_the_reaction():
    assert "thank_you" in REACTIONS
    assert reaction_received("conf_0001", "thank_you") == {
        "type": "REACTION_RECEIVED",
        "sessionId": "conf_0001",
        "reaction": "thank_you",
    }
