"""The listener count rule (PROTOCOL.md §7), including clients carried over a restart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pika.live.listeners import Listeners

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
