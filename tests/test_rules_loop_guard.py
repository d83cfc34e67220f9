"""The loop guard's admission rule, without a loop: ration when lag is high, open when it is gone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pika.live.loop_guard import HIGH_LAG, LOW_LAG, Admission

lags = st.floats(min_value=0, max_value=2.0, allow_nan=False)


def test_a_responsive_loop_holds_nobody():
    admission = Admission()
    for _ in range(100):
        assert admission.observe(0.001, waiting=0) == 0
    assert admission.open


def test_one_late_tick_is_a_pause_not_a_loop_behind_and_holds_nobody():
    """A garbage collection makes one tick late: closing then held thousands of frames for
    hundreds of ms while the loop had time to spare."""
    admission = Admission(per_tick=64)
    for _ in range(5):
        assert admission.observe(HIGH_LAG * 5, waiting=0) == 0
        assert admission.observe(LOW_LAG / 2, waiting=0) == 0
    assert admission.open and admission.per_tick == 64 + 5 * admission.step


def test_high_lag_closes_the_gate_and_halves_the_ration_down_to_the_floor():
    admission = Admission(per_tick=64, floor=4)
    assert admission.observe(HIGH_LAG * 2, waiting=1000) == 0  # one late tick: still open
    assert admission.observe(HIGH_LAG * 2, waiting=1000) == 32
    assert not admission.open
    rations = [admission.observe(1.0, waiting=1000) for _ in range(10)]
    assert rations[:3] == [16, 8, 4] and set(rations[3:]) == {4}


def test_the_ration_grows_while_lag_is_low_and_the_gate_opens_once_nobody_waits():
    admission = Admission(per_tick=64, step=8)
    admission.observe(1.0, waiting=500)
    admission.observe(1.0, waiting=500)  # closed, ration 32
    assert [admission.observe(LOW_LAG / 2, waiting=500) for _ in range(3)] == [40, 48, 56]
    assert admission.observe((LOW_LAG + HIGH_LAG) / 2, waiting=500) == 64  # in between: grows, stays closed
    assert not admission.open
    assert admission.observe(LOW_LAG / 2, waiting=0) == 0
    assert admission.open


def test_after_spikes_a_moderately_busy_loop_gets_its_ration_back():
    """Lag between LOW_LAG and HIGH_LAG is a loop keeping up: after a few spikes have cut the
    ration to the floor (4 a tick, ~400 frames/s), it must grow again, not stay at the floor
    while most frames wait and the CPU idles."""
    admission = Admission(per_tick=64, floor=4, step=8)
    for _ in range(5):
        admission.observe(HIGH_LAG * 3, waiting=1000)
    assert admission.per_tick == admission.floor
    busy = (LOW_LAG + HIGH_LAG) / 2
    rations = [admission.observe(busy, waiting=1000) for _ in range(20)]
    assert rations == sorted(rations) and rations[-1] == admission.floor + 20 * admission.step
    assert not admission.open  # frames still wait: the gate stays closed until lag is low


def test_under_steady_load_the_gate_reopens_once_lag_is_low_and_one_ration_covers_the_wait():
    """Frames keep arriving between ticks, so some always wait at a tick: waiting for nobody
    to wait kept the gate closed for good, and every frame paid a park and up to a tick."""
    admission = Admission(per_tick=64, step=8)
    admission.observe(1.0, waiting=500)
    admission.observe(1.0, waiting=500)  # closed, ration 32
    assert admission.observe(LOW_LAG / 2, waiting=50) == 40 and not admission.open  # 50 > 40: still rationed
    assert admission.observe(LOW_LAG / 2, waiting=30) == 0  # 30 <= 48: all go, and the gate opens
    assert admission.open
    assert admission.observe((LOW_LAG + HIGH_LAG) / 2, waiting=0) == 0 and admission.open


def test_the_ration_grows_no_further_than_its_ceiling():
    admission = Admission(per_tick=64, step=8, ceiling=100)
    admission.observe(1.0, waiting=10_000)
    admission.observe(1.0, waiting=10_000)
    assert max(admission.observe(LOW_LAG / 2, waiting=10_000) for _ in range(50)) == 100


def test_never_more_turns_than_frames_waiting():
    admission = Admission(per_tick=64)
    admission.observe(1.0, waiting=3)
    admission.observe(1.0, waiting=3)
    assert admission.observe((LOW_LAG + HIGH_LAG) / 2, waiting=3) == 3


@given(st.lists(st.tuples(lags, st.integers(min_value=0, max_value=10_000)), max_size=200))
def test_a_closed_gate_always_lets_someone_go_so_no_dancer_waits_forever(ticks):
    admission = Admission()
    for lag, waiting in ticks:
        let_go = admission.observe(lag, waiting)
        assert 0 <= let_go <= waiting
        if not admission.open and waiting:
            assert let_go >= min(waiting, admission.floor)
