"""The client address used for per-IP limits: the socket peer, or a proxy's header when trusted.

Anyone can send `X-Forwarded-For`, so the headers count only when the socket peer is one of
`PIKA_TRUSTED_PROXIES`.  Then `CF-Connecting-IP` (Cloudflare) wins; otherwise `X-Forwarded-For` is
read from the right, skipping trusted hops: the first untrusted address is the one a trusted proxy
saw connect, and everything to its left may be forged by the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pika.config import Settings

__all__ = ["client_ip"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"


def client_ip(scope: dict[str, Any], settings: Settings) -> str:
    """The client's IP address as text (IPv4-mapped IPv6 shown as IPv4); `unknown` without a peer."""
    client = scope.get("client")
    peer = _address(client[0]) if client else None
    if peer is None:
        return str(client[0]) if client else UNKNOWN
    networks = _networks(settings.trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return str(peer)
    headers = _headers(scope)
    cf = _address(headers.get(b"cf-connecting-ip", b"").decode("latin-1"))
    if cf is not None:
        return str(cf)
    hops = [h.strip() for h in headers.get(b"x-forwarded-for", b"").decode("latin-1").split(",")]
    found = peer
    for hop in reversed([h for h in hops if h]):
        address = _address(hop)
        if address is None:
            break  # garbage: whoever wrote it is not trustworthy; keep the last good hop
        found = address
        if not _trusted(address, networks):
            break
    return str(found)


# -- helpers ------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _trusted(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _headers(scope: dict[str, Any]) -> dict[bytes, bytes]:
    """Header name -> value; repeated X-Forwarded-For headers are joined, as RFC 9110 allows."""
    merged: dict[bytes, bytes] = {}
    for name, value in scope.get("headers") or ():
        name = bytes(name).lower()
        if name in merged:
            merged[name] = merged[name] + b"," + bytes(value)
        else:
            merged[name] = bytes(value)
    return merged
