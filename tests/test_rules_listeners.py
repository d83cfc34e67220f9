"""The listener count rule (PROTOCOL.md §7), including clients carried over a restart and the
members other processes report (gone once their process stops reporting)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pika.live.listeners import REPORT_EVERY, REPORT_LAPSE, Listeners

LINGER = 300.0
clients = st.sampled_from(["client_a", "client_b", "client_c"])


def test_a_restored_client_counts_until_its_linger_passes() -> None:
    listeners = Listeners(LINGER)
    listeners.restore("client_a", left=100.0)
    assert listeners.count(399.0) == 1
    assert listeners.next_expiry() == 400.0
    assert listeners.count(400.0) == 0


def test_a_restored_client_that_reconnects_counts_once_and_no_longer_lingers() -> None:
    listeners = Listeners(LINGER)
    listeners.restore("client_a", left=100.0)
    assert listeners.join("client_a")  # its first connection in this run
    assert listeners.count(10_000.0) == 1
    assert listeners.next_expiry() is None


def test_restoring_never_shortens_a_linger_or_unlinks_an_open_client() -> None:
    listeners = Listeners(LINGER)
    listeners.join("client_a")
    listeners.join("client_b")
    listeners.leave("client_b", 200.0)
    listeners.restore("client_a", left=0.0)
    listeners.restore("client_b", left=50.0)
    assert listeners.count(450.0) == 2  # a still open, b lingers from 200 (not from 50)
    assert listeners.count(500.0) == 1


def test_a_silent_process_s_members_leave_when_it_was_last_heard_then_linger() -> None:
    listeners = Listeners(LINGER)
    listeners.join("client_a")  # connected to this process
    assert listeners.report("far#1", ["client_b", "client_c"], 100.0)
    assert not listeners.report("far#1", ["client_c", "client_b"], 100.0 + REPORT_EVERY)  # the same members
    heard = 100.0 + REPORT_EVERY
    assert listeners.next_expiry() == heard + REPORT_LAPSE
    assert listeners.count(heard + REPORT_LAPSE - 0.1) == 3  # reports may still come
    assert listeners.count(heard + REPORT_LAPSE) == 3  # silent: b and c left at `heard`, and linger
    assert listeners.connected == 1
    assert listeners.next_expiry() == heard + LINGER
    assert listeners.count(heard + LINGER) == 1


def test_a_silent_process_s_member_connected_elsewhere_still_counts_as_connected() -> None:
    listeners = Listeners(0.0)
    listeners.report("far#1", ["client_a", "client_b"], 0.0)
    listeners.report("far#2", ["client_b"], 10.0)  # b's other tab, on a third process
    listeners.join("client_a")  # a reconnected here after far#1 was killed
    assert listeners.count(REPORT_LAPSE) == 2  # far#1 lapsed: a and b still open elsewhere
    assert listeners.count(10.0 + REPORT_LAPSE) == 1  # far#2 lapsed too
    assert listeners.next_expiry() is None


def test_a_member_left_out_of_a_report_lingers_from_that_report() -> None:
    listeners = Listeners(LINGER)
    listeners.report("far#1", ["client_a", "client_b"], 0.0)
    assert listeners.report("far#1", ["client_a"], 3.0)
    assert listeners.report("far#1", [], 4.0)  # nothing left to report: the process is not expected again
    assert listeners.next_expiry() == 3.0 + LINGER
    assert listeners.count(4.0 + LINGER) == 0


@given(st.lists(st.tuples(st.booleans(), clients), max_size=40))
def test_join_and_leave_report_exactly_the_first_open_and_the_last_close(events) -> None:
    listeners = Listeners(LINGER)
    open_: dict[str, int] = {}
    for now, (joins, client) in enumerate(events):
        if joins:
            assert listeners.join(client) == (open_.get(client, 0) == 0)
            open_[client] = open_.get(client, 0) + 1
        elif open_.get(client):
            open_[client] -= 1
            assert listeners.leave(client, float(now)) == (open_[client] == 0)
    assert listeners.connected == sum(1 for n in open_.values() if n)
