"""`GET /api/live`: where pages open the live WebSocket, so no page hard-codes a port.

`PIKA_PUBLIC_LIVE_URL` when set (behind a proxy that routes `/ws` to the live port); otherwise the
live listener's port on the host the page was loaded from.
"""

from __future__ import annotations

from quart import Blueprint, Response, current_app, jsonify, request


def live_blueprint() -> Blueprint:
    bp = Blueprint("live", __name__)

    @bp.get("/api/live")
    async def live_url() -> Response:
        ctx = current_app.extensions["pika"]
        url = ctx["settings"].public_live_url
        if url is None:
            scheme = "wss" if request.scheme in ("https", "wss") else "ws"
            host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
            url = f"{scheme}://{host}:{ctx['live_port']}/ws"
        return jsonify(url=url)

    return bp
