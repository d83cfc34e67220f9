"""The capacity suite measures honestly: its arithmetic on known data, and one tiny run end to end.

No test asserts a latency: on a shared machine only structure and completeness are stable.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from loadtest import bus, capacity, procstat, scrape, stats, steps, windows
from loadtest.__main__ import _check, build_parser, capacity_plan, main
from loadtest.client import FrameReader, accept_for, encode_frame, parse_handshake
from loadtest.flooder import FloodRecord
from loadtest.logins import parse_head, request_bytes
from loadtest.roles import DancerRecord, DjRecord, SentEvent
from loadtest.scenarios import (
    FULL_CADENCE,
    QUICK_CADENCE,
    Phases,
    centred_offset,
    dj_schedule,
    login_accounts,
)
from loadtest.spawn import RAISED_LIMITS, _postmaster
from pika.server import Running, serve
from tests.conftest import test_settings
from tests.wsclient import until

# -- percentiles -------------------------------------------------------------------------------


def test_percentiles_of_one_to_a_hundred_are_the_nearest_ranks() -> None:
    data = [float(x) for x in range(1, 101)]
    assert stats.percentile(data, 0.50) == 50
    assert stats.percentile(data, 0.95) == 95
    assert stats.percentile(data, 0.99) == 99
    assert stats.percentile(data, 1.0) == 100
    assert stats.percentile([7.0], 0.99) == 7.0
    assert math.isnan(stats.percentile([], 0.5))


def test_summary_is_in_milliseconds_and_empty_when_there_is_no_sample() -> None:
    summary = stats.summary_ms([x / 1000 for x in range(100, 0, -1)])  # unsorted seconds
    assert summary == {"n": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert stats.summary_ms([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}


# -- delivery accounting -----------------------------------------------------------------------


def _dancer(
    index: int, subscribed: float, received: dict[str, float], leave: float | None = None
) -> DancerRecord:
    return DancerRecord(
        index, "room", t_start=0.0, t_open=0.5, t_subscribed=subscribed, t_leave=leave, received=received
    )


def test_a_missing_message_is_counted_and_named() -> None:
    events = [
        SentEvent("NOW_PLAYING", "room", "T1", t_send=10.0, t_answer=10.1),
        SentEvent("NOW_PLAYING", "room", "T2", t_send=20.0, t_answer=20.1),
        SentEvent("NOW_PLAYING", "room", "T3", t_send=30.0, t_answer=30.1, error="Rate limit exceeded"),
    ]
    dancers = [
        _dancer(0, 1.0, {"T1": 10.2, "T2": 20.3}),  # got both
        _dancer(1, 1.0, {"T1": 10.4}),  # T2 missing
        _dancer(2, 15.0, {"T2": 20.5}),  # joined after T1: owes T2 only
        _dancer(3, 1.0, {"T1": 10.6}, leave=18.0),  # left before T2: owes T1 only
        DancerRecord(4, "room", error="HTTP 429"),  # never subscribed: owes nothing
    ]
    delivery = stats.account_delivery(events, dancers)["NOW_PLAYING"]
    assert delivery.events == 2  # the NACKed T3 is owed by nobody
    assert (delivery.expected, delivery.delivered, delivery.missing) == (6, 5, 1)
    assert delivery.missing_examples == [(1, "T2")]
    assert delivery.ratio == pytest.approx(5 / 6)
    assert sorted(round(x, 3) for x in delivery.latencies) == [0.2, 0.3, 0.4, 0.5, 0.6]


def test_actions_refused_as_not_implemented_are_set_apart_from_failures() -> None:
    actions = [
        ("SEND_LIKE", "room", "T1", 1.0, 1.01, None),
        ("SEND_LIKE", "room", "T1", 1.0, 1.02, "SEND_LIKE is not available on this server yet"),
        ("SEND_LIKE", "room", "T1", 1.0, 1.03, "Rate limit exceeded"),
        ("SEND_LIKE", "room", "T1", 1.0, None, None),
    ]
    tally = stats.account_actions(actions)["SEND_LIKE"]
    assert (tally.sent, tally.acked, tally.unsupported, tally.unanswered) == (4, 1, 1, 1)
    assert tally.nacks == {"Rate limit exceeded": 1}
    assert tally.failed == 2


def test_likes_and_votes_that_reach_the_dj_are_counted_against_the_acked_ones() -> None:
    actions = [
        ("SEND_LIKE", "room", "T1", 1.0, 1.1, None),
        ("SEND_LIKE", "room", "T1", 2.0, 2.1, None),
        ("VOTE_ON_POLL", "room", "7", 3.0, 3.1, None),
        ("VOTE_ON_POLL", "room", "7", 3.5, 3.6, None),
    ]
    dj = DjRecord("room", likes=[(1.2, "T1")], poll_totals={7: [(3.3, 1), (3.8, 2)]})
    reached = stats.reached_dj(actions, [dj], {"likes": 2, "votes": 2})
    assert reached["likes"]["acked"] == 2 and reached["likes"]["at_dj"] == 1
    assert reached["likes"]["in_database"] == 2
    assert reached["votes"]["acked"] == 2 and reached["votes"]["at_dj"] == 2
    assert reached["votes"]["dj_latency_ms"]["n"] == 2


# -- generator health --------------------------------------------------------------------------


def test_a_worker_over_ninety_percent_marks_the_run_saturated() -> None:
    result = stats.saturation({"worker 0": [20.0, 95.5, 40.0], "worker 1": [10.0, 30.0], "dj": []})
    assert result["saturated"] is True
    assert result["hot_workers"] == ["worker 0"]
    assert result["workers"]["worker 0"] == {"max": 95.5, "mean": 51.8, "seconds_over": 1}
    assert stats.saturation({"worker 0": [89.9, 90.0]})["saturated"] is False


# -- the lean client's codec ---------------------------------------------------------------------


def test_the_handshake_accept_key_is_the_rfc_example() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_for(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    head = (
        f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept_for(key)}"
    )
    assert parse_handshake(head.encode(), key) is None
    assert parse_handshake(b"HTTP/1.1 429 Too Many Requests\r\n", key) == "HTTP 429"


def test_frames_split_across_reads_and_fragments_come_out_whole() -> None:
    reader = FrameReader()
    long = b"x" * 300  # needs the 16-bit length form
    stream = bytes([0x81, 3]) + b"abc" + bytes([0x81, 126]) + len(long).to_bytes(2, "big") + long
    stream += bytes([0x01, 2]) + b"he" + bytes([0x89, 0]) + bytes([0x80, 3]) + b"llo"  # fragments + ping
    out = []
    for i in range(0, len(stream), 7):
        out += reader.feed(stream[i : i + 7])
    assert out == [(1, b"abc"), (1, long), (9, b""), (1, b"hello")]


def test_client_frames_are_masked() -> None:
    frame = encode_frame(1, b"Hi", mask=b"\x01\x02\x03\x04")
    assert frame == bytes([0x81, 0x82, 1, 2, 3, 4, ord("H") ^ 1, ord("i") ^ 2])


# -- windows: before / during / after a disturbance ------------------------------------------------


def _track(marker: str, t_send: float, error: str | None = None) -> SentEvent:
    return SentEvent("NOW_PLAYING", "room", marker, t_send=t_send, t_answer=t_send + 0.01, error=error)


def test_each_track_falls_in_the_window_in_which_it_was_sent() -> None:
    assert [windows.window_of(t, 10.0, 20.0) for t in (9.99, 10.0, 15.0, 20.0, 20.01)] == [
        "before",
        "during",
        "during",
        "during",
        "after",
    ]
    events = [_track("T1", 5.0), _track("T2", 12.0), _track("T3", 25.0)]
    split = windows.split_events(events, 10.0, 20.0)
    assert {w: [e.marker for e in part] for w, part in split.items()} == {
        "before": ["T1"],
        "during": ["T2"],
        "after": ["T3"],
    }
    assert windows.split_events([], 10.0, 20.0) == {"before": [], "during": [], "after": []}


def test_fanout_is_accounted_per_window_and_compared_at_p99() -> None:
    events = [
        _track("T1", 5.0),
        _track("T2", 12.0),
        _track("T3", 14.0, error="Rate limit exceeded"),  # NACKed: owed by nobody
        SentEvent("ANNOUNCEMENT_RECEIVED", "room", "A1", t_send=13.0, t_answer=13.1),  # another kind
    ]
    dancers = [
        _dancer(0, 1.0, {"T1": 5.010, "T2": 12.100}),
        _dancer(1, 1.0, {"T1": 5.020}),  # T2 missing
    ]
    fanout = windows.fanout_by_window(events, dancers, 10.0, 20.0)
    assert fanout.keys() == {"before", "during", "after", "all"}
    before, during, after = fanout["before"], fanout["during"], fanout["after"]
    assert (before["sent"], before["expected"], before["delivered"], before["ratio"]) == (1, 2, 2, 1.0)
    assert (during["sent"], during["events"], during["expected"], during["delivered"]) == (2, 1, 2, 1)
    assert during["missing_examples"] == ["dancer 1: T2"]
    assert after["sent"] == 0 and after["latency_ms"]["n"] == 0 and after["window_s"] is None
    assert fanout["all"]["delivered"] == 3
    assert before["latency_ms"]["p99"] == pytest.approx(20.0)
    assert during["latency_ms"]["p99"] == pytest.approx(100.0)
    assert windows.p99_difference(fanout) == pytest.approx(80.0)
    assert windows.p99_difference(fanout, "after", "before") is None
    rows = windows.per_event(events, dancers)
    assert [(r["marker"], r["expected"], r["delivered"]) for r in rows] == [("T1", 2, 2), ("T2", 2, 1)]


def test_a_disturbance_sits_in_the_middle_of_the_tracks_after_the_first() -> None:
    assert centred_offset(20, 0.5, 5.0) == pytest.approx(2.25)  # tracks 0 .. 9.5 s: 2.25 .. 7.25 s
    assert centred_offset(3, 0.5, 1.0) == pytest.approx(0.25)  # never before the first track


@pytest.mark.parametrize("cadence", [FULL_CADENCE, QUICK_CADENCE], ids=["full", "quick"])
def test_the_djs_polls_and_announcements_never_land_on_a_track_change(cadence: dict[str, float]) -> None:
    """A track sent with other DJ commands waits for their commits: it would measure the DJ's queue."""
    p = Phases(ramp=0, hold=0, down=0, **cadence)
    plan = dj_schedule(["s1", "s2"], start=0.0, end=20 * p.track_every, p=p)
    tracks = [t for t, _, what in plan if what == "track"]
    others = [t for t, _, what in plan if what != "track"]
    assert len(tracks) == 40 and {"poll", "end_poll", "announce"} <= {what for _, _, what in plan}
    gap = min(abs(t - u) for t in tracks for u in others)
    assert gap >= 0.05 * p.track_every
    assert centred_offset(2, 1.0, 30.0) == pytest.approx(0.5)


def test_the_flooders_answers_are_tallied_rate_limited_apart() -> None:
    rec = FloodRecord("lt-x-flooder", sends=[1.0, 1.001, 1.002, 1.003, 1.004])
    rec.answers = {0: (1.01, None), 1: (1.02, "Already liked this track"), 2: (1.03, "Rate limit exceeded")}
    rec.answers[3] = (1.04, "Rate limit exceeded")
    rows = rec.answer_rows()
    assert rows[4] == (1.004, None, None)
    tally = windows.tally_answers(rows)
    assert (tally["sent"], tally["acked"], tally["nacked"], tally["unanswered"]) == (5, 1, 3, 1)
    assert (tally["rate_limited"], tally["other_nacks"]) == (2, 1)
    assert tally["nack_errors"] == {"Rate limit exceeded": 2, "Already liked this track": 1}
    assert tally["answer_ms"]["n"] == 4 and tally["answer_ms"]["max"] == pytest.approx(37.0)
    assert windows.send_rate(rec.sends) == pytest.approx(1000.0)
    assert windows.send_rate([1.0]) is None


def test_logins_are_tallied_by_outcome_with_a_rate_of_successes() -> None:
    attempts = [
        (10.0, 10.2, 200, None),
        (10.0, 10.4, 200, None),
        (10.1, 10.5, 401, "Invalid email or password"),
        (10.2, 12.0, None, "TimeoutError: timed out"),
        (11.0, 12.0, 200, None),
    ]
    tally = windows.tally_logins(attempts)
    assert (tally["attempts"], tally["ok"], tally["span_s"]) == (5, 3, 2.0)
    assert tally["statuses"] == {"200": 3, "401": 1, "error: TimeoutError: timed out": 1}
    assert tally["per_second"] == 1.5
    assert tally["latency_ms"]["n"] == 3 and tally["latency_ms"]["max"] == pytest.approx(1000.0)
    assert tally["answered_latency_ms"]["n"] == 4
    assert windows.tally_logins([])["per_second"] is None


def test_the_raw_http_client_speaks_plain_http_1_1() -> None:
    request = request_bytes("127.0.0.1", 3001, "/api/auth/login", {"email": "a@b.example", "password": "x"})
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:3001\r\n")
    assert b"X-Pika-Client: pika-e2e" in head and b"Content-Length: %d" % len(body) in head
    assert json.loads(body) == {"email": "a@b.example", "password": "x"}
    status, headers = parse_head(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 2")
    assert (status, headers["retry-after"], headers["content-length"]) == (429, "7", "2")
    with pytest.raises(ValueError):
        parse_head(b"SSH-2.0-OpenSSH")


def test_login_accounts_are_unique_to_a_run_and_valid() -> None:
    accounts = login_accounts("abc123", 3)
    assert len({a["email"] for a in accounts}) == len({a["displayName"] for a in accounts}) == 3
    assert all(8 <= len(a["password"]) <= 128 for a in accounts)


# -- capacity: steps, verdicts, the result ----------------------------------------------------------


def test_capacity_steps_climb_by_the_step_and_end_at_the_max() -> None:
    assert steps.rates(1000, 1000, 3000) == [1000, 2000, 3000]
    assert steps.rates(1000, 1000, 3500) == [1000, 2000, 3000, 3500]
    assert steps.rates(500, 500, 500) == [500]
    assert steps.split(900, [2, 1]) == [600, 300]  # by each worker's dancers


def test_capacity_defaults_are_3000_dancers_and_1000_more_frames_a_second_per_step() -> None:
    args = build_parser().parse_args(["capacity", "--spawn"])
    assert _check(args) is None
    plan = capacity_plan(args)
    assert (plan.dancers, plan.seconds, plan.rates) == (3000, 20.0, list(range(1000, 10_001, 1000)))
    quick = capacity_plan(build_parser().parse_args(["capacity", "--spawn", "--quick", "--max", "4000"]))
    assert (quick.seconds, quick.rates) == (5.0, [1000, 2000, 3000, 4000])
    bad = build_parser().parse_args(["capacity", "--spawn", "--step", "2000", "--max", "1000"])
    assert _check(bad) == "--step must be at least 1 and --max at least --step"


def test_enough_tracks_are_pre_played_for_every_dancers_likes() -> None:
    plan, seconds, dancers = [1000, 2000, 3000], 20.0, 3000
    likes_per_dancer = sum(plan) * seconds / dancers * steps.LIKE_SHARE  # on average: 10.5
    assert steps.tracks_needed(plan, seconds, dancers) >= 1.5 * likes_per_dancer
    assert (
        steps.tracks_needed([100_000], 600.0, 1) == steps.MAX_TRACKS <= int(RAISED_LIMITS["PIKA_TRACK_BURST"])
    )


def test_unanswered_frames_count_as_slower_than_any_answer_at_p99() -> None:
    answered = [0.010] * 99
    assert steps.ack_p99_ms(answered, 0) == pytest.approx(10.0)
    assert steps.ack_p99_ms(answered, 1) == pytest.approx(10.0)  # 1 % unanswered: the 99th still answered
    assert steps.ack_p99_ms(answered, 2) == math.inf  # more than 1 %: beyond every answer
    assert math.isnan(steps.ack_p99_ms([], 0))


def _reply(
    latencies: list[float],
    *,
    sent: int | None = None,
    late_p99_ms: float = 1.0,
    span: float = 10.0,
    nacks: dict[str, int] | None = None,
    unanswered: int = 0,
    gone: int = 0,
) -> dict[str, object]:
    """One worker's pacer.collect() reply for a step."""
    sent = len(latencies) + sum((nacks or {}).values()) + unanswered if sent is None else sent
    return {
        "sent": sent,
        "planned": sent,
        "first": 100.0,
        "last": 100.0 + span,
        "kinds": {"SEND_REACTION": sent},
        "acked": {"SEND_REACTION": len(latencies)},
        "latencies": latencies,
        "nacks": nacks or {},
        "unanswered": unanswered,
        "lateness_ms": {"p99": late_p99_ms},
        "gc_pause_s": 0.0,
        "dancers": 10,
        "dancers_gone": gone,
    }


def _step(
    rate: float, reply: dict[str, object], gen_cpu: float = 30.0, cpu_s: float = 2.0
) -> dict[str, object]:
    step = steps.figures(rate, 10.0, [reply], cpu_s, 10.0, {"worker 0": [gen_cpu], "dj": [5.0]})
    return {**step, **steps.judge(step)}


def test_a_step_passes_with_ack_p99_within_200_ms_and_reports_cpu_per_frame() -> None:
    step = _step(100, _reply([0.005] * 990 + [0.150] * 10, span=9.99))
    assert step["verdict"] == steps.PASS
    assert step["ack_ms"]["p99"] == pytest.approx(5.0)
    assert step["sent_per_s"] == pytest.approx(100.0)
    assert step["server_cpu_percent"] == 20.0
    assert step["cpu_us_per_frame"] == 2000.0  # 2 CPU s over 1,000 frames


def test_a_step_fails_on_latency_when_the_server_is_slow() -> None:
    slow = _step(100, _reply([0.005] * 980 + [0.250] * 20, span=9.99))
    assert slow["verdict"] == steps.LATENCY and "250.0 ms > 200 ms" in slow["reason"]
    lost = _step(100, _reply([0.005] * 980, unanswered=20, span=9.99))
    assert lost["verdict"] == steps.LATENCY and lost["ack_ms"]["p99"] is None
    assert "20 frames unanswered" in lost["reason"]


def test_a_slow_step_with_a_late_or_busy_generator_is_the_generators_not_the_servers() -> None:
    slow = [0.005] * 980 + [0.300] * 20  # the ACKs look like a slow server ...
    late = _step(100, _reply(slow, span=9.99, late_p99_ms=150.0))  # ... but sends left 150 ms late
    assert late["verdict"] == steps.GENERATOR and "sent late (p99 150 ms" in late["reason"]
    busy = _step(100, _reply(slow, span=9.99), gen_cpu=97.0)
    assert busy["verdict"] == steps.GENERATOR and "97 % CPU" in busy["reason"]
    short = _step(100, _reply([0.005] * 1000, span=14.0))  # 1,000 frames over 14 s: 71/s of 100/s
    assert short["verdict"] == steps.GENERATOR and "71/s of 100/s" in short["reason"]  # even if fast


def test_lateness_that_cannot_explain_the_latency_leaves_the_verdict_to_the_server() -> None:
    slow = [0.005] * 980 + [0.620] * 20
    late = _step(100, _reply(slow, span=9.99, late_p99_ms=67.0))  # 620 - 67 ms is still > 200 ms
    assert late["verdict"] == steps.LATENCY and "too little to account for it" in late["reason"]
    coped = _step(100, _reply([0.005] * 1000, span=9.99, late_p99_ms=150.0), gen_cpu=97.0)
    assert coped["verdict"] == steps.PASS  # answered in time what came in bursts


def test_refusals_and_drops_are_failures_of_their_own_not_latency() -> None:
    refused = _step(100, _reply([0.005] * 900, nacks={"Rate limit exceeded": 100}, span=9.99))
    assert refused["verdict"] == steps.REFUSED and "Rate limit exceeded" in refused["reason"]
    assert refused["ack_ms"]["n"] == 900  # NACKs are not in the ACK latency
    few = _step(100, _reply([0.005] * 995, nacks={"Rate limit exceeded": 5}, span=9.99))
    assert few["verdict"] == steps.PASS  # 0.5 % NACKed: still the server's capacity answering
    dropped = _step(100, _reply([0.005] * 1000, gone=3, span=9.99))
    assert dropped["verdict"] == steps.DROPPED
    late = _step(100, _reply([0.005] * 900, nacks={"Rate limit exceeded": 100}, span=9.99, late_p99_ms=300))
    assert late["verdict"] == steps.REFUSED  # a refusal is a fact whatever the generator did


def test_the_result_is_the_last_step_before_the_first_failure() -> None:
    ok1 = _step(1000, _reply([0.005] * 1000, span=0.999), cpu_s=0.3)
    ok2 = _step(2000, _reply([0.010] * 2000, span=0.9995), cpu_s=0.5)
    slow = _step(3000, _reply([0.300] * 3000, span=0.99967))
    result = steps.outcome([ok1, ok2, slow], max_rate=5000)
    assert result["sustained_frames_per_s"] == 2000
    assert result["cpu_us_per_frame"] == 250.0
    assert result["limited_by"] == steps.LATENCY and result["server_limit_found"] is True
    assert "3,000/s failed" in result["stopped"]
    every = steps.outcome([ok1, ok2], max_rate=2000)
    assert every["limited_by"] == "max_rate" and every["server_limit_found"] is False
    first = steps.outcome([slow], max_rate=5000)
    assert first["sustained_frames_per_s"] is None and first["cpu_us_per_frame"] is None


def test_a_climb_ended_by_the_generator_is_never_reported_as_the_servers_limit() -> None:
    ok = _step(1000, _reply([0.005] * 1000, span=0.999), cpu_s=0.3)
    saturated = _step(2000, _reply([0.400] * 2000, span=0.9995, late_p99_ms=300.0))  # 400 - 300 < 200
    result = steps.outcome([ok, saturated], max_rate=5000)
    assert result["limited_by"] == steps.GENERATOR and result["server_limit_found"] is False
    text = "\n".join(steps.render_result(result))
    assert "at least 1,000 frames/s" in text
    assert "GENERATOR could not hold the rate: this is not the server's limit" in text


def test_the_servers_metrics_are_read_as_deltas_summed_over_labels() -> None:
    before = scrape.parse(
        "# HELP pika_group_commit_actions ...\n"
        "pika_group_commit_actions_count 10.0\npika_group_commit_actions_sum 40.0\n"
        "pika_group_commit_seconds_count 10.0\npika_group_commit_seconds_sum 0.02\n"
        'pika_db_query_seconds_count{query="a"} 5.0\npika_db_query_seconds_sum{query="a"} 0.01\n'
        'pika_gc_pause_seconds_count{generation="2"} 1.0\npika_gc_pause_seconds_sum{generation="2"} 0.2\n'
        "pika_dancer_frames_held_total 3.0\npika_ws_connections 9.0\n"
    )
    after = scrape.parse(
        "pika_group_commit_actions_count 30.0\npika_group_commit_actions_sum 240.0\n"
        "pika_group_commit_seconds_count 30.0\npika_group_commit_seconds_sum 0.06\n"
        'pika_db_query_seconds_count{query="a"} 10.0\npika_db_query_seconds_sum{query="a"} 0.02\n'
        'pika_db_query_seconds_count{query="b"} 5.0\npika_db_query_seconds_sum{query="b"} 0.02\n'
        'pika_gc_pause_seconds_count{generation="0"} 4.0\npika_gc_pause_seconds_sum{generation="0"} 0.01\n'
        'pika_gc_pause_seconds_count{generation="2"} 2.0\npika_gc_pause_seconds_sum{generation="2"} 0.5\n'
        "pika_dancer_frames_held_total 3.0\n"
        'pika_bus_batches_total{direction="sent"} 7.0\npika_bus_batches_created{direction="sent"} 1.7e9\n'
    )
    inside = scrape.delta(before, after)
    assert inside == {
        "commit_batches": 20,
        "actions_per_batch": 10.0,
        "commit_ms_mean": 2.0,  # 40 ms over 20 more batches
        "statement_ms_mean": 3.0,  # 30 ms over 10 more statements
        "loop_lag_ms_mean": None,  # no sample in either
        "gc_collections": 5,
        "gc_pause_s": 0.31,
        "frames_held": 0,
        "bus_batches_sent": 7,
        "bus_batches_received": 0,
        "connections": 0,  # a gauge: what the later scrape says
    }
    assert scrape.delta(None, after) is None


def test_every_workers_metrics_are_summed_and_one_missing_leaves_no_total() -> None:
    owner = scrape.parse('pika_ws_connections 4.0\npika_bus_batches_total{direction="received"} 30.0\n')
    other = scrape.parse('pika_ws_connections 6.0\npika_bus_batches_total{direction="sent"} 30.0\n')
    assert scrape.total([owner, other]) == {
        "pika_ws_connections": 10.0,
        "pika_bus_batches_total:received": 30.0,
        "pika_bus_batches_total:sent": 30.0,
    }
    assert scrape.total([owner, None]) is None  # half a server must not pass for the whole


def test_a_childs_cpu_counts_for_its_parents_tree_once_it_has_ended() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    tree, alone = procstat.read_tree(os.getpid()), procstat.read(os.getpid())
    subprocess.run([sys.executable, "-c", burn], check=True)  # ended and reaped: in our cutime
    tree_after, alone_after = procstat.read_tree(os.getpid()), procstat.read(os.getpid())
    assert tree and alone and tree_after and alone_after
    assert tree_after.cpu_s - tree.cpu_s >= 0.29
    assert alone_after.cpu_s - alone.cpu_s < tree_after.cpu_s - tree.cpu_s - 0.2


def _run(workers: int, per_frame: list[tuple[float, float]]) -> dict[str, object]:
    """A capacity result with one step per (server µs, PostgreSQL µs) at 1,000, 2,000 … frames/s."""
    return {
        "target": {"server_workers": workers},
        "steps": [
            {
                "target_per_s": 1000 * (k + 1),
                "seconds": 10.0,
                "cpu_us_per_frame": srv,
                "postgres_us_per_frame": pg,
                "total_us_per_frame": srv + pg,
                "ack_ms": {"p99": 20.0},
                "verdict": steps.PASS,
                "load_average": 1.5,
                "inside_server": {"bus_batches_sent": 400 * workers},
            }
            for k, (srv, pg) in enumerate(per_frame)
        ],
    }


def test_server_processes_are_compared_per_frame_at_the_rates_every_run_reached() -> None:
    runs = [
        _run(1, [(100.0, 20.0), (90.0, 20.0)]),
        _run(2, [(130.0, 30.0)]),  # stopped after the first step
        _run(1, [(110.0, 20.0), (95.0, 20.0)]),
        _run(2, [(120.0, 30.0), (99.0, 30.0)]),
    ]
    compared = capacity.compare_workers(runs)
    assert compared["workers"] == [1, 2] and compared["baseline_workers"] == 1
    (row,) = compared["rates"]  # 2,000/s: not every run got there
    assert row["rate"] == 1000
    one, two = row["by_workers"]["1"], row["by_workers"]["2"]
    assert (one["runs"], one["cpu_us_per_frame"], one["total_us_per_frame"]) == (2, 105.0, 125.0)
    assert (two["cpu_us_per_frame"], two["postgres_us_per_frame"], two["total_us_per_frame"]) == (
        125.0,
        30,
        155,
    )
    assert two["server_us_per_frame_each"] == [130.0, 120.0] and two["bus_batches_per_s"] == [80.0, 80.0]
    assert row["ratio_to_first"]["2"] == {
        "cpu_us_per_frame": 1.19,
        "postgres_us_per_frame": 1.5,
        "total_us_per_frame": 1.24,
    }
    table = "\n".join(capacity.render_compare_workers(compared))
    assert "1.19" in table and "[130, 120]" in table
    # each of 2 processes at 2,000/s carried 1,000/s: the one run that got there against 1 at 1,000
    (split,) = compared["per_process"]
    assert (split["workers"], split["rate"], split["baseline_rate"], split["runs"]) == (2, 2000, 1000, [1, 2])
    assert split["us_per_frame"]["cpu_us_per_frame"] == [99.0, 105.0]
    assert split["ratio"] == {
        "cpu_us_per_frame": 0.94,
        "postgres_us_per_frame": 1.5,
        "total_us_per_frame": 1.03,
    }
    assert "the same load per process" in table and "0.94" in table


def test_the_same_load_per_process_is_left_out_when_the_first_count_never_ran_that_rate() -> None:
    runs = [_run(1, [(100.0, 20.0)]), _run(3, [(120.0, 30.0), (100.0, 30.0)])]  # 3 at 2,000: 667 each
    compared = capacity.compare_workers(runs)
    assert compared["per_process"] == []
    assert "the same load per process" not in "\n".join(capacity.render_compare_workers(compared))


# -- one tiny run, end to end --------------------------------------------------------------------


async def test_a_tiny_run_against_the_real_server_delivers_every_track(
    server: Running, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    argv = [
        "rooms",
        "--url",
        server.url,
        "--server-pid",
        str(os.getpid()),  # the server runs in this test process
        "--database-url",
        server.database_url,
        "--rooms",
        "1",
        "--per-room",
        "5",
        "--tracks",
        "3",
        "--interval",
        "0.3",
        "--quiet",
        "--workers",
        "1",
        "--json",
        str(report),
    ]
    with trio.fail_after(120):
        status = await trio.to_thread.run_sync(main, argv)
    assert status == 0
    result = json.loads(report.read_text())
    assert {
        "settings",
        "machine",
        "generator",
        "connections",
        "delivery",
        "server",
        "success",
    } <= result.keys()
    assert result["connections"]["subscribed"] == 5
    tracks = result["delivery"]["NOW_PLAYING"]
    assert tracks["events"] == 3
    assert tracks["expected"] == tracks["delivered"] == 15
    assert tracks["ratio"] == 1.0
    assert set(tracks["latency_ms"]) == {"n", "p50", "p95", "p99", "max"}
    assert result["dj_events"]["BROADCAST_TRACK"]["acked"] == 3
    assert result["generator"]["workers"].keys() == {"worker 0", "dj"}
    assert result["server"]["rss"]["before_kb"] > 0
    assert result["database"]["likes"] == 0  # quiet dancers like nothing


async def test_a_tiny_flood_is_rate_limited_and_every_track_still_arrives(
    server: Running, tmp_path: Path
) -> None:
    report = tmp_path / "flood.json"
    argv = ["flood", "--url", server.url, "--server-pid", str(os.getpid()), "--dancers", "5", "--tracks", "3"]
    argv += ["--seconds", "1", "--rate", "200", "--workers", "1", "--json", str(report)]
    with trio.fail_after(120):
        status = await trio.to_thread.run_sync(main, argv)
    assert status == 0
    result = json.loads(report.read_text())
    flood = result["flood"]
    assert flood["fanout"]["all"]["expected"] == flood["fanout"]["all"]["delivered"] == 15
    assert flood["fanout"]["before"]["sent"] == 1  # the track the flooder likes
    assert flood["fanout"]["before"]["sent"] + flood["fanout"]["during"]["sent"] <= 3
    likes = flood["flooder"]["likes"]
    assert likes["sent"] == 200 and likes["unanswered"] == 0
    assert likes["acked"] == 1  # one like of the one played track; the test server keeps 10/min
    assert likes["rate_limited"] == 200 - 10
    assert flood["flooder"]["open_at_end"] is True
    assert len(flood["per_track"]) == 3


async def test_tiny_logins_run_beside_the_tracks(nursery: trio.Nursery, db_url: str, tmp_path: Path) -> None:
    settings = test_settings(db_url, login_attempts_per_ip=10**6, register_per_ip=1000)
    running: Running = await nursery.start(serve, settings)
    report = tmp_path / "logins.json"
    argv = ["logins", "--url", running.url, "--dancers", "5", "--tracks", "4", "--clients", "3"]
    argv += ["--workers", "1", "--json", str(report)]
    with trio.fail_after(120):
        status = await trio.to_thread.run_sync(main, argv)
    assert status == 0
    result = json.loads(report.read_text())
    section = result["logins"]
    assert section["fanout"]["all"]["expected"] == section["fanout"]["all"]["delivered"] == 20
    assert section["fanout"]["before"]["sent"] == 2
    logins = section["logins"]
    assert logins["attempts"] >= 3 and logins["ok"] == logins["attempts"]
    assert set(logins["latency_ms"]) == {"n", "p50", "p95", "p99", "max"}
    assert section["registered"] == 3


async def test_a_tiny_capacity_run_gets_its_frames_acked_step_by_step(
    nursery: trio.Nursery, db_url: str, tmp_path: Path
) -> None:
    raised = {"likes_per_minute": 10**6, "tempo_per_minute": 10**6, "reactions_per_window": 10**6}
    running: Running = await nursery.start(serve, test_settings(db_url, track_burst=1000, **raised))
    report = tmp_path / "capacity.json"
    argv = ["capacity", "--url", running.url, "--server-pid", str(os.getpid()), "--database-url"]
    argv += [running.database_url, "--dancers", "6", "--step", "20", "--max", "40", "--seconds", "1"]
    argv += ["--workers", "1", "--json", str(report)]
    with trio.fail_after(120):
        status = await trio.to_thread.run_sync(main, argv)
    assert status == 0
    result = json.loads(report.read_text())
    assert {"sustained_frames_per_s", "cpu_us_per_frame", "steps", "limited_by"} <= result.keys()
    climbed = [s["target_per_s"] for s in result["steps"]]
    assert climbed == [20, 40][: len(climbed)]  # a slow machine may stop it at the first step
    for step in result["steps"]:
        assert step["sent"] == step["planned"] == step["target_per_s"]
        assert step["acked"] + step["nacked"] + step["unanswered"] == step["sent"]
        assert step["nacked"] == 0
        assert set(step["kinds"]) <= {"SEND_LIKE", "SEND_TEMPO_REQUEST", "SEND_REACTION"}
        assert {"p50", "p95", "p99", "max"} <= step["ack_ms"].keys()
        assert {"server_cpu_percent", "host_busy_percent", "generator_cpu_percent"} <= step.keys()
        inside = step["inside_server"]  # the server's /metrics, read around the step
        assert inside["commit_batches"] > 0 and inside["commit_ms_mean"] > 0
        assert step["cpu_us_per_frame"] is not None and step["verdict"] in ("pass", "latency", "generator")
    assert sum(s["acked"] for s in result["steps"]) > 0
    likes = result["likes"]
    assert likes["acked"] == likes["at_dj"] == likes["in_database"]


def test_a_tiny_capacity_run_against_one_then_two_server_processes_sums_their_cpu(tmp_path: Path) -> None:
    report = tmp_path / "workers.json"
    argv = ["capacity", "--spawn", "--server-workers", "1,2", "--dancers", "24", "--step", "30"]
    argv += ["--max", "30", "--seconds", "2", "--workers", "1", "--json", str(report)]
    assert main(argv) == 0
    result = json.loads(report.read_text())
    one, two = result["runs"]
    assert (one["target"]["server_workers"], two["target"]["server_workers"]) == (1, 2)
    for run in (one, two):
        (step,) = run["steps"]
        assert step["sent"] == 60 and step["acked"] + step["unanswered"] == 60 and step["nacked"] == 0
        assert step["total_us_per_frame"] == pytest.approx(
            step["cpu_us_per_frame"] + step["postgres_us_per_frame"], abs=0.2
        )
        likes = run["likes"]  # the other worker's likes reached the DJ on the owner, once each
        assert likes["acked"] == likes["at_dj"] == likes["in_database"]
    (step,) = two["steps"]
    workers = step["per_worker"]  # each worker's own /metrics port
    assert len(workers) == 2 and sum(w["connections"] for w in workers) == 25  # the DJ and 24 dancers
    assert all(w["cpu_percent"] > 0 for w in workers)  # each worker process sampled on its own
    if min(w["connections"] for w in workers) > 1:  # the kernel gave the other worker dancers too
        assert step["inside_server"]["bus_batches_sent"] > 0  # their frames crossed the bus
    (row,) = result["compare_workers"]["rates"]
    assert set(row["by_workers"]) == {"1", "2"} and row["ratio_to_first"]["2"]["cpu_us_per_frame"] > 0


@dataclass
class SpawnedRun:
    """`python -m loadtest flood --spawn` under way: its process and everything it started."""

    proc: subprocess.Popen[bytes]
    descendants: dict[int, str]  # pid -> command line: the server, dancer/DJ workers and the rest
    postmaster: int  # the server's embedded PostgreSQL, which is not its child
    temp_dir: Path  # spawn's throwaway directory (the server's PIKA_DATA_DIR's parent)


async def start_spawned_run(log: Path) -> SpawnedRun:
    """Start a long flood run (a spawned server, a dancer worker, the DJ's, the flooder) and wait
    until its server is healthy and its workers are up."""
    argv = [sys.executable, "-m", "loadtest", "flood", "--spawn", "--dancers", "2", "--tracks", "400"]
    argv += ["--interval", "0.5", "--workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1])

    def under_way() -> SpawnedRun | None:
        found = descendants(proc.pid)
        servers = [pid for pid, argv in found.items() if "pika serve" in argv]
        workers = [argv for argv in found.values() if "multiprocessing.spawn" in argv]
        if len(servers) != 1 or len(workers) < 2:  # the dancers' and the DJ's
            return None
        pgdata = data_dir(servers[0]) / "pgdata"
        postmaster = _postmaster(pgdata)  # written before the server answers /health
        return SpawnedRun(proc, found, postmaster, pgdata.parents[1]) if postmaster else None

    try:
        await until(under_way, seconds=90)
    except BaseException:
        proc.kill()
        raise
    run = under_way()
    assert run is not None
    return run


def leftovers(run: SpawnedRun) -> list[str]:
    """The command lines of what the run started that still runs, its PostgreSQL included."""
    started = {**run.descendants, run.postmaster: "postgres (the server's)"}
    return [argv for pid, argv in started.items() if alive(pid)]


def stop_leftovers(run: SpawnedRun) -> None:
    """What a failed test left running, stopped; spawn's directory removed."""
    if run.proc.poll() is None:
        run.proc.kill()
    for pid in [*run.descendants, run.postmaster]:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
    shutil.rmtree(run.temp_dir, ignore_errors=True)


def descendants(pid: int) -> dict[int, str]:
    """Every living process below `pid`, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        stat = _stat(entry.name) if entry.name.isdigit() else None
        if stat is not None and stat[0] != "Z":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    out, todo = {}, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        with contextlib.suppress(OSError):
            out[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        todo += children.get(child, [])
    return out


def alive(pid: int) -> bool:
    stat = _stat(str(pid))
    return stat is not None and stat[0] != "Z"


def _stat(pid: str) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def data_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    (value,) = [v for v in environ if v.startswith(b"PIKA_DATA_DIR=")]
    return Path(value.split(b"=", 1)[1].decode())


async def test_a_spawned_run_stopped_with_sigterm_leaves_nothing_running_and_no_data_behind(
    tmp_path: Path,
) -> None:
    run = await start_spawned_run(tmp_path / "loadtest.log")
    try:
        run.proc.send_signal(signal.SIGTERM)
        await until(lambda: run.proc.poll() is not None, seconds=60)  # a hang guard only
        log = (tmp_path / "loadtest.log").read_text()
        assert run.proc.returncode == 130, log  # as after Ctrl-C: stopped, not killed
        with contextlib.suppress(trio.TooSlowError):  # e.g. the resource tracker follows its parent
            await until(lambda: not leftovers(run), seconds=30)
        assert leftovers(run) == [], log
        assert not run.temp_dir.exists()
    finally:
        stop_leftovers(run)


async def test_a_spawned_server_stops_when_the_run_is_killed_outright(tmp_path: Path) -> None:
    run = await start_spawned_run(tmp_path / "loadtest.log")
    try:
        run.proc.kill()  # SIGKILL: nothing of the run's own unwinds
        run.proc.wait()
        # The server was told by the kernel (SIGTERM, its orderly stop); the workers see their
        # pipes close.  Generous: the server stops its PostgreSQL first.
        with contextlib.suppress(trio.TooSlowError):
            await until(lambda: not leftovers(run), seconds=60)
        assert leftovers(run) == []
    finally:
        stop_leftovers(run)  # and the directory, which nobody was left to remove


async def test_capacity_against_a_server_with_its_default_limits_says_the_limits_answered(
    nursery: trio.Nursery, db_url: str, tmp_path: Path
) -> None:
    running: Running = await nursery.start(serve, test_settings(db_url, track_burst=1000))
    report = tmp_path / "refused.json"
    argv = ["capacity", "--url", running.url, "--dancers", "5", "--step", "50", "--max", "100"]
    argv += ["--seconds", "2", "--workers", "1", "--json", str(report)]
    with trio.fail_after(120):
        status = await trio.to_thread.run_sync(main, argv)
    assert status == 0
    result = json.loads(report.read_text())
    assert result["limited_by"] == "refused", result["stopped"]
    assert result["server_limit_found"] is False
    assert result["sustained_frames_per_s"] is None
    (step,) = result["steps"]  # 20 frames per dancer: 5 thank-yous per 10 s each are allowed
    assert step["nack_errors"].get("Rate limit exceeded", 0) == step["nacked"] > 0
    assert step["acked"] + step["nacked"] + step["unanswered"] == step["sent"] == 100
    assert step["ack_ms"]["n"] == step["acked"]  # the refusals are not in the ACK latency


def test_the_bus_rate_is_the_highest_step_sent_in_full_within_the_limit() -> None:
    steps = [
        {"rate": 1000, "sent_per_s": 998, "p99_ms": 4.0},
        {"rate": 2000, "sent_per_s": 1999, "p99_ms": 30.0},
        {"rate": 4000, "sent_per_s": 2500, "p99_ms": 20.0},  # the sender could not keep up
        {"rate": 8000, "sent_per_s": 7990, "p99_ms": 80.0},
    ]
    assert bus.best_rate(steps) == 1999
    assert bus.best_rate(steps[3:]) is None


async def test_a_tiny_bus_run_delivers_every_event_to_the_other_process(db_url: str, tmp_path: Path) -> None:
    report = tmp_path / "bus.json"
    args = ["--rates", "100,200", "--seconds", "1", "--database-url", db_url, "--json", str(report)]
    done = await trio.run_process(
        [sys.executable, "-m", "loadtest", "bus", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert b"highest rate with p99" in done.stdout
    steps = json.loads(report.read_text())["steps"]
    assert [s["rate"] for s in steps] == [100, 200]
    assert all(s["lost"] == 0 and s["received"] > 0 and s["rereads"] == 0 for s in steps)
