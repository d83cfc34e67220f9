"""The embedded PostgreSQL used when no `PIKA_DATABASE_URL` is set.

`pgserver` ships a PostgreSQL 16 build and starts it on a Unix socket inside the data
directory.  It reference-counts the processes that use one data dir (a pid list on disk) and
stops the server with the last of them.  A process killed with SIGKILL never removes its pid:
its PostgreSQL keeps running until the next start prunes the dead pid and adopts it (and says
so), or until `stop_embedded` (python -m pika.admin stop-embedded) stops it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from pika.errors import DatabaseUnavailable, PikaError

log = logging.getLogger("pika.embedded")

ADOPTED = "adopted an embedded PostgreSQL left running by a previous crash"
STOP_TIMEOUT = 30.0  # seconds for a fast shutdown (it rolls back open transactions)


class EmbeddedInUse(PikaError):
    """The embedded PostgreSQL still has a live user: stop that process instead (exit code 1)."""

    exit_code = 1


@contextlib.contextmanager
def embedded_postgres(pgdata: Path) -> Iterator[str]:
    """Start (or attach to) PostgreSQL in `pgdata`; yield its URL; stop it when the last user leaves."""
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    orphan = None if _prune_dead_handles(pgdata) else _postmaster_pid(pgdata)
    runtime = pgdata.parent / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    # pgserver reads XDG_RUNTIME_DIR at import time for its lock file; a private dir avoids
    # a warning about a shared /tmp and keeps two checkouts from sharing one lock.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import pgserver  # imported late: see above

    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises CalledProcessError, AssertionError, OSError …
        raise DatabaseUnavailable(
            f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}); see {pgdata / 'log'}"
        ) from None
    if orphan is not None:
        log.warning(ADOPTED, extra={"fields": {"pgdata": str(pgdata), "pid": orphan}})
    log.info("embedded postgres ready", extra={"fields": {"pgdata": str(pgdata)}})
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def stop_embedded(pgdata: Path) -> str:
    """Stop the embedded PostgreSQL in `pgdata` that no live process uses (one left running by a
    crash); return the line to print.  Raises EmbeddedInUse while a process still uses it."""
    pgdata = pgdata.expanduser().resolve()
    users = _prune_dead_handles(pgdata)
    pid = _postmaster_pid(pgdata)
    if pid is None:
        return f"no embedded PostgreSQL is running in {pgdata}: nothing to stop"
    if users:
        raise EmbeddedInUse(
            f"the embedded PostgreSQL in {pgdata} is in use by process {', '.join(map(str, users))} "
            "(a running server?); stop that process and PostgreSQL stops with it"
        )
    os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown: roll back, checkpoint, exit
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid):
        if time.monotonic() > deadline:
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {pgdata} (pid {pid}) did not stop within {STOP_TIMEOUT:g} s; "
                f"see {pgdata / 'log'}"
            )
        time.sleep(0.05)
    return f"stopped the embedded PostgreSQL in {pgdata} (pid {pid})"


def _prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop pids of processes that died without saying goodbye from pgserver's handle list;
    return the pids still alive."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
    return alive


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the PostgreSQL running in `pgdata`, from its postmaster.pid; None if none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
