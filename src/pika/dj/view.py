"""The agent's terminal: one line per event, and on a terminal a live status line under them (rich).

Events go to stdout, problems as one `pika.dj: …` line each: on a terminal above the status
line, otherwise to stderr. When stdout is not a terminal (a log file, a test) only these lines
are written, flushed at once.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext

from rich.console import Console
from rich.live import Live
from rich.text import Text

from pika.dj.crowd import Crowd

__all__ = ["PROG", "View"]

PROG = "pika.dj"


class View:
    def __init__(self, crowd: Crowd) -> None:
        self.crowd = crowd
        self._out = Console(highlight=False)
        self._out.soft_wrap = not self._out.is_terminal  # a log keeps one line per event
        self._err = Console(stderr=True, soft_wrap=True, highlight=False)
        self._live: Live | None = None
        self._problem: str | None = None

    def running(self) -> AbstractContextManager[object]:
        """While open, a terminal shows the status line, redrawn as the crowd changes."""
        if not self._out.is_terminal:
            return nullcontext()
        self._live = Live(self._status(), console=self._out, auto_refresh=False, transient=True)
        return self._live

    def event(self, line: str) -> None:
        self._out.print(Text(line))
        self.refresh()

    def problem(self, line: str) -> None:
        """A one-line problem, printed once until a different one (or `clear_problem`) comes."""
        if line != self._problem:
            self._problem = line
            if self._live is not None:  # on a terminal: above the status line, like the events
                self._out.print(Text(f"{PROG}: {line}", style="yellow"))
            else:
                self._err.print(Text(f"{PROG}: {line}"))
        self.refresh()

    def clear_problem(self) -> None:
        self._problem = None

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._status(), refresh=True)
        sys.stdout.flush()

    def _status(self) -> Text:
        return Text(self.crowd.line(), style="bold" if self.crowd.connected else "dim")
