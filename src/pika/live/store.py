"""Small units of SQL work shared by handlers and the hub; each runs inside a caller's transaction.

They run the room core's write builders (core/writes.py) in a caller's `Tx`, so ending a play, a
poll or an announcement is written the same way whether a DJ asked for it, a timer fired or the
session ended.
"""

from __future__ import annotations

from collections.abc import Iterable

from pika.db import Tx
from pika.live.core import writes
from pika.live.core.effects import Write
from pika.live.tempo import TempoCounts


def run(tx: Tx, units: Iterable[Write]) -> None:
    for unit in units:
        tx.execute(unit.query, **unit.params)


def end_play(tx: Tx, play_id: int, tempo: TempoCounts) -> None:
    """The play stops being current; its tempo tally is stored (NULL when nobody voted)."""
    run(tx, writes.end_play(play_id, tempo))


def close_poll(tx: Tx, poll_id: int, status: str) -> None:
    run(tx, (writes.close_poll(poll_id, status),))


def clear_announcements(tx: Tx, session_id: str) -> None:
    run(tx, (writes.clear_announcements(session_id),))
