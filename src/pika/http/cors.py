"""CORS for the HTTP API and the security headers every response carries (PROTOCOL.md §8).

A browser origin that `security.origins` allows (the server's own, the allow-list, any in dev
mode) gets `Access-Control-Allow-Origin` echoing it, with credentials; any other origin gets no
CORS headers at all, so the browser keeps the answer from the page.  Preflights (OPTIONS with
`Access-Control-Request-Method`) are answered 204 here, before routing.
"""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

from pika.config import Settings
from pika.security.origins import origin_allowed

__all__ = ["ALLOW_HEADERS", "ALLOW_METHODS", "SECURITY_HEADERS", "install_cors"]

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Pika-Client"
PREFLIGHT_MAX_AGE = "600"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


def install_cors(app: QuartTrio, settings: Settings) -> None:
    """Answer preflights and add CORS and security headers to every response of `app`."""

    @app.before_request
    async def preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response("", status=204)
        if _allowed_origin(settings) is not None:
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response

    @app.after_request
    async def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            if name not in response.headers:  # a page may set a fuller Content-Security-Policy
                response.headers[name] = value
        if "Origin" in request.headers:
            response.vary.add("Origin")
            origin = _allowed_origin(settings)
            if origin is not None:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Credentials"] = "true"
        return response


def _allowed_origin(settings: Settings) -> str | None:
    """The request's Origin when it may read our answers; None without one or when it may not."""
    origin = request.headers.get("Origin")
    if origin is None or not origin_allowed(settings, origin, request.headers.get("Host")):
        return None
    return origin
