"""Which browser origins may use the server: its own, the configured allow-list, any in dev mode.

One rule for the WebSocket upgrade (PROTOCOL.md §1) and for CORS (§8).  The server's own origin is
`PIKA_PUBLIC_ORIGIN` when set, and also whatever host the request was sent to (its Host header),
so a server reached by its address or behind a TLS-terminating proxy needs no configuration.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pika.config import Settings

__all__ = ["normalise_origin", "origin_allowed"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_allowed(settings: Settings, origin: str | None, host: str | None) -> bool:
    """Whether a request with this `Origin` header, sent to this `Host`, may proceed.

    `origin=None` (no header) is a non-browser client (desktop, CLI): allowed — browsers always send
    `Origin` on WebSocket upgrades and cross-origin requests.  `Origin: null` (sandboxed frames, files)
    is allowed only in dev mode.
    """
    if origin is None:
        return True
    if settings.dev:
        return True
    wanted = normalise_origin(origin)
    if wanted is None:
        return False
    if settings.public_origin and normalise_origin(settings.public_origin) == wanted:
        return True
    if any(normalise_origin(o) == wanted for o in settings.allowed_origins):
        return True
    return host is not None and _same_host(wanted, host)


def normalise_origin(origin: str) -> str | None:
    """`scheme://host[:port]` lower-cased, default port dropped; None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip().rstrip("/").lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


# -- helpers ------------------------------------------------------------------------------------


def _same_host(origin: str, host_header: str) -> bool:
    """The origin names the host the request was sent to.  Either scheme matches: TLS may end at a
    proxy, so a page on https://h talks to a server that sees plain http with `Host: h`."""
    wanted = urlsplit(origin)
    sent_to = urlsplit("//" + host_header.strip().lower())
    try:
        port = sent_to.port
    except ValueError:
        return False
    if not sent_to.hostname or sent_to.hostname != wanted.hostname:
        return False
    if wanted.port is None:  # normalised: the scheme's default port
        return port is None or port in _DEFAULT_PORTS.values()
    return port == wanted.port
