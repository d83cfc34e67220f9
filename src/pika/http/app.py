"""The Quart app factory: routes from small blueprints, JSON bodies for every error.

PROTOCOL.md §8: errors are `{"error": "<message>"}` with a 4xx/5xx status, never an HTML page
or a stack trace — unknown routes (404) and wrong methods (405) included.
"""

from __future__ import annotations

import logging
import time

from quart import Response, jsonify, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from pika import metrics
from pika.audit import audit
from pika.config import Settings
from pika.db import Database, DatabaseStalled
from pika.http.auth import auth_blueprint
from pika.http.cors import install_cors
from pika.http.health import health_blueprint
from pika.http.live import live_blueprint
from pika.http.pages import pages_blueprint
from pika.http.sessions import sessions_blueprint
from pika.http.stats import stats_blueprint
from pika.http.ws_probe import ws_probe_blueprint
from pika.live.hub import Hub
from pika.security.clientip import client_ip

log = logging.getLogger("pika.http")


def create_app(settings: Settings, db: Database, hub: Hub, live_port: int = 0) -> QuartTrio:
    app = QuartTrio("pika", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 1 * 2**20
    app.config["JSON_SORT_KEYS"] = False
    app.extensions["pika"] = {
        "settings": settings,
        "db": db,
        "hub": hub,
        "live_port": live_port,
        "started": time.time(),  # the status page's uptime
    }
    app.register_blueprint(health_blueprint())
    app.register_blueprint(live_blueprint())
    app.register_blueprint(auth_blueprint())
    install_cors(app, settings)
    app.register_blueprint(sessions_blueprint())
    app.register_blueprint(stats_blueprint())
    app.register_blueprint(pages_blueprint())
    app.register_blueprint(ws_probe_blueprint())

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(DatabaseStalled)
    async def database_stalled(exc: DatabaseStalled) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 503  # nothing was applied: retrying is safe

    @app.errorhandler(Exception)
    async def internal_error(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error in HTTP handler")
        return jsonify(error="Internal server error"), 500

    @app.after_request
    async def count(response: Response) -> Response:
        metrics.HTTP_REQUESTS.labels(str(response.status_code)).inc()
        if response.status_code == 429:
            audit("rate_limited", ip=client_ip(request.scope, settings), path=request.path)
        return response

    return app
