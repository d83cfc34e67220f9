"""The loop guard: when dancers send more than one process can handle, the DJ still goes first.

The guard watches loop lag (how late a 10 ms sleep wakes), less the time the loop's thread waited
for a CPU (Linux schedstat): a neighbour hogging the cores makes every tick late, but holding
dancers back would not give the loop its CPU back, only starve them.  While it is high (two ticks in a row:
one late tick is a pause, such as a garbage collection, not a loop falling behind), dancer connections
take a turn before each frame, handed out per tick at a rate the loop can afford (AIMD: halved on
high lag, grown step by step otherwise, up to a ceiling).  A held reader stops reading, so nothing
is dropped or reordered; the DJ's frames are never held.  `Admission` is the rule, without I/O;
`LoopGuard` runs it in the hub's nursery.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import trio

from pika import metrics

TICK = 0.010  # s between two lag measurements
HIGH_LAG = 0.020  # s: above this, turns are rationed (and halved); at or below it, the ration grows
LOW_LAG = 0.005  # s: below this, once one ration covers everyone waiting, the guard opens


@dataclass
class Admission:
    """How many held frames may go per tick, from the lag measured at each tick."""

    per_tick: int = 64
    floor: int = 4
    step: int = 8
    ceiling: int = 512
    open: bool = True
    lagging: bool = False  # the previous tick's lag was high

    def observe(self, lag: float, waiting: int) -> int:
        """Record one tick's lag; return how many waiting frames to let go now (once `open`,
        every one of them goes).  An open gate closes on the second high tick in a row."""
        high = lag > HIGH_LAG
        was_high, self.lagging = self.lagging, high
        if high:
            if self.open and not was_high:
                return 0  # one late tick: a pause (a garbage collection, say), not a loop behind
            self.open = False
            self.per_tick = max(self.floor, self.per_tick // 2)
        else:
            self.per_tick = min(self.ceiling, self.per_tick + self.step)
            if lag < LOW_LAG and waiting <= self.per_tick:  # this tick's ration lets them all go
                self.open = True
        return 0 if self.open else min(waiting, self.per_tick)


class LoopGuard:
    def __init__(self, admission: Admission | None = None) -> None:
        self.admission = admission or Admission()
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def open(self) -> bool:
        return self.admission.open

    async def turn(self) -> None:
        """Wait for a turn (call only while not `open`); turns go in arrival order."""
        metrics.DANCER_FRAMES_HELD.inc()
        await self._lot.park()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        with CpuWait() as cpu_wait:
            while True:
                began, waited = trio.current_time(), cpu_wait.seconds()
                await trio.sleep(TICK)
                lag = trio.current_time() - began - TICK
                metrics.LOOP_LAG_SECONDS.observe(lag)
                own_lag = lag - (cpu_wait.seconds() - waited)  # late by its own work, not the OS's choice
                self._tick(self.admission.observe(own_lag, len(self._lot)))

    def _tick(self, let_go: int) -> None:
        if self.admission.open:
            if self._lot:  # the last ration, or a straggler parked in the tick that opened the gate
                self._lot.unpark_all()
        elif let_go:
            self._lot.unpark(count=let_go)


class CpuWait:
    """The time the calling thread has spent runnable but waiting for a CPU, from Linux's
    /proc/thread-self/schedstat (its second field, in ns); always 0.0 where there is none."""

    def __enter__(self) -> CpuWait:
        try:
            self._fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self._fd = None
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def seconds(self) -> float:
        if self._fd is None:
            return 0.0
        return int(os.pread(self._fd, 64, 0).split()[1]) / 1e9
