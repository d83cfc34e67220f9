"""Labelled metric children looked up once still count into the series /metrics shows."""

from __future__ import annotations

from pika import metrics


def test_a_cached_child_counts_into_its_labelled_series() -> None:
    def sample() -> float | None:
        return metrics.REGISTRY.get_sample_value("pika_ws_messages_in_total", {"type": "TEST_CHILD"})

    before = sample() or 0.0
    metrics.child(metrics.MESSAGES_IN, "TEST_CHILD").inc()
    metrics.child(metrics.MESSAGES_IN, "TEST_CHILD").inc(2)
    assert sample() == before + 3
    assert metrics.child(metrics.MESSAGES_IN, "TEST_CHILD") is metrics.MESSAGES_IN.labels("TEST_CHILD")
    assert metrics.child(metrics.MESSAGES_OUT, "TEST_CHILD") is not metrics.child(
        metrics.MESSAGES_IN, "TEST_CHILD"
    )
