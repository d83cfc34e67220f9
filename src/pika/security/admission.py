"""Who may open a WebSocket: the Origin rule and the per-IP connection limits (PROTOCOL.md §1).

Checked on the upgrade request, before `websocket.accept`: a refusal is an HTTP answer (403, 429 or
503 with `Retry-After`), never an opened-then-closed socket.  A whole venue often shares one public
IP, so these limits only stop a flood from one host; per-client limits do the fine work.  Right
after a start every phone of a venue reconnects at once: see `WsAdmission` for how that gets in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pika.audit import audit
from pika.config import Settings
from pika.security.clientip import client_ip
from pika.security.origins import origin_allowed
from pika.security.ratelimit import KeyedLimiter

__all__ = ["UPGRADE_REQUIRED", "UpgradeRefusal", "WsAdmission", "admitted_ip"]

_SCOPE_KEY = "pika.admitted_ip"  # set on an admitted connection's scope, popped by release()
TOO_MANY = "Too many connections from this address"
UPGRADE_REQUIRED = "Upgrade required: /ws is a WebSocket endpoint"  # a plain GET /ws that may upgrade


@dataclass(frozen=True, slots=True)
class UpgradeRefusal:
    """The HTTP answer to a refused upgrade: status, the JSON body's `error`, and `Retry-After`
    in whole seconds (None: no header; a 403 is not worth retrying)."""

    status: int
    error: str
    retry_after: int | None = None


class WsAdmission:
    """Per-IP new-connection rate and open-connection cap, and the Origin rule, for `/ws`.

    `check(scope)` returns None when the upgrade may proceed — and then counts the connection as
    open — or an `UpgradeRefusal`; `peek(scope)` says the same without counting anything.  Call
    `release(scope)` once when an admitted connection closes; a second call (or one for a refused
    connection) does nothing.

    The reopening: for `ws_reopen_seconds` after this process starts, an address may open as many
    new connections as its open-connection cap before the per-window rate counts them.  A
    restart closes every socket and the whole venue comes back at once; at 200 per 10 s, 2,000
    phones behind one NAT would wait 100 s.  The allowance costs no protection worth having: the
    cap bounds what an address holds at any time (and the rate lets it reach the cap in 150 s
    anyway), and the reopening lets it churn one cap's worth of handshakes more, once.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._connects = KeyedLimiter(
            settings.ws_connects_per_ip, settings.ws_connects_window, name="ws-connects", clock=clock
        )
        self._open: dict[str, int] = {}
        self._reopen_until = clock() + settings.ws_reopen_seconds
        self._reopened: dict[str, int] = {}  # new connections per address during the reopening

    def check(self, scope: dict[str, Any]) -> UpgradeRefusal | None:
        refusal, ip = self._decide(scope, consume=True)
        if refusal is None:
            self._open[ip] = self._open.get(ip, 0) + 1
            scope[_SCOPE_KEY] = ip
        else:
            audit("ws_refused", ip=ip, status=refusal.status, error=refusal.error)
        return refusal

    def peek(self, scope: dict[str, Any]) -> UpgradeRefusal | None:
        """What `check` would answer an upgrade from this scope's address now, counting nothing:
        how a browser, which never sees a refused upgrade's status, learns how long to wait."""
        return self._decide(scope, consume=False)[0]

    def release(self, scope: dict[str, Any]) -> None:
        ip = scope.pop(_SCOPE_KEY, None)
        if ip is None:
            return
        left = self._open.get(ip, 0) - 1
        if left > 0:
            self._open[ip] = left
        else:
            self._open.pop(ip, None)

    def open_from(self, ip: str) -> int:
        """Connections from `ip` admitted and not yet released."""
        return self._open.get(ip, 0)

    def _decide(self, scope: dict[str, Any], *, consume: bool) -> tuple[UpgradeRefusal | None, str]:
        """(refusal or None, client address); with `consume`, an admission is counted."""
        origin, host = _header(scope, b"origin"), _header(scope, b"host")
        ip = client_ip(scope, self.settings)
        if not origin_allowed(self.settings, origin, host):
            return UpgradeRefusal(403, "Origin not allowed"), ip
        if self._open.get(ip, 0) >= self.settings.ws_open_per_ip:
            # Nobody knows when one of them closes: come back after a rate window.
            return UpgradeRefusal(429, TOO_MANY, _seconds(self.settings.ws_connects_window)), ip
        if self._reopening_allows(ip, consume):
            return None, ip
        if self._connects.allow(ip) if consume else self._connects.would_allow(ip):
            return None, ip
        return UpgradeRefusal(429, TOO_MANY, _seconds(self._connects.retry_after(ip))), ip

    def _reopening_allows(self, ip: str, consume: bool) -> bool:
        """Whether `ip` has reopening allowance left (counting one against it with `consume`);
        the counts are dropped once the reopening is over."""
        if self._clock() >= self._reopen_until:
            self._reopened.clear()
            return False
        used = self._reopened.get(ip, 0)
        if used >= self.settings.ws_open_per_ip:
            return False
        if consume:
            self._reopened[ip] = used + 1
        return True


def admitted_ip(scope: dict[str, Any]) -> str:
    """The client address an admitted connection was counted under (`check`)."""
    return scope.get(_SCOPE_KEY, "unknown")


def _seconds(wait: float) -> int:
    """`Retry-After` in whole seconds, rounded up, at least 1: waiting that long is enough."""
    return max(1, math.ceil(wait))


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None
