"""`python -m pika.admin telemetry`: the stability report of the last days, from `session_events`.

DJ connection drops and how long reconnecting took (p50/p95), the busiest sessions, and the
client versions that connected: what to look at after a bad night or before a release.
"""

from __future__ import annotations

from typing import Any

from pika.db import Tx
from pika.ops.table import aligned, when
from pika.queries import query

TELEMETRY_STABILITY = query("telemetry_stability")
TELEMETRY_BUSIEST_SESSIONS = query("telemetry_busiest_sessions")
TELEMETRY_CLIENT_VERSIONS = query("telemetry_client_versions")


def telemetry_report(tx: Tx, days: int) -> list[str]:
    """The report's lines: three tables, each under a title."""
    s = tx.one(TELEMETRY_STABILITY, days=days) or {}
    lines = [f"DJ connections, last {days} day{'s' if days != 1 else ''}"]
    lines += aligned(
        [
            ("sessions", "connections", "disconnects", "disconnect rate", "reconnect p50", "reconnect p95"),
            (
                str(s.get("sessions", 0)),
                str(s.get("connections", 0)),
                str(s.get("disconnects", 0)),
                _pct(s.get("disconnect_pct")),
                _ms(s.get("reconnect_p50_ms")),
                _ms(s.get("reconnect_p95_ms")),
            ),
        ]
    )
    busiest = tx.all(TELEMETRY_BUSIEST_SESSIONS, days=days)
    lines += ["", "Busiest sessions"]
    lines += _table(
        ("session", "dj", "started", "ended", "plays", "likes", "dancers", "disconnects"),
        [
            (
                r["session_id"],
                r["dj_name"],
                when(r["started_at"]),
                "live" if r["ended_at"] is None else when(r["ended_at"]),
                str(r["plays"]),
                str(r["likes"]),
                str(r["dancers"]),
                str(r["disconnects"]),
            )
            for r in busiest
        ],
    )
    versions = tx.all(TELEMETRY_CLIENT_VERSIONS, days=days)
    lines += ["", "DJ client versions"]
    lines += _table(
        ("version", "connects", "sessions", "last seen"),
        [(r["version"], str(r["connects"]), str(r["sessions"]), when(r["last_seen"])) for r in versions],
    )
    return lines


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    return aligned([header, *rows]) if rows else ["(none)"]


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f} s"
