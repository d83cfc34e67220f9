"""The server's resident memory and CPU, read from /proc/<pid>/status and /proc/<pid>/stat.

The server process itself is measured, or with `tree` it and its descendants (a spawned
`serve --workers N`: the supervisor and its workers), never the embedded PostgreSQL (a daemon,
not a child), which `capacity` samples apart as a tree of its own.  Samples are taken by the
coordinator about once a second and at phase boundaries (before and after connecting).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")
MIN_INTERVAL = 0.9  # seconds: the shortest interval a CPU % is computed over


@dataclass(frozen=True)
class Snapshot:
    t: float  # time.time(): the clock of every record of a run
    rss_kb: int
    cpu_s: float  # user + system since the process started


def read(pid: int) -> Snapshot | None:
    """One snapshot, or None when the process is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            status = f.read()
        fields = _stat(pid)
    except (OSError, ValueError):
        return None
    rss = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
            break
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    return Snapshot(time.time(), rss, cpu)


def read_tree(pid: int) -> Snapshot | None:
    """`pid` and its descendants summed: RSS, and CPU including that of children they reaped
    (a PostgreSQL backend that exited leaves its CPU in the postmaster's cutime), so the sum
    does not drop when a child ends.  None when `pid` is gone."""
    root = read(pid)
    if root is None:
        return None
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parents.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    rss, cpu, todo = 0, 0.0, [pid]
    while todo:
        current = todo.pop()
        snap = read(current)
        try:
            fields = _stat(current)
        except (OSError, ValueError):
            continue
        if snap is None:
            continue
        rss += snap.rss_kb
        cpu += snap.cpu_s + (int(fields[13]) + int(fields[14])) / TICKS  # + cutime, cstime
        todo += parents.get(current, [])
    return Snapshot(root.t, rss, cpu)


def workers(supervisor: int) -> dict[int, Snapshot]:
    """Each `serve --worker I` child of `supervisor` by I (its own CPU, not its children's)."""
    out: dict[int, Snapshot] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat(int(entry.name))[1]) != supervisor:
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        snap = read(int(entry.name))
        if "--worker" in argv and snap is not None:
            out[int(argv[argv.index("--worker") + 1])] = snap
    return out


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the parenthesised command name (which may contain spaces):
    index 1 is the parent's pid, 11 and 12 utime and stime, 13 and 14 those of reaped children."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        stat = f.read()
    return stat[stat.rindex(")") + 2 :].split()


def host_cpu() -> tuple[float, float] | None:
    """(idle, total) CPU seconds of the whole machine since boot, all cores (idle includes iowait):
    how busy the machine was around a measurement, whoever kept it busy."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return idle / TICKS, sum(fields[:8]) / TICKS


def busy_percent(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    """The machine's busy share (% of all cores) between two host_cpu() readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100.0 * (1 - (after[0] - before[0]) / (after[1] - before[1])), 1)


@dataclass
class Sampler:
    """Periodic snapshots of one process (with `tree`, of it and its descendants); CPU % between
    consecutive samples (100 % = one core)."""

    pid: int | None
    tree: bool = False
    samples: list[Snapshot] = field(default_factory=list)

    def sample(self) -> Snapshot | None:
        if self.pid is None:
            return None
        snap = read_tree(self.pid) if self.tree else read(self.pid)
        if snap is not None:
            self.samples.append(snap)
        return snap

    def cpu_percent(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        """CPU % over successive intervals of at least MIN_INTERVAL within [since, until].

        /proc counts CPU in clock ticks (10 ms): over a shorter interval one tick more or less
        would read as a core more or less, so close samples are merged.
        """
        out = []
        anchor: Snapshot | None = None
        for snap in self.samples:
            if snap.t < since or snap.t > until:
                continue
            if anchor is None:
                anchor = snap
            elif snap.t - anchor.t >= MIN_INTERVAL:
                out.append(100.0 * (snap.cpu_s - anchor.cpu_s) / (snap.t - anchor.t))
                anchor = snap
        return out

    def rss_peak_kb(self) -> int:
        return max((s.rss_kb for s in self.samples), default=0)

    def last(self) -> Snapshot | None:
        return self.samples[-1] if self.samples else None
