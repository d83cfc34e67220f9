"""`/status`: the public status page, served by the server itself (what an Uptime Kuma page showed).

API and database state from the same probe as `/health`, live sessions and listeners now, uptime
and the version, rendered into `web/status.html` on the server (no script: it works anywhere).
Cached for a few seconds, so a crowd reloading it costs one database ping per interval at most.
"""

from __future__ import annotations

import html
import time
from string import Template

from quart import current_app

from pika import __version__
from pika.protocol import iso

STATUS_CACHE = "public, max-age=5"


async def render_status(template: Template) -> str:
    """The status page as of now (the database probe waits at most 2 s)."""
    ctx = current_app.extensions["pika"]
    hub = ctx["hub"]
    up = await ctx["db"].ping(timeout=2.0)
    values = {
        "overall": "up" if up else "down",
        "overall_text": "All systems operational" if up else "Degraded",
        "database": "up" if up else "down",
        "database_text": "connected" if up else "unavailable",
        "sessions": hub.live_session_count,
        "listeners": sum(room.listener_count() for room in hub.rooms.values()),
        "uptime": _duration(time.time() - ctx["started"]),
        "version": __version__,
        "checked": iso(time.time()),
    }
    return template.substitute({key: html.escape(str(value)) for key, value in values.items()})


def _duration(seconds: float) -> str:
    """`3d 4h`, `2h 5m`, `42s`: the two largest units."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts[:2])
