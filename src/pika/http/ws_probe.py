"""`GET /ws` without an upgrade: what an upgrade from this address would be answered now.

A browser never sees a refused WebSocket upgrade's status or `Retry-After`, so after a failed
attempt the dancer page asks here how long to wait (PROTOCOL.md §1): the same 429 or 503 with
`Retry-After` and a JSON body, or 426 when an upgrade would be accepted.  Asking counts nothing.
"""

from __future__ import annotations

from quart import Blueprint, Response, current_app, jsonify, request

from pika.security.admission import UPGRADE_REQUIRED


def ws_probe_blueprint() -> Blueprint:
    bp = Blueprint("ws_probe", __name__)

    @bp.get("/ws")
    async def probe() -> tuple[Response, int]:
        refusal = current_app.extensions["pika"]["hub"].admission(request.scope, peek=True)
        if refusal is None:
            answer = jsonify(error=UPGRADE_REQUIRED)
            answer.headers["Upgrade"] = "websocket"
            return answer, 426
        answer = jsonify(error=refusal.error)
        if refusal.retry_after is not None:
            answer.headers["Retry-After"] = str(refusal.retry_after)
        return answer, refusal.status

    return bp
