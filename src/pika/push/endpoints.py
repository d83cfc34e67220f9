"""Where a push may go: the browsers' push services only (`PIKA_PUSH_HOSTS`).

A subscription's endpoint is a URL a page hands the server, which the server then POSTs to; left
open, any visitor could make the server send requests to hosts of its choosing (inside the venue's
or the host's network, say). So an endpoint must be https on a listed host or one of its subdomains;
plain http only on loopback, and only with `PIKA_PUSH_ALLOW_HTTP` (a local test push service).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def endpoint_allowed(endpoint: str, hosts: Iterable[str], *, allow_http: bool = False) -> bool:
    """True when `endpoint` may be pushed to: https on one of `hosts` (or a subdomain of one), or
    with `allow_http` an http URL on loopback."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if parts.scheme == "http":
        return allow_http and host in LOOPBACK
    if parts.scheme != "https" or not host:
        return False
    return any(host == allowed or host.endswith("." + allowed) for allowed in hosts)
