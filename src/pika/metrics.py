"""Prometheus metrics for /metrics: one registry, names prefixed `pika_`.

Counters are module-level so any layer can count without a reference being passed around;
gauges that reflect live state (connections, sessions) are read from the hub at scrape time.
Hot paths take a labelled child through `child()`, which looks each one up once.
"""

from __future__ import annotations

import functools
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

REGISTRY = CollectorRegistry()

PROCESS_INFO = Gauge(
    "pika_process_info",
    "Always 1: which server process answered this scrape (serve --workers N runs several)",
    ["process", "pid"],
    registry=REGISTRY,
)
CONNECTIONS = Gauge("pika_ws_connections", "Open WebSocket connections", registry=REGISTRY)
LIVE_SESSIONS = Gauge("pika_live_sessions", "Live DJ sessions", registry=REGISTRY)
MESSAGES_IN = Counter(
    "pika_ws_messages_in_total", "Inbound WebSocket messages by type", ["type"], registry=REGISTRY
)
MESSAGES_OUT = Counter(
    "pika_ws_messages_out_total",
    "Outbound WebSocket frames by type (one per recipient)",
    ["type"],
    registry=REGISTRY,
)
SLOW_CONSUMERS = Counter(
    "pika_ws_slow_consumer_closes_total",
    "Connections closed 1013 because their outbox was full",
    registry=REGISTRY,
)
NACKS = Counter(
    "pika_ws_nacks_total",
    "NACK/ERROR replies, by reason: invalid, refused, rate_limited, database, internal",
    ["reason"],
    registry=REGISTRY,
)
CLOSES = Counter(
    "pika_ws_closes_total", "WebSocket connections closed, by close code", ["code"], registry=REGISTRY
)
REJECTED_UPGRADES = Counter(
    "pika_ws_rejected_upgrades_total",
    "WebSocket upgrades refused before accept, by status",
    ["status"],
    registry=REGISTRY,
)
TELEMETRY_DROPPED = Counter(
    "pika_telemetry_dropped_total",
    "session_events rows dropped because the telemetry queue was full",
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter("pika_http_requests_total", "HTTP requests by status", ["status"], registry=REGISTRY)
DB_QUERY_SECONDS = Histogram(
    "pika_db_query_seconds",
    "PostgreSQL statement latency in the worker thread, by query name",
    ["query"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
DB_POOL_WAIT_SECONDS = Histogram(
    "pika_db_pool_wait_seconds",
    "How long a database call waited for a free connection (worker thread) before it began",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "pika_database_up",
    "1 when PostgreSQL answered the scrape's probe (as /health), else 0",
    registry=REGISTRY,
)
DB_STALLS = Counter(
    "pika_db_stalls_total",
    "Times PostgreSQL missed a call's deadline and calls began to fail fast",
    registry=REGISTRY,
)

GROUP_COMMIT_SIZE = Histogram(
    "pika_group_commit_actions",
    "Dancer actions written per transaction by the group commit (live/group_commit.py)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
    registry=REGISTRY,
)
GROUP_COMMIT_SECONDS = Histogram(
    "pika_group_commit_seconds",
    "Each group-commit transaction, from taking its batch to its commit: the durable write every "
    "ACK and every broadcast waits for (statements, COMMIT's flush to disk, thread hand-offs)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)

LOOP_LAG_SECONDS = Histogram(
    "pika_loop_lag_seconds",
    "How late the event loop wakes from a 10 ms sleep: high means frames wait to be handled",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)

DANCER_FRAMES_HELD = Counter(
    "pika_dancer_frames_held_total",
    "Dancer frames that waited for a turn because the event loop lagged (live/loop_guard.py)",
    registry=REGISTRY,
)

GC_PAUSE_SECONDS = Histogram(
    "pika_gc_pause_seconds",
    "Python's cyclic garbage collector: how long each collection stopped the event loop, by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)

PUSH_RESULTS = Counter(
    "pika_push_deliveries_total",
    "Web Push deliveries by result: sent, gone (404/410, deleted), retried, expired, failed, dropped,"
    " refused (a host PIKA_PUSH_HOSTS does not name)",
    ["result"],
    registry=REGISTRY,
)

BUS_BATCHES = Counter(
    "pika_bus_batches_total",
    "Room batches on the bus between processes (one NOTIFY each), by direction: sent, received",
    ["direction"],
    registry=REGISTRY,
)
FORWARDED_FRAMES = Counter(
    "pika_forwarded_frames_total",
    "Frames of DJ-side connections whose room another process owns (live/forward.py): to_owner and"
    " from_owner on the process holding the socket, served on the owner",
    ["direction"],
    registry=REGISTRY,
)
BUS_REREADS = Counter(
    "pika_bus_rereads_total",
    "Times the bus asked for rooms to be re-read from PostgreSQL (a gap, a new owner, a reconnect)",
    registry=REGISTRY,
)

AUDIT_EVENTS = Counter(
    "pika_audit_events_total", "Audit log lines (pika/audit.py), by event", ["event"], registry=REGISTRY
)


@functools.cache
def child(metric: M, *values: str) -> M:
    """`metric.labels(*values)`, looked up once per label set (prometheus's lookup validates and
    locks on every call).  Only for labels from a small fixed set: message types, query names."""
    return metric.labels(*values)


def render() -> bytes:
    return generate_latest(REGISTRY)
