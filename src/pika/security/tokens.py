"""DJ API tokens: `pk_dj_` + 32 random hex characters, shown once, stored only as a SHA-256 digest.

A token is looked up by its digest (the database never sees the token itself) and the stored digest
is compared again in constant time.  `account_for_token` is the one way from a token to an account,
used by the HTTP API and by REGISTER_SESSION alike.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from pika.db import Database
from pika.queries import query

__all__ = ["TOKEN_PREFIX", "account_for_token", "new_token", "token_digest", "well_formed"]

TOKEN_PREFIX = "pk_dj_"

AUTH_TOKEN_ACCOUNT = query("auth_token_account")

_TOKEN = re.compile(r"pk_dj_[0-9a-f]{32}")


def new_token() -> str:
    """A fresh token: 128 random bits."""
    return TOKEN_PREFIX + secrets.token_hex(16)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest stored for `token` (64 lower-case hex characters)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def well_formed(token: str) -> bool:
    """Whether `token` has the shape of a token we issue (a cheap refusal before any lookup)."""
    return _TOKEN.fullmatch(token) is not None


async def account_for_token(db: Database, token: str | None) -> dict[str, Any] | None:
    """{id, email, display_name, slug} of the account a valid, unrevoked token belongs to; else None.

    Marks the token used (`last_used_at`).
    """
    if not token or not well_formed(token):
        return None
    digest = token_digest(token)
    row = await db.one(AUTH_TOKEN_ACCOUNT, token_sha256=digest)
    if row is None or not hmac.compare_digest(row["token_sha256"], digest):
        return None
    return {key: row[key] for key in ("id", "email", "display_name", "slug")}
