"""The bus's pure parts: per-room numbering with gap detection, and the NOTIFY envelope."""

from __future__ import annotations

import pytest

from pika.bus.envelope import MAX_PAYLOAD, BadEnvelope, Envelope
from pika.bus.sequence import Sequencer, Sequences, Verdict


def test_a_sender_numbers_each_room_on_its_own() -> None:
    sequencer = Sequencer()
    assert [sequencer.next("a"), sequencer.next("a"), sequencer.next("b"), sequencer.next("a")] == [
        1,
        2,
        1,
        3,
    ]


def test_a_number_given_to_a_batch_not_yet_committed_is_taken_only_once_it_is() -> None:
    """`following` numbers a batch sent inside a transaction; a rolled-back one never `take`s
    its number, so the next batch gets it again and receivers see no gap."""
    sequencer = Sequencer()
    assert sequencer.next("a") == 1
    assert sequencer.following("a") == 2  # sent, then rolled back
    assert sequencer.following("a") == 2  # sent again, committed
    sequencer.take("a", 2)
    assert (sequencer.next("a"), sequencer.following("b")) == (3, 1)


def test_batches_in_order_are_applied_and_repeats_ignored() -> None:
    seen = Sequences()
    assert [seen.accept("a", "p1", n) for n in (1, 2, 3)] == [Verdict.NEXT] * 3
    assert seen.accept("a", "p1", 2) is Verdict.STALE
    assert seen.accept("a", "p1", 4) is Verdict.NEXT


def test_a_missing_number_means_the_room_is_re_read_then_followed_again() -> None:
    seen = Sequences()
    seen.accept("a", "p1", 1)
    assert seen.accept("a", "p1", 3) is Verdict.REREAD
    assert seen.accept("a", "p1", 4) is Verdict.NEXT
    assert seen.accept("b", "p1", 1) is Verdict.NEXT  # other rooms are not affected


def test_a_room_is_taken_up_mid_stream_but_a_new_owner_means_a_re_read() -> None:
    seen = Sequences()
    assert seen.accept("a", "p1", 57) is Verdict.NEXT  # first heard of: its state was read at join
    assert seen.accept("a", "p2", 1) is Verdict.REREAD  # p1's last batches may be lost
    assert seen.accept("a", "p2", 2) is Verdict.NEXT


def test_after_a_reset_rooms_are_taken_up_afresh() -> None:
    seen = Sequences()
    seen.accept("a", "p1", 1)
    seen.reset()
    assert seen.accept("a", "p1", 9) is Verdict.NEXT


def test_an_envelope_carries_its_frames_and_comes_back_the_same() -> None:
    envelope = Envelope("host:1#ab", "friday", 7, ('{"type":"NOW_PLAYING","x":"a\\nb"}', '{"type":"X"}'))
    assert envelope.fits()
    assert Envelope.decode(envelope.encode()) == envelope
    stored = Envelope("host:1#ab", "friday", 8, None, event_id=42)
    assert Envelope.decode(stored.encode()) == stored


def test_frames_too_big_for_a_notification_do_not_fit() -> None:
    assert not Envelope("o", "s", 1, ("x" * MAX_PAYLOAD,)).fits()
    assert not Envelope("o", "s", 1, ("é" * (MAX_PAYLOAD // 2),)).fits()  # counted in UTF-8 bytes


@pytest.mark.parametrize("payload", ["hello", "[1,2]", '["o","s","3",null]', ""])
def test_a_foreign_notification_is_refused_clearly(payload: str) -> None:
    with pytest.raises(BadEnvelope, match="not a bus envelope"):
        Envelope.decode(payload)
