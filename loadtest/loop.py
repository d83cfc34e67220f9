"""A minimal epoll event loop with timers: the engine of each load-generator worker.

Why not trio or asyncio: the generator must cost far less per received frame than the server it
measures, or it measures itself.  A trio task wake-up per frame costs tens of microseconds; this
loop reads each ready socket once per `epoll_wait` and calls a plain function.  One loop per
worker process, single-threaded; every run is bounded by the caller's deadline.
"""

from __future__ import annotations

import heapq
import itertools
import select
import time
from collections.abc import Callable

EventHandler = Callable[[int], None]
Callback = Callable[[], None]

READ = select.EPOLLIN
WRITE = select.EPOLLOUT
HANGUP = select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP

MAX_EVENTS = 1024  # sockets served per epoll_wait; the rest wait for the next turn
MAX_TIMERS_PER_TURN = 20_000  # so a pile of due timers cannot starve the sockets


class Loop:
    """File descriptors with a handler each, and one-shot timers on `time.monotonic()`."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._handlers: dict[int, EventHandler] = {}
        self._timers: list[tuple[float, int, Callback]] = []
        self._order = itertools.count()

    def add(self, fd: int, events: int, handler: EventHandler) -> None:
        self._handlers[fd] = handler
        self._epoll.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._epoll.modify(fd, events)

    def remove(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def call_at(self, when: float, callback: Callback) -> None:
        heapq.heappush(self._timers, (when, next(self._order), callback))

    def call_later(self, delay: float, callback: Callback) -> None:
        self.call_at(time.monotonic() + delay, callback)

    @property
    def timers(self) -> int:
        return len(self._timers)

    def run_once(self, max_wait: float) -> None:
        """Serve ready sockets (waiting at most `max_wait` s or until the next timer), then due timers."""
        timeout = max_wait
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - time.monotonic()))
        handlers = self._handlers
        for fd, events in self._epoll.poll(timeout, MAX_EVENTS):
            handler = handlers.get(fd)
            if handler is not None:
                handler(events)
        timers = self._timers
        now = time.monotonic()
        for _ in range(MAX_TIMERS_PER_TURN):
            if not timers or timers[0][0] > now:
                break
            heapq.heappop(timers)[2]()

    def run_until(self, done: Callable[[], bool], deadline: float, tick: float = 0.25) -> bool:
        """Turn until `done()` or the monotonic `deadline`; returns `done()`."""
        while not done():
            if time.monotonic() >= deadline:
                return False
            self.run_once(tick)
        return True

    def close(self) -> None:
        self._epoll.close()
