"""Who may take a live session (PROTOCOL.md §3.1 REGISTER_SESSION, ATTACH_SESSION), as pure rules.

An account's session is its account's alone; an anonymous one is never taken by an account,
and without its resumeKey only while no other connection is its DJ (a keyless takeover,
which never learns or changes the key).  Consoles attach to their own account's sessions only.
"""

from __future__ import annotations

NOT_AVAILABLE = "Session not available"
LIVE_ELSEWHERE = "Session is live on another connection"


def resume_refusal(
    dj_id: int | None, account_id: int | None, key_ok: bool, live_elsewhere: bool
) -> str | None:
    """Why a REGISTER_SESSION may not resume the live session owned by `dj_id` (None: it may).
    `live_elsewhere`: another connection is the session's DJ right now."""
    if dj_id is not None:
        return None if account_id == dj_id else NOT_AVAILABLE
    if account_id is not None:
        return NOT_AVAILABLE
    if not key_ok and live_elsewhere:
        return LIVE_ELSEWHERE
    return None


def attach_refusal(dj_id: int | None, account_id: int) -> str | None:
    """Why a console of `account_id` may not attach to a session owned by `dj_id` (None: it may)."""
    return None if dj_id is not None and dj_id == account_id else NOT_AVAILABLE
