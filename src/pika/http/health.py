"""`/health` for load balancers and people, `/metrics` for Prometheus (behind a bearer token
when PIKA_METRICS_TOKEN is set)."""

from __future__ import annotations

import hmac
import os
import time

from quart import Blueprint, Response, current_app, jsonify, request

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
            "process": ctx["settings"].process,
            "pid": os.getpid(),
        }
        return jsonify(body), 200 if up else 503

    @bp.get("/metrics")
    async def prometheus() -> Response | tuple[Response, int, dict[str, str]]:
        ctx = current_app.extensions["pika"]
        token = ctx["settings"].metrics_token
        if token is not None and not _bearer_matches(token):
            return (
                jsonify(error="Metrics need Authorization: Bearer <PIKA_METRICS_TOKEN>"),
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        metrics.DATABASE_UP.set(1 if await ctx["db"].ping(timeout=1.0) else 0)
        metrics.CONNECTIONS.set(ctx["hub"].connection_count)
        metrics.LIVE_SESSIONS.set(ctx["hub"].live_session_count)
        return Response(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")

    return bp


def _bearer_matches(token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
