"""Tempo votes as a pure rule: one live vote per client, newest wins, `clear` removes, 300 s lapse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pika.live.tempo import TempoCounts, TempoTally
from pika.protocol import TEMPO_PREFERENCES, TEMPO_VOTES

clients = st.sampled_from(["a", "b", "c", "d", "e"])
choices = st.sampled_from(TEMPO_PREFERENCES)
times = st.floats(min_value=0, max_value=1000, allow_nan=False)
events = st.lists(st.tuples(clients, choices, times), max_size=40)


def replay(evs: list[tuple[str, str, float]]) -> TempoTally:
    tally = TempoTally()
    for client, preference, now in evs:
        tally.cast(client, preference, now)
    return tally


def live_votes(evs: list[tuple[str, str, float]], now: float, lapse: float = 300.0) -> dict[str, str]:
    """The model: each client's last event, kept when it is a vote cast less than `lapse` ago."""
    last: dict[str, tuple[str, float]] = {}
    for client, preference, at in evs:
        last[client] = (preference, at)
    return {c: p for c, (p, at) in last.items() if p != "clear" and now - at < lapse}


@given(events, times)
def test_the_tally_always_equals_each_clients_last_live_vote(evs, now):
    counts = replay(evs).counts(now)
    model = live_votes(evs, now)
    assert counts.total == len(model)
    for preference in TEMPO_VOTES:
        assert getattr(counts, preference) == sum(p == preference for p in model.values())


@given(events)
def test_next_lapse_is_always_the_earliest_live_votes_cast_plus_the_lapse(evs):
    last: dict[str, tuple[str, float]] = {}
    for client, preference, at in evs:
        last[client] = (preference, at)
    live = [at for preference, at in last.values() if preference != "clear"]
    assert replay(evs).next_lapse(lapse=10) == (min(live) + 10 if live else None)


def test_clear_removes_the_clients_vote():
    tally = TempoTally().cast("a", "faster", 0).cast("b", "slower", 0).cast("a", "clear", 1)
    assert tally.counts(2) == TempoCounts(slower=1)
    assert "a" not in tally.votes


def test_clear_without_a_vote_changes_nothing():
    assert TempoTally().cast("a", "clear", 0).counts(0).total == 0


def test_a_new_vote_replaces_the_clients_old_one():
    tally = TempoTally().cast("a", "faster", 0).cast("a", "slower", 10)
    assert tally.counts(11) == TempoCounts(slower=1)


def test_a_vote_lapses_after_300_seconds():
    tally = TempoTally().cast("a", "perfect", 100)
    assert tally.counts(399.9).perfect == 1
    assert tally.counts(400).total == 0


def test_a_renewed_vote_counts_for_another_300_seconds():
    tally = TempoTally().cast("a", "perfect", 0).cast("a", "perfect", 200)
    assert tally.counts(450).perfect == 1


def test_an_unknown_preference_is_a_bug_not_a_vote():
    with pytest.raises(ValueError, match="sideways"):
        TempoTally().cast("a", "sideways", 0)


def test_next_lapse_is_when_the_earliest_vote_stops_counting():
    assert TempoTally().next_lapse() is None
    tally = TempoTally().cast("a", "faster", 50).cast("b", "slower", 20).cast("c", "perfect", 80)
    assert tally.next_lapse() == 320
    assert tally.next_lapse(lapse=10) == 30
    assert tally.cast("b", "clear", 90).next_lapse() == 350


@given(events, times)
def test_pruning_keeps_the_counts_and_moves_next_lapse_past_now(evs, now):
    before = replay(evs).counts(now)
    pruned = replay(evs).prune(now)
    assert pruned.counts(now) == before
    lapse_at = pruned.next_lapse()
    assert lapse_at is None or lapse_at > now


@given(events)
def test_a_tally_survives_a_round_trip_through_stored_rows(evs):
    tally = replay(sorted(evs, key=lambda e: e[2]))  # a database hands back votes cast in time order
    rows = [(client, preference, at) for client, (preference, at) in tally.votes.items()]
    assert TempoTally.from_votes(reversed(rows)) == tally


def test_from_votes_keeps_the_newest_row_of_a_client():
    tally = TempoTally.from_votes([("a", "slower", 20), ("a", "faster", 10)])
    assert tally.votes == {"a": ("slower", 20)}


def test_feedback_has_exactly_the_tempo_feedback_keys():
    message = TempoCounts(faster=2, perfect=1, slower=3).feedback("conf_0001")
    assert message == {
        "type": "TEMPO_FEEDBACK",
        "sessionId": "conf_0001",
        "faster": 2,
        "slower": 3,
        "perfect": 1,
        "total": 6,
    }
