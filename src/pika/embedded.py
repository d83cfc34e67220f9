"""The embedded PostgreSQL used when no `PIKA_DATABASE_URL` is set.

`pgserver` ships a PostgreSQL 16 build and starts it on a Unix socket inside the data
directory.  It reference-counts the processes that use one data dir (a pid list on disk) and
stops the server with the last of them.  A process killed with SIGKILL never removes its pid,
which would keep the server alive forever, so we prune dead pids before attaching.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from pika.errors import DatabaseUnavailable

log = logging.getLogger("pika.embedded")


@contextlib.contextmanager
def embedded_postgres(pgdata: Path) -> Iterator[str]:
    """Start (or attach to) PostgreSQL in `pgdata`; yield its URL; stop it when the last user leaves."""
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _prune_dead_handles(pgdata)
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
    log.info("embedded postgres ready", extra={"fields": {"pgdata": str(pgdata)}})
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that died without saying goodbye from pgserver's handle list."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
