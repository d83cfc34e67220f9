"""The SQL units the room's rules write, as `Write` values: one builder per unit, shared by
every path that ends a play, a poll or an announcement (a DJ's command, a timer, the session's end).
"""

from __future__ import annotations

from pika.live.core.effects import Write
from pika.live.tempo import TempoCounts
from pika.queries import query

END_PLAY = query("end_play")
CLOSE_POLL = query("close_poll")
CLEAR_ANNOUNCEMENTS = query("clear_announcements")


def end_play(play_id: int, tempo: TempoCounts) -> Write:
    """The play stops being current; its tempo tally is stored (NULL when nobody voted)."""
    return Write(END_PLAY, {"play_id": play_id, **tally(tempo)})


def tally(tempo: TempoCounts) -> dict[str, int | None]:
    """A play's tempo tally as `end_play.sql` (and `insert_played_track.sql`) store it."""
    voted = tempo.total > 0
    return {
        "slower": tempo.slower if voted else None,
        "perfect": tempo.perfect if voted else None,
        "faster": tempo.faster if voted else None,
    }


def close_poll(poll_id: int, status: str) -> Write:
    return Write(CLOSE_POLL, {"poll_id": poll_id, "status": status})


def clear_announcements(session_id: str) -> Write:
    return Write(CLEAR_ANNOUNCEMENTS, {"session_id": session_id})
