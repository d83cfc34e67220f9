"""Small units of SQL work shared by handlers and the hub; each runs inside a caller's transaction.

They take a `Tx` (a worker thread's connection) and plain values, so ending a play, a poll or
an announcement is written the same way whether a DJ asked for it, a timer fired or the
session ended.
"""

from __future__ import annotations

from pika.db import Tx
from pika.live.tempo import TempoCounts
from pika.queries import query

END_PLAY = query("end_play")
STORE_TEMPO_TALLY = query("store_tempo_tally")
CLOSE_POLL = query("close_poll")
CLEAR_ANNOUNCEMENTS = query("clear_announcements")


def end_play(tx: Tx, play_id: int, tempo: TempoCounts) -> None:
    """The play stops being current; its tempo tally is stored (NULL when nobody voted)."""
    tx.execute(END_PLAY, play_id=play_id)
    voted = tempo.total > 0
    tx.execute(
        STORE_TEMPO_TALLY,
        play_id=play_id,
        slower=tempo.slower if voted else None,
        perfect=tempo.perfect if voted else None,
        faster=tempo.faster if voted else None,
    )


def close_poll(tx: Tx, poll_id: int, status: str) -> None:
    tx.execute(CLOSE_POLL, poll_id=poll_id, status=status)


def clear_announcements(tx: Tx, session_id: str) -> None:
    tx.execute(CLEAR_ANNOUNCEMENTS, session_id=session_id)
