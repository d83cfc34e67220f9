"""DJ accounts over HTTP: register, login, who-am-I and token regeneration (PROTOCOL.md §8).

Passwords are argon2id (`security.passwords`), tokens are `pk_dj_…` stored as SHA-256 digests
(`security.tokens`).  Login answers one 401 for a wrong email and a wrong password alike, and both
cost one hash.  The limits live per app (per server), keyed by client IP and by email; every 429
carries `Retry-After` and a JSON body.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio
from quart import Blueprint, Response, current_app, jsonify, request

from pika.audit import audit, email_hash
from pika.config import Settings
from pika.db import Database, Tx
from pika.protocol import storable
from pika.queries import query
from pika.security.clientip import client_ip
from pika.security.passwords import burn_verify, hash_password, verify_password
from pika.security.ratelimit import KeyedLimiter
from pika.security.tokens import account_for_token, new_token, token_digest, well_formed

__all__ = ["CLIENTS", "RESERVED_SLUGS", "auth_blueprint", "slug_for"]

CLIENTS = frozenset({"pika-web", "pika-desktop", "pika-cli", "pika-e2e"})
RESERVED_SLUGS = frozenset(
    {
        "admin", "api", "live", "dj", "static", "www", "my-likes", "recap", "health", "metrics", "ws",
        "auth", "session", "sessions", "stats", "push", "client", "console", "login", "register",
    }
)  # fmt: skip
PASSWORD_MIN, PASSWORD_MAX = 8, 128
NAME_MAX = 100
EMAIL_MAX = 254

AUTH_INSERT_DJ = query("auth_insert_dj")
AUTH_INSERT_TOKEN = query("auth_insert_token")
AUTH_DJ_BY_EMAIL = query("auth_dj_by_email")
AUTH_REVOKE_TOKEN = query("auth_revoke_token")
AUTH_SET_PASSWORD_HASH = query("auth_set_password_hash")

INVALID_LOGIN = "Invalid email or password"

# Deliberately plain: printable ASCII, one @, a dotted domain of letters, digits and hyphens.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
_UNSAFE_NAME = re.compile(r"[<>\"']")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def auth_blueprint() -> Blueprint:
    bp = Blueprint("auth", __name__)

    @bp.errorhandler(_Refused)
    async def refused(exc: _Refused) -> tuple[Response, int, dict[str, str]]:
        return jsonify(error=exc.error), exc.status, exc.headers

    @bp.post("/api/auth/register")
    async def register() -> tuple[Response, int]:
        state, client = _state(), _require_client()
        ip = client_ip(request.scope, state.settings)
        _refuse_if_limited(state.register_ip, ip, "Too many registrations from this address")
        data = await _json_object()
        email = _valid_email(data.get("email"))
        password = _valid_password(data.get("password"))
        display_name = _valid_display_name(data.get("displayName"))
        slug = slug_for(display_name)
        _consume(state.register_ip, ip, "Too many registrations from this address")

        password_hash = await hash_password(password)
        token = new_token()

        def create(tx: Tx) -> dict[str, Any]:
            dj = tx.one(
                AUTH_INSERT_DJ, email=email, display_name=display_name, slug=slug, password_hash=password_hash
            )
            assert dj is not None
            _store_token(tx, dj["id"], token, f"{client} register")
            return dj

        try:
            dj = await state.db.run(create)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "djs_slug_key":
                raise _Refused(
                    409, f"displayName: the web address {slug!r} is taken; choose another display name"
                ) from None
            raise _Refused(409, "email: an account with this email already exists") from None
        audit("registered", ip=ip, account=dj["id"])
        return jsonify(success=True, user=_user(dj), token=token), 201

    @bp.post("/api/auth/login")
    async def login() -> Response:
        state, client = _state(), _require_client()
        ip = client_ip(request.scope, state.settings)
        _consume(state.login_ip, ip, "Too many login attempts from this address")
        data = await _json_object()
        email, password = data.get("email"), data.get("password")
        if not isinstance(email, str) or not isinstance(password, str):
            raise _Refused(400, "email and password: must be strings")
        email = email.strip().lower()
        plausible_email = _EMAIL.fullmatch(email) is not None and len(email) <= EMAIL_MAX
        key = email if plausible_email else "(not an email)"

        async with state.email_locks.hold(key):  # one attempt per email at a time: the count is exact
            _refuse_if_limited(state.login_email, key, "Too many failed logins for this account")
            account = await state.db.one(AUTH_DJ_BY_EMAIL, email=email) if plausible_email else None
            ok, new_hash = False, None
            if PASSWORD_MIN <= len(password) <= PASSWORD_MAX and storable(password):
                if account is not None:
                    ok, new_hash = await verify_password(account["password_hash"], password)
                else:
                    await burn_verify(password)  # a wrong email costs what a wrong password does
            # A password no account can have (wrong length) is refused without hashing, either way.
            if not ok or account is None:
                state.login_email.allow(key)
                known = account["id"] if account is not None else None
                audit("login_failed", ip=ip, account=known, email_hash=email_hash(email))
                raise _Refused(401, INVALID_LOGIN)

            token = new_token()

            def issue(tx: Tx) -> None:
                if new_hash is not None:
                    tx.execute(AUTH_SET_PASSWORD_HASH, dj_id=account["id"], password_hash=new_hash)
                _store_token(tx, account["id"], token, f"{client} login")

            await state.db.run(issue)
        return jsonify(success=True, user=_user(account), token=token)

    @bp.get("/api/auth/me")
    async def me() -> Response:
        state = _state()
        account = await account_for_token(state.db, _bearer_token())
        if account is None:
            raise _Refused(401, "Invalid token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return jsonify(success=True, user=_user(account))

    @bp.post("/api/auth/regenerate-token")
    async def regenerate_token() -> Response:
        state, client = _state(), _require_client()
        ip = client_ip(request.scope, state.settings)
        _consume(state.regenerate_ip, ip, "Too many token regenerations from this address")
        old = _bearer_token()
        token = new_token()

        def rotate(tx: Tx) -> int | None:
            row = tx.one(AUTH_REVOKE_TOKEN, token_sha256=token_digest(old))
            if row is None:
                return None
            _store_token(tx, row["dj_id"], token, f"{client} regenerate")
            return row["dj_id"]

        dj_id = await state.db.run(rotate) if well_formed(old) else None
        if dj_id is None:
            raise _Refused(401, "Invalid token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        audit("token_regenerated", ip=ip, account=dj_id)
        return jsonify(success=True, token=token)

    return bp


def slug_for(display_name: str) -> str:
    """The web address a display name gives: ASCII letters and digits, runs of others as one hyphen.

    Raises the 400 refusal when that is shorter than 2 characters or a reserved word.
    """
    folded = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode("ascii").lower()
    slug = _NOT_SLUG.sub("-", folded).strip("-")[:32].rstrip("-")
    if len(slug) < 2:
        raise _Refused(
            400,
            "displayName: must contain at least 2 letters (a-z) or digits, which make its web address "
            f"(2-32 characters); {display_name[:40]!r} gives {slug!r}",
        )
    if slug in RESERVED_SLUGS:
        raise _Refused(
            400, f"displayName: its web address {slug!r} is a reserved word; choose another display name"
        )
    return slug


# -- helpers ------------------------------------------------------------------------------------


class _Refused(Exception):
    """An answer other than success: status, `{"error": …}` and any headers."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers or {}


class _KeyedLocks:
    """A trio.Lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (trio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _AuthState:
    """One server's limiters: made on first use, kept in `app.extensions`."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        s = settings
        self.login_ip = KeyedLimiter(s.login_attempts_per_ip, s.login_window, name="login-ip")
        self.login_email = KeyedLimiter(s.login_failures_per_email, s.login_window, name="login-email")
        self.register_ip = KeyedLimiter(s.register_per_ip, s.register_window, name="register-ip")
        self.regenerate_ip = KeyedLimiter(s.register_per_ip, s.register_window, name="regenerate-ip")
        self.email_locks = _KeyedLocks()


def _state() -> _AuthState:
    state = current_app.extensions.get("pika_auth")
    if state is None:
        ctx = current_app.extensions["pika"]
        state = current_app.extensions["pika_auth"] = _AuthState(ctx["settings"], ctx["db"])
    return state


def _require_client() -> str:
    client = request.headers.get("X-Pika-Client", "").strip().lower()
    if client not in CLIENTS:
        raise _Refused(403, "X-Pika-Client: must be one of " + ", ".join(sorted(CLIENTS)))
    return client


def _refuse_if_limited(limiter: KeyedLimiter, key: str, error: str) -> None:
    wait = limiter.retry_after(key)
    if wait > 0:
        raise _too_many(error, wait)


def _consume(limiter: KeyedLimiter, key: str, error: str) -> None:
    if not limiter.allow(key):
        raise _too_many(error, limiter.retry_after(key))


def _too_many(error: str, wait: float) -> _Refused:
    seconds = max(1, math.ceil(wait))
    return _Refused(429, f"{error}; try again in {seconds} s", {"Retry-After": str(seconds)})


async def _json_object() -> dict[str, Any]:
    raw = await request.get_data(as_text=False)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Refused(400, "Request body must be valid JSON") from None
    if not isinstance(data, dict):
        raise _Refused(400, "Request body must be a JSON object")
    return data


def _bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _Refused(
            401, "Authentication required: send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
        )
    return token


def _valid_email(value: Any) -> str:
    if not isinstance(value, str):
        raise _Refused(400, "email: must be a string")
    email = value.strip().lower()
    if len(email) > EMAIL_MAX or _EMAIL.fullmatch(email) is None:
        raise _Refused(400, "email: must be a valid email address (at most 254 characters)")
    return email


def _valid_password(value: Any) -> str:
    if not isinstance(value, str):
        raise _Refused(400, "password: must be a string")
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise _Refused(400, f"password: must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    if not storable(value):
        raise _Refused(400, "password: must not contain NUL characters or unpaired surrogates")
    return value


def _valid_display_name(value: Any) -> str:
    if not isinstance(value, str):
        raise _Refused(400, "displayName: must be a string")
    name = value.strip()
    if not 1 <= len(name) <= NAME_MAX or _UNSAFE_NAME.search(name):
        raise _Refused(400, f"displayName: must be 1-{NAME_MAX} characters without < > \" '")
    if not storable(name) or any(unicodedata.category(c) == "Cc" for c in name):
        raise _Refused(400, "displayName: must not contain control characters or unpaired surrogates")
    return name


def _store_token(tx: Tx, dj_id: int, token: str, name: str) -> None:
    """Remember a new token by its digest; `name` says which client asked for it and why."""
    tx.one(AUTH_INSERT_TOKEN, dj_id=dj_id, token_sha256=token_digest(token), name=name)


def _user(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "email": row["email"], "displayName": row["display_name"], "slug": row["slug"]}
