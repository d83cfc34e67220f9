"""What a room decision asks of the shell: SQL to commit, frames to send, timers, a refusal.

Effects are plain values in the order they were decided.  The shell commits every `Write` of a
decision in one transaction (or one group-commit batch) before it releases any `Send`, so
nothing is visible before it is durable and the database sees the decisions in memory order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pika.live.tempo import TempoCounts
from pika.queries import Query


class Audience(Enum):
    """Who a frame is for (PROTOCOL.md §4)."""

    ROOM = "room"  # subscribers and the DJ side
    SUBSCRIBERS = "subscribers"  # subscribers that are not on the DJ side
    DJ = "dj"  # the DJ connection and its controllers
    SENDER = "sender"  # the connection whose command this is
    EVERYONE = "everyone"  # every connection of the server (SESSION_ENDED, SESSION_EXPIRED)


@dataclass(frozen=True, slots=True)
class Write:
    """One SQL statement with its parameters.  `feeds`: its returned row completes the command
    (the shell decides `Stored(row)` next, in the same turn); no row refuses the command, and
    nothing of its transaction is kept.  `row`: one row of a set-based
    statement, joined with its group-commit batch (live/group_commit.py `Row`), refused by
    `answer` of what the statement returns for it."""

    query: Query
    params: dict[str, Any]
    feeds: bool = False
    row: bool = False
    answer: Callable[[dict[str, Any]], Any] | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Frames for an audience, encoded once and written back to back (one write per member)."""

    messages: tuple[dict[str, Any], ...]
    audience: Audience


@dataclass(frozen=True, slots=True)
class Refuse:
    """The command changes nothing: NACK (or ERROR without a messageId) with `reason`."""

    reason: str


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Decide `TimerFired(name)` at epoch time `at` (replacing a timer of that name)."""

    name: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Poke:
    """Coalesced feedback is due (`tempo`, `poll`, `listeners`): the shell's coalescers send it."""

    what: str


@dataclass(frozen=True, slots=True)
class TempoClosed:
    """The play ended with this tally: the DJ sees exactly it (unless just sent), then votes reset."""

    counts: TempoCounts


Effect = Write | Send | Refuse | SetTimer | CancelTimer | Poke | TempoClosed

POLL_TIMER = "poll"
ANNOUNCEMENT_TIMER = "announcement"
GRACE_TIMER = "grace"
