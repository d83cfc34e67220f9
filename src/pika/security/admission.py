"""Who may open a WebSocket: the Origin rule and the per-IP connection limits (PROTOCOL.md §1).

Checked on the upgrade request, before `websocket.accept`: a refusal is an HTTP answer (403 or
429), never an opened-then-closed socket.  A whole venue often shares one public IP, so these
limits only stop a flood from one host; per-client limits do the fine work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pika.config import Settings
from pika.security.clientip import client_ip
from pika.security.origins import origin_allowed
from pika.security.ratelimit import KeyedLimiter

__all__ = ["WsAdmission"]

_SCOPE_KEY = "pika.admitted_ip"  # set on an admitted connection's scope, popped by release()


class WsAdmission:
    """Per-IP new-connection rate and open-connection cap, and the Origin rule, for `/ws`.

    `check(scope)` returns None when the upgrade may proceed — and then counts the connection as
    open — or `(status, error)` to refuse it.  Call `release(scope)` once when an admitted
    connection closes; a second call (or one for a refused connection) does nothing.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._connects = KeyedLimiter(
            settings.ws_connects_per_ip, settings.ws_connects_window, name="ws-connects", clock=clock
        )
        self._open: dict[str, int] = {}

    def check(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        origin, host = _header(scope, b"origin"), _header(scope, b"host")
        if not origin_allowed(self.settings, origin, host):
            return 403, "Origin not allowed"
        ip = client_ip(scope, self.settings)
        if self._open.get(ip, 0) >= self.settings.ws_open_per_ip:
            return 429, "Too many connections from this address"
        if not self._connects.allow(ip):
            return 429, "Too many connections from this address"
        self._open[ip] = self._open.get(ip, 0) + 1
        scope[_SCOPE_KEY] = ip
        return None

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


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None
