"""The sender of `capacity` inside a dancer worker: dancer frames at a fixed rate, on the clock.

The k-th frame of a step is due at start + k / rate and goes out from the next subscribed dancer
in turn, whatever the answers (a room's dancers do not wait for each other).  Its kind follows
the seed's dancer mix (likes, tempo votes, thank-yous; a dancer likes the pre-played tracks
T1, T2, … in turn, each once).  Each frame carries a messageId and its ACK is timed by
roles.Dancer; how late each send left says whether this process could hold the rate.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from loadtest import stats
from loadtest.roles import (
    LIKE,
    TEMPO,
    TEMPO_CHOICES,
    THANKS,
    Dancer,
    Shared,
    like_message,
    tempo_message,
    thanks_message,
    track_info,
)

PACE_EVERY = 0.002  # s between pacing timers; each sends whatever is due by then
KINDS = ("SEND_LIKE", "SEND_TEMPO_REQUEST", "SEND_REACTION")
WEIGHTS = (LIKE[0], TEMPO[0], THANKS[0])  # the seed's odds per track: 26 % likes, 32 % tempo, 42 % thanks


class Pacer:
    """Steps of frames at a rate from `dancers` (those subscribed when it was made)."""

    def __init__(self, shared: Shared, dancers: Sequence[Dancer], tracks: int) -> None:
        self.s = shared
        self.dancers = [d for d in dancers if d.active]
        self.tracks = tracks
        self._liked: dict[int, int] = {}  # dancer index -> tracks it liked (T1 … Tn)
        self._turn = 0
        self._start = 0.0
        self._rate = 1.0
        self._total = 0
        self._planned = 0
        self.lateness: list[float] = []  # s, per send: when it left - when it was due
        self.kinds: Counter[str] = Counter()
        self.first: float | None = None  # wall clock of the step's first and last send
        self.last: float | None = None
        self.gc_pauses: list[float] = []  # s, this process's collections during the step
        self._gc_began = 0.0
        # Thousands of dancers' objects live until the end: leave them out of every collection,
        # and time the collections that remain (a long one makes sends late).
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_began)

    @property
    def sending(self) -> bool:
        return len(self.lateness) < self._total

    def start(self, start_at: float, seconds: float, rate: float) -> None:
        """From monotonic `start_at`, `rate` frames/s for `seconds`."""
        self._start, self._rate = start_at, rate
        self._total = self._planned = max(1, round(rate * seconds))
        self.lateness, self.kinds, self.gc_pauses = [], Counter(), []
        self.first = self.last = None
        self.s.loop.call_at(start_at, self._pace)

    def stop(self) -> None:
        self._total = len(self.lateness)

    def _pace(self) -> None:
        if not self.sending:
            return
        due = min(self._total, int((time.monotonic() - self._start) * self._rate) + 1)
        lateness = self.lateness
        if self.first is None:
            self.first = time.time()
        while len(lateness) < due:
            if not self._send_one():
                self.stop()  # nobody left to send from
                break
            lateness.append(time.monotonic() - (self._start + len(lateness) / self._rate))
        self.last = time.time()
        if self.sending:
            self.s.loop.call_later(PACE_EVERY, self._pace)

    def _send_one(self) -> bool:
        """The next subscribed dancer sends one frame of the mix; False when none is subscribed."""
        n = len(self.dancers)
        for _ in range(n):
            dancer = self.dancers[self._turn % n]
            self._turn += 1
            if dancer.active:
                break
        else:
            return False
        session = dancer.rec.session
        kind = self.s.rng.choices(KINDS, WEIGHTS)[0]
        liked = self._liked.get(dancer.rec.index, 0)
        if kind == "SEND_LIKE" and liked >= self.tracks:
            kind = "SEND_TEMPO_REQUEST"  # every pre-played track liked: a like now would be refused
        if kind == "SEND_LIKE":
            marker = f"T{liked + 1}"
            self._liked[dancer.rec.index] = liked + 1
            dancer.act(like_message(session, track_info(marker)), kind, marker)
        elif kind == "SEND_TEMPO_REQUEST":
            dancer.act(tempo_message(session, self.s.rng.choice(TEMPO_CHOICES)), kind, "")
        else:
            dancer.act(thanks_message(session), kind, "")
        self.kinds[kind] += 1
        return True

    def unanswered(self) -> int:
        if self.first is None or self.last is None:
            return 0
        return sum(d.unanswered(self.first, self.last) for d in self.dancers)

    def collect(self) -> dict[str, Any]:
        """The step's answers (taken out of `Shared.actions`) and the sender's own figures."""
        since, until = self.first or 0.0, self.last or 0.0
        actions = self.s.actions
        mine = [a for a in actions if since <= a[3] <= until]
        actions[:] = [a for a in actions if not since <= a[3] <= until]
        latencies: list[float] = []
        acked: Counter[str] = Counter()
        nacks: Counter[str] = Counter()
        closed = 0  # unanswered when their dancer's connection ended
        for kind, _session, _key, t_send, t_answer, error in mine:
            if t_answer is None:
                closed += 1
            elif error is None:
                latencies.append(t_answer - t_send)
                acked[kind] += 1
            else:
                nacks[error] += 1
        return {
            "sent": len(self.lateness),
            "planned": self._planned,
            "first": since,
            "last": until,
            "kinds": dict(self.kinds),
            "acked": dict(acked),
            "latencies": latencies,
            "nacks": dict(nacks),
            "unanswered": closed + self.unanswered(),
            "lateness_ms": stats.summary_ms(self.lateness),
            "gc_pause_s": round(sum(self.gc_pauses), 3),
            "dancers": len(self.dancers),
            "dancers_gone": sum(1 for d in self.dancers if not d.active),
        }
