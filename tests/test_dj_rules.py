"""The DJ agent's pieces without I/O (rules, crowd, commands) and its on-disk queue (a real sqlite file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from trio_websocket import CloseReason, ConnectionClosed, ConnectionRejected

from pika.dj import commands
from pika.dj.agent import http_origin, link_down
from pika.dj.crowd import Crowd
from pika.dj.outbox import Outbox, default_queue_path
from pika.dj.rules import (
    Close,
    Nack,
    close_verdict,
    nack_verdict,
    track_of,
)
from pika.dj.sources import Play
from pika.protocol import TrackInfo

# -- rules ----------------------------------------------------------------------------------------


def test_a_play_becomes_a_wire_track_and_tags_outside_the_protocol_are_left_out() -> None:
    track = track_of(Play(" Prince ", "Kiss ", None, bpm=111.123, key="Ebm"))
    assert track == TrackInfo(title="Kiss", artist="Prince", bpm=111.12, key="Ebm")
    odd = track_of(Play("A" * 600, "T", None, bpm=20.0, key="way too long key"))
    assert odd is not None and len(odd.artist) == 500 and odd.bpm is None and odd.key is None
    assert track_of(Play("  ", "Title", None)) is None


def test_passing_server_troubles_are_retried_and_everything_else_is_dropped() -> None:
    for error in ("Database unavailable, retry", "Rate limit exceeded", "Server busy"):
        assert nack_verdict(error) is Nack.RETRY
    for error in ("track.title: must be 1-500 characters", "Not the DJ of this session"):
        assert nack_verdict(error) is Nack.DROP


def test_only_a_takeover_stops_the_agent_every_other_close_means_come_back() -> None:
    assert close_verdict(4001) is Close.REPLACED
    for code in (None, 1000, 1001, 1006, 1011, 1012, 1013, 4003):
        assert close_verdict(code) is Close.RECONNECT


# -- the queue ------------------------------------------------------------------------------------


def test_the_queue_keeps_plays_in_order_across_a_restart_and_sends_a_repeat_once(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "queue.sqlite"
    outbox = Outbox(path)
    one = outbox.add("sess_0001", TrackInfo(title="One", artist="A"), 1000.0)
    assert one is not None
    assert outbox.add("sess_0001", TrackInfo(title=" one ", artist="a"), 1001.0) is None  # twice in a row
    two = outbox.add("sess_0001", TrackInfo(title="Two", artist="A", bpm=120), 1200.0)
    again = outbox.add("sess_0001", TrackInfo(title="One", artist="A"), 1400.5)  # really played again
    assert two is not None and again is not None
    outbox.add("other_0001", TrackInfo(title="Elsewhere", artist="B"), 1500.0)
    outbox.keep_resume_key("sess_0001", "rk_secret")
    outbox.close()

    reopened = Outbox(path)  # an agent killed and started again
    pending = reopened.pending("sess_0001")
    assert [str(e) for e in pending] == ["A - One", "A - Two", "A - One"]
    assert [e.message_id for e in pending] == [one.message_id, two.message_id, again.message_id]
    assert [e.played_at for e in pending] == [1000.0, 1200.0, 1400.5]  # the DJ's timeline, kept
    assert len({e.message_id for e in pending}) == 3
    assert reopened.resume_key("sess_0001") == "rk_secret" and reopened.resume_key("nope_0001") is None

    reopened.confirmed(pending[0])
    reopened.confirmed(pending[0])  # a late duplicate ACK changes nothing
    reopened.dropped(pending[1])
    assert reopened.pending("sess_0001") == [pending[2]]
    assert reopened.setlist("sess_0001") == [{"title": "One", "artist": "A"}]


def test_the_queue_lives_in_the_users_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_queue_path() == tmp_path / "pika" / "dj-queue.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_queue_path() == tmp_path / ".local" / "share" / "pika" / "dj-queue.sqlite"


# -- the crowd ------------------------------------------------------------------------------------


def test_the_status_line_shows_the_room_as_the_frames_come_in() -> None:
    crowd = Crowd("sess_0001")
    assert crowd.line().startswith("○ offline · queued 0")
    crowd.connected, crowd.queued, crowd.database_down = True, 2, True
    frames = [
        {"type": "NOW_PLAYING", "sessionId": "sess_0001", "track": {"artist": "Prince", "title": "Kiss"}},
        {"type": "LISTENER_COUNT", "sessionId": "sess_0001", "count": 42},
        {"type": "LIKE_RECEIVED", "sessionId": "sess_0001", "payload": {"track": {}}},
        {"type": "LIKE_RECEIVED", "sessionId": "sess_0001", "payload": {"track": {}}},
        {
            "type": "TEMPO_FEEDBACK",
            "sessionId": "sess_0001",
            "faster": 3,
            "slower": 1,
            "perfect": 5,
            "total": 9,
        },
        {"type": "REACTION_RECEIVED", "sessionId": "sess_0001", "reaction": "thank_you"},
        {"type": "SESSION_ENDED", "sessionId": "someone_else"},
    ]
    for frame in frames:
        crowd.apply(frame)
    started = crowd.apply(
        {"type": "POLL_STARTED", "sessionId": "sess_0001", "pollId": 7, "question": "Next?",
         "options": ["Salsa", "Bachata"], "votes": [0, 0], "totalVotes": 0}
    )  # fmt: skip
    crowd.apply(
        {"type": "POLL_UPDATE", "sessionId": "sess_0001", "pollId": 7, "votes": [4, 1], "totalVotes": 5}
    )
    assert started == "poll started: poll #7 Next? [Salsa:0 Bachata:0]"
    assert crowd.line() == (
        "● live (database unavailable) · ▶ Prince - Kiss · queued 2 · 42 listening · ♥ 2 · "
        "tempo faster 3 / perfect 5 / slower 1 · thanks 1 · poll #7 Next? [Salsa:4 Bachata:1]"
    )
    assert not crowd.ended
    crowd.apply({"type": "NOW_PLAYING", "sessionId": "sess_0001", "track": {"artist": "B", "title": "Next"}})
    assert "♥ 0" in crowd.line() and "tempo faster 0 / perfect 0 / slower 0" in crowd.line()
    ended = crowd.apply({"type": "POLL_ENDED", "sessionId": "sess_0001", "pollId": 7, "results": [5, 1]})
    assert ended == "poll ended: poll #7 Next? [Salsa:5 Bachata:1]" and crowd.poll is None
    assert crowd.apply({"type": "SESSION_ENDED", "sessionId": "sess_0001"}) and crowd.ended


# -- typed commands -------------------------------------------------------------------------------


def test_typed_commands_become_dj_messages() -> None:
    parse = commands.parse
    assert parse("  ", None) is None
    assert parse("help", None) == commands.Command("help")
    assert parse("END", None) == commands.Command("end")
    assert parse("poll 60 Next style? | Salsa | Bachata | Kizomba", None) == commands.Command(
        "START_POLL",
        {"question": "Next style?", "options": ["Salsa", "Bachata", "Kizomba"], "durationSeconds": 60},
    )
    assert parse("poll Faster? | yes | no", None).fields["durationSeconds"] is None  # type: ignore[union-attr]
    assert parse("endpoll", 12) == commands.Command("END_POLL", {"pollId": 12})
    assert parse("cancelpoll", None) == commands.Command("CANCEL_POLL")
    assert parse("say 120 Last dance in 5 minutes", None) == commands.Command(
        "SEND_ANNOUNCEMENT", {"message": "Last dance in 5 minutes", "durationSeconds": 120}
    )
    assert parse("say Water is free at the bar", None).fields["durationSeconds"] is None  # type: ignore[union-attr]
    assert parse("unsay", None) == commands.Command("CANCEL_ANNOUNCEMENT")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("dance", "unknown command 'dance'; type help for the list"),
        ("poll 60 Only one? | yes", "poll: write a question and 2-10 options"),
        ("poll 60 Many? " + "| x " * 11, "poll: write a question and 2-10 options"),
        ("poll 5 Quick? | a | b", "poll: the duration must be 30-300 seconds, got 5"),
        ("say 5 hi", "say: the duration must be 15-3600 seconds, got 5"),
        ("say", "say: write a message"),
        ("say " + "x" * 201, "say: the message must be at most 200 characters, got 201"),
        ("endpoll", "no poll is running"),
    ],
)
def test_a_bad_command_gets_one_line_saying_how_to_write_it(line: str, error: str) -> None:
    with pytest.raises(commands.CommandError) as raised:
        commands.parse(line, None)
    assert str(raised.value).startswith(error) and "\n" not in str(raised.value)


# -- how a failed connection is read --------------------------------------------------------------


def test_a_429_waits_for_retry_after_and_only_4001_stops_the_agent() -> None:
    busy = link_down(ConnectionRejected(429, ((b"Retry-After", b"12"),), b'{"error": "Too many"}'))
    assert busy is not None and busy.retry_after == 12.0 and not busy.replaced
    assert "HTTP 429" in busy.reason
    restart = link_down(ExceptionGroup("x", [ConnectionClosed(CloseReason(1012, "Server restarting"))]))
    assert restart is not None and not restart.replaced and "1012" in restart.reason
    taken = link_down(ConnectionClosed(CloseReason(4001, "Replaced")))
    assert taken is not None and taken.replaced
    refused = link_down(OSError(111, "Connection refused"))
    assert refused is not None and refused.reason == "cannot reach the server: Connection refused"
    assert link_down(ValueError("a bug")) is None  # not about the link: re-raised, never hidden


def test_the_http_origin_is_the_websocket_urls_host() -> None:
    assert http_origin("ws://127.0.0.1:3001/ws") == "http://127.0.0.1:3001"
    assert http_origin("wss://pika.example/ws") == "https://pika.example"
