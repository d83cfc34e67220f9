"""Polls as a pure rule: one ballot per client, refusal reasons in order, winners, exact wire keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pika.live.polls import Poll, VoteRejected

OPTIONS = ("Disco", "House", "Techno")


def make_poll(ends_at: float | None = 100.0, options: tuple[str, ...] = OPTIONS) -> Poll:
    return Poll(
        id=7, session_id="conf_0001", question="Next?", options=options, started_at=0.0, ends_at=ends_at
    )


def reason(poll: Poll, client: str, index: int, now: float) -> str:
    with pytest.raises(VoteRejected) as exc:
        poll.vote(client, index, now)
    return str(exc.value)


ballots = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.integers(-2, 4), st.floats(0, 150)),
    max_size=30,
)


@given(ballots)
def test_totals_always_equal_the_number_of_accepted_votes(events):
    poll, accepted, voters = make_poll(), 0, set()
    for client, index, now in events:
        try:
            poll = poll.vote(client, index, now)
        except VoteRejected:
            continue
        accepted += 1
        assert client not in voters  # one ballot per client
        voters.add(client)
    assert poll.total_votes == accepted == sum(poll.votes()) == len(poll.ballots)
    assert len(poll.votes()) == len(OPTIONS)


def test_a_client_votes_once():
    poll = make_poll().vote("a", 0, 1)
    assert reason(poll, "a", 1, 2) == "Already voted"
    assert poll.has_voted("a") and poll.voted_option("a") == 0
    assert not poll.has_voted("b") and poll.voted_option("b") is None


def test_voting_leaves_the_original_poll_unchanged():
    poll = make_poll()
    poll.vote("a", 0, 1)
    assert poll.total_votes == 0


def test_an_ended_poll_is_the_first_reason_then_a_bad_index_then_a_repeat():
    poll = make_poll(ends_at=100).vote("a", 0, 1)
    assert reason(poll, "a", 9, 100) == VoteRejected.ENDED == "Poll has ended"
    assert reason(poll.close(), "a", 9, 1) == "Poll has ended"
    assert reason(poll.close("cancelled"), "a", 0, 1) == "Poll has ended"
    assert reason(poll, "a", 9, 1) == VoteRejected.INVALID_OPTION == "Invalid option index"
    assert reason(poll, "a", -1, 1) == "Invalid option index"
    assert reason(poll, "a", 1, 1) == VoteRejected.ALREADY_VOTED == "Already voted"


def test_a_poll_without_an_end_takes_votes_until_closed():
    poll = make_poll(ends_at=None).vote("a", 2, 1e9)
    assert poll.votes() == [0, 0, 1]


def test_the_winner_is_the_first_highest_count():
    poll = make_poll()
    for client, index in [("a", 2), ("b", 1), ("c", 2), ("d", 1)]:
        poll = poll.vote(client, index, 1)
    assert poll.winner_index() == 1
    assert poll.close().winner_index() == 1


def test_no_votes_means_no_winner():
    assert make_poll().winner_index() == -1
    assert make_poll().close().ended_message()["winnerIndex"] == -1


@given(st.lists(st.integers(0, 2), max_size=10))
def test_a_cancelled_poll_never_has_a_winner(indices):
    poll = make_poll()
    for n, index in enumerate(indices):
        poll = poll.vote(f"c{n}", index, 1)
    cancelled = poll.close("cancelled")
    assert cancelled.status == "cancelled"
    assert cancelled.winner_index() == -1
    assert cancelled.ended_message()["results"] == poll.votes()


def test_close_accepts_only_closed_or_cancelled():
    with pytest.raises(ValueError, match="active"):
        make_poll().close("active")


def _no_nones(message: dict) -> bool:
    return all(value is not None for value in message.values())


def test_poll_started_has_the_protocol_keys_and_an_iso_end():
    message = make_poll(ends_at=90.5).vote("a", 1, 1).started_message()
    assert set(message) == {
        "type",
        "sessionId",
        "pollId",
        "question",
        "options",
        "endsAt",
        "votes",
        "totalVotes",
    }
    assert message["type"] == "POLL_STARTED"
    assert message["options"] == list(OPTIONS)
    assert message["votes"] == [0, 1, 0] and message["totalVotes"] == 1
    assert message["endsAt"] == "1970-01-01T00:01:30.500Z"
    assert _no_nones(message)


def test_poll_started_for_a_subscriber_says_how_they_voted():
    poll = make_poll(ends_at=None).vote("a", 2, 1)
    mine = poll.started_message("a")
    assert "endsAt" not in mine
    assert mine["hasVoted"] is True and mine["votedOptionIndex"] == 2
    theirs = poll.started_message("b")
    assert theirs["hasVoted"] is False and "votedOptionIndex" not in theirs
    assert _no_nones(mine) and _no_nones(theirs)


def test_poll_update_and_poll_ended_have_exactly_the_protocol_keys():
    poll = make_poll().vote("a", 0, 1)
    update = poll.update_message()
    assert update == {
        "type": "POLL_UPDATE",
        "pollId": 7,
        "sessionId": "conf_0001",
        "votes": [1, 0, 0],
        "totalVotes": 1,
    }
    ended = poll.close().ended_message()
    assert ended == {
        "type": "POLL_ENDED",
        "pollId": 7,
        "sessionId": "conf_0001",
        "results": [1, 0, 0],
        "totalVotes": 1,
        "winnerIndex": 0,
    }


@given(st.floats(0, 4e9, allow_nan=False) | st.none())
def test_end_times_on_the_wire_are_utc_with_z(ends_at):
    message = make_poll(ends_at=ends_at).started_message("x")
    assert _no_nones(message)
    assert ("endsAt" in message) == (ends_at is not None)
    if ends_at is not None:
        assert message["endsAt"].endswith("Z")
