"""Password hashing: argon2id, run in worker threads so a burst of logins never stalls the loop.

One hash costs ≈ 0.1 s of CPU at these parameters (above OWASP's floor of 19 MiB, t=2, p=1), so
every hash and verify runs in a thread behind a small limiter: at most `HASH_THREADS` at once, the
rest queue in trio.  An unknown email still costs one verify (`burn_verify`), so the answer's timing
does not tell which accounts exist.
"""

from __future__ import annotations

import os
import secrets
import threading

import trio
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["HASH_THREADS", "burn_verify", "hash_password", "hash_password_blocking", "verify_password"]

# Hashing is pure CPU (argon2 releases the GIL): leave one core to the event loop, or a burst of
# logins slows every dancer's NOW_PLAYING (measured: `python -m loadtest logins`).
HASH_THREADS = max(1, (os.cpu_count() or 2) - 1)

# OWASP's floor is m=19 MiB, t=2, p=1; 46 MiB at t=2 costs ≈ 0.1 s on one core.  Hashes made with
# other parameters still verify and are rehashed at the next successful login.
_HASHER = PasswordHasher(time_cost=2, memory_cost=46 * 1024, parallelism=1, hash_len=32, type=Type.ID)

_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("pika_password_limiter")
_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


async def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) of `password`."""
    return await trio.to_thread.run_sync(hash_password_blocking, password, limiter=_threads())


def hash_password_blocking(password: str) -> str:
    """The same, on the calling thread (command-line tools; never on the trio loop)."""
    return _HASHER.hash(password)


async def verify_password(stored_hash: str, password: str) -> tuple[bool, str | None]:
    """(True, new hash or None) when `password` matches; (False, None) otherwise.

    The new hash is set when the stored one was made with weaker or other parameters: store it.
    A malformed stored hash is a mismatch, never an exception.
    """
    return await trio.to_thread.run_sync(_verify, stored_hash, password, limiter=_threads())


async def burn_verify(password: str) -> None:
    """Spend what a verify costs, for a login whose email has no account."""
    await trio.to_thread.run_sync(_burn, password, limiter=_threads())


# -- helpers ------------------------------------------------------------------------------------


def _threads() -> trio.CapacityLimiter:
    """One limiter per trio run (a limiter belongs to the run that made it)."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(HASH_THREADS)
        _limiter.set(limiter)
        return limiter


def _verify(stored_hash: str, password: str) -> tuple[bool, str | None]:
    try:
        _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if _HASHER.check_needs_rehash(stored_hash):
        return True, _HASHER.hash(password)
    return True, None


def _burn(password: str) -> None:
    global _dummy_hash
    with _dummy_lock:
        dummy = _dummy_hash
        if dummy is None:
            # The first time, making the dummy hash costs what one verify costs: no timing tell.
            _dummy_hash = _HASHER.hash(secrets.token_hex(16))
            return
    _verify(dummy, password)
