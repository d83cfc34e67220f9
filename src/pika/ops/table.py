"""Plain aligned text tables for the admin commands: what an operator reads in a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """The rows (the first one a header) as lines, each column padded to its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def when(value: datetime | None) -> str:
    """A timestamp in UTC to the second, or "never"."""
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
