"""The audit trail: one structured line per security-relevant event, on the logger `pika.audit`.

Each line names the `event`, the client address as the trusted-proxy rules resolve it (`ip`) and
the account id when one is known; never a password, token or email in clear (`email_hash`
correlates attempts on one address without revealing it).  Kept whatever PIKA_LOG_LEVEL says,
and counted in `pika_audit_events_total`.
"""

from __future__ import annotations

import hashlib
import logging

from pika import metrics

__all__ = ["EVENTS", "audit", "email_hash"]

log = logging.getLogger("pika.audit")

EVENTS = frozenset(
    {
        "login_failed",  # wrong email or password
        "rate_limited",  # an HTTP 429
        "registered",  # a DJ account was created
        "token_regenerated",  # a DJ replaced their token
        "admin_action",  # python -m pika.admin end-session / revoke-tokens / reset-password
        "ws_refused",  # a WebSocket upgrade refused: Origin (403) or per-IP limits (429)
        "ownership_refused",  # REGISTER_SESSION or ATTACH_SESSION refused for a session not theirs
    }
)

_EMAIL_SALT = b"pika-audit-email\0"


def audit(event: str, *, ip: str | None, account: int | None = None, **fields: object) -> None:
    """Write one audit line for `event` (one of EVENTS); `fields` add detail (no secrets)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    metrics.AUDIT_EVENTS.labels(event).inc()
    line = {"event": event, "ip": ip or "-", "account": "-" if account is None else account, **fields}
    log.info(event, extra={"fields": line})


def email_hash(email: str) -> str:
    """A salted digest of a normalised email: the same address gives the same 16 hex characters.
    Whatever a client typed is digested, unpaired surrogates included (JSON allows them)."""
    typed = email.strip().lower().encode("utf-8", "surrogatepass")
    return hashlib.sha256(_EMAIL_SALT + typed).hexdigest()[:16]
