"""`/health` for load balancers and people, `/metrics` for Prometheus."""

from __future__ import annotations

import time

from quart import Blueprint, Response, current_app, jsonify

from pika import __version__, metrics
from pika.protocol import iso


def health_blueprint() -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/health")
    async def health() -> tuple[Response, int]:
        ctx = current_app.extensions["pika"]
        up = await ctx["db"].ping(timeout=2.0)
        body = {
            "status": "ok" if up else "error",
            "version": __version__,
            "timestamp": iso(time.time()),
            "activeSessions": ctx["hub"].live_session_count,
            "connections": ctx["hub"].connection_count,
            "database": "connected" if up else "unavailable",
        }
        return jsonify(body), 200 if up else 503

    @bp.get("/metrics")
    async def prometheus() -> Response:
        ctx = current_app.extensions["pika"]
        metrics.CONNECTIONS.set(ctx["hub"].connection_count)
        metrics.LIVE_SESSIONS.set(ctx["hub"].live_session_count)
        return Response(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")

    return bp
