"""What the DJ types while the agent runs, parsed into the DJ messages of PROTOCOL.md §3.1.

No I/O: `parse` turns a line into a `Command` (a message to send, or `help`/`end` for the agent)
or raises CommandError with one line saying what was wrong and how to write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["HELP", "Command", "CommandError", "parse"]

HELP = """commands:
  poll [SECONDS] QUESTION | OPTION | OPTION ...   start a poll: 2-10 options, 30-300 s (or until ended)
  endpoll                                         end the poll and show the winner
  cancelpoll                                      cancel the poll
  say [SECONDS] MESSAGE                           announce to every dancer (15-3600 s; default until cleared)
  unsay                                           clear the announcement
  end                                             end the session (dancers see it end) and quit
  help                                            this list"""


class CommandError(Exception):
    """A line the agent cannot act on; the text says how to write it."""


@dataclass(frozen=True)
class Command:
    """`kind` is a message type to send with `fields`, or "help"/"end" for the agent itself."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


def parse(line: str, active_poll: int | None) -> Command | None:
    """The command on `line` (None for a blank line). `active_poll` is the poll id `endpoll` ends."""
    word, _, rest = line.strip().partition(" ")
    word, rest = word.lower(), rest.strip()
    if not word:
        return None
    if word in {"help", "?"}:
        return Command("help")
    if word == "end":
        return Command("end")
    if word == "poll":
        return _poll(rest)
    if word == "endpoll":
        if active_poll is None:
            raise CommandError("no poll is running")
        return Command("END_POLL", {"pollId": active_poll})
    if word == "cancelpoll":
        return Command("CANCEL_POLL")
    if word == "say":
        seconds, message = _leading_seconds(rest, "say", 15, 3600)
        if not message:
            raise CommandError("say: write a message, e.g. say 60 Last dance in 5 minutes")
        if len(message) > 200:
            raise CommandError(f"say: the message must be at most 200 characters, got {len(message)}")
        return Command("SEND_ANNOUNCEMENT", {"message": message, "durationSeconds": seconds})
    if word == "unsay":
        return Command("CANCEL_ANNOUNCEMENT")
    raise CommandError(f"unknown command {word!r}; type help for the list")


def _poll(rest: str) -> Command:
    seconds, text = _leading_seconds(rest, "poll", 30, 300)
    parts = [part.strip() for part in text.split("|")]
    question, options = parts[0], [option for option in parts[1:] if option]
    if not question or not 2 <= len(options) <= 10:
        raise CommandError("poll: write a question and 2-10 options, e.g. poll 60 Next? | Salsa | Bachata")
    if len(question) > 500 or any(len(option) > 100 for option in options):
        raise CommandError("poll: the question is at most 500 characters, each option at most 100")
    return Command("START_POLL", {"question": question, "options": options, "durationSeconds": seconds})


def _leading_seconds(text: str, word: str, low: int, high: int) -> tuple[int | None, str]:
    first, _, rest = text.partition(" ")
    if not first.isdigit():
        return None, text
    seconds = int(first)
    if not low <= seconds <= high:
        raise CommandError(f"{word}: the duration must be {low}-{high} seconds, got {seconds}")
    return seconds, rest.strip()
