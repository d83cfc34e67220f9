"""The in-memory mirror of applied messageIds (the dedupe check before any rate or state check)."""

from __future__ import annotations

from pika.live.applied import AppliedIds


def test_an_applied_id_is_seen_for_its_sender_only_and_only_within_the_window() -> None:
    ids = AppliedIds(window=600)
    ids.add("session:a", "m1", at=1000.0)
    assert ids.seen("session:a", "m1", now=1599.0)
    assert not ids.seen("session:b", "m1", now=1001.0)
    assert not ids.seen("session:a", "m1", now=1600.0)


def test_pruning_forgets_only_what_left_the_window() -> None:
    ids = AppliedIds(window=10)
    ids.load([("c", "old", 0.0), ("c", "new", 8.0)])
    ids.prune(now=12.0)
    assert len(ids) == 1 and ids.seen("c", "new", now=12.0)


def test_re_adding_an_id_moves_it_to_the_newest_place() -> None:
    ids = AppliedIds(window=10)
    ids.add("c", "m", at=0.0)
    ids.add("c", "other", at=5.0)
    ids.add("c", "m", at=9.0)
    ids.prune(now=14.0)
    assert ids.seen("c", "m", now=14.0) and not ids.seen("c", "other", now=15.0)


def test_a_sender_and_message_id_never_read_as_another_pair() -> None:
    ids = AppliedIds(window=10)
    ids.add("client:a", "b1", at=0.0)
    assert not ids.seen("client:ab", "1", now=1.0)
    assert not ids.seen("client:", "ab1", now=1.0)
