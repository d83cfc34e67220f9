"""The tracks' flood guard (PROTOCOL.md §3.1, §5): a burst of 10, then 1 per second, judged on
the DJ's own timeline (`playedAt`), so that a backlog is never refused for having been queued."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pika.live.track_pace import TrackPace

FRESH = TrackPace(burst=10, rate=1.0, lookback=600.0)


def take_all(pace: TrackPace, plays: list[tuple[float, float | None]]) -> tuple[TrackPace, int]:
    taken = 0
    for now, played_at in plays:
        after = pace.take(now, played_at)
        if after is not None:
            pace, taken = after, taken + 1
    return pace, taken


def test_a_burst_of_ten_then_one_per_second() -> None:
    _, taken = take_all(FRESH, [(0.0, None)] * 11)
    assert taken == 10
    pace, _ = take_all(FRESH, [(0.0, None)] * 10)
    assert pace.take(0.5) is None
    assert pace.take(1.0) is not None


def test_a_backlog_played_once_a_second_is_taken_whole_when_it_arrives_at_once() -> None:
    pace, _ = take_all(FRESH, [(float(t), None) for t in range(20)])  # a busy set before the outage
    backlog = [(100.0, 20.0 + i) for i in range(60)]  # played 20..79, all sent at 100 s
    _, taken = take_all(pace, backlog)
    assert taken == 60


def test_a_backlog_without_played_at_is_judged_when_it_arrives() -> None:
    pace, _ = take_all(FRESH, [(float(t), None) for t in range(20)])
    _, taken = take_all(pace, [(100.0, None)] * 60)
    assert taken == 10


def test_after_an_outage_the_room_saw_a_backlog_without_played_at_is_taken_whole() -> None:
    pace, _ = take_all(FRESH, [(float(t), None) for t in range(20)])
    pace = pace.database_away(20.0).database_away(30.0)  # refused from 20 s on; back at 60 s
    _, taken = take_all(pace, [(60.0, None)] * 41)  # the head, then 40 played meanwhile
    assert taken == 41
    _, taken = take_all(pace, [(60.0, None)] * 60)
    assert taken == 10 + 40  # a burst, and one a second for the outage: no more


def test_what_an_outage_owed_lapses_after_the_lookback() -> None:
    pace, _ = take_all(FRESH, [(float(t), None) for t in range(20)])
    pace = pace.database_away(20.0).take(60.0)  # back at 60 s: 40 owed, 9 of the burst left
    assert pace is not None
    _, taken = take_all(pace, [(60.0 + 600.0, None)] * 60)
    assert taken == 10


def test_a_refused_track_costs_nothing() -> None:
    pace, _ = take_all(FRESH, [(0.0, None)] * 10)
    assert pace.take(0.0) is None
    assert pace.take(1.0) is not None  # the refusal took no token


@given(
    st.lists(
        st.tuples(
            st.floats(0, 5, allow_nan=False),  # seconds since the previous message arrived
            st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),  # any playedAt at all
            st.booleans(),  # the database did not answer in time for this one
        ),
        max_size=200,
    )
)
def test_no_client_wins_more_than_a_burst_and_one_a_second_over_time_outages_and_lookback(messages) -> None:
    pace, now, taken = TrackPace(burst=10, rate=1.0, lookback=60.0), 1000.0, 0
    for gap, offset, away in messages:
        now += gap
        if away:
            pace = pace.database_away(now)
            continue
        after = pace.take(now, None if offset is None else now + offset)
        if after is not None:
            pace, taken = after, taken + 1
    elapsed = now - 1000.0
    assert taken <= 10 + 1.0 * (elapsed + 60.0) + 1.0 * elapsed + 1e-9  # + what outages owed
