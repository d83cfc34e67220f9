"""Password hashing: argon2id, run in worker threads so a burst of logins never stalls the loop.

One hash costs ≈ 0.1 s of CPU at these parameters (above OWASP's floor of 19 MiB, t=2, p=1), so
every hash and verify runs in a thread behind a small limiter: at most `HASH_THREADS` at once, the
rest queue in trio.  An unknown email still costs one verify (`burn_verify`), so the answer's timing
does not tell which accounts exist.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import trio
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

T = TypeVar("T")

__all__ = ["HASH_THREADS", "burn_verify", "hash_password", "hash_password_blocking", "verify_password"]

# Hashing is pure CPU (argon2 releases the GIL).  A burst of logins must not slow every dancer's
# NOW_PLAYING (measured: `python -m loadtest logins`), so hashes run on their own threads, at most
# cores-1 of them, at the lowest CPU priority: the event loop always wins a contended core.
HASH_THREADS = max(1, (os.cpu_count() or 2) - 1)
HASH_NICENESS = 19

# OWASP's floor, m=19 MiB, t=2, p=1: ≈ 0.05 s on one core.  46 MiB cost 3.5× the CPU per login and
# a login burst then slowed dancers more (`python -m loadtest logins`: 5 vs 17 logins/s).  Hashes made
# with other parameters still verify and are rehashed at the next successful login.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, type=Type.ID)

_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


async def hash_password(password: str) -> str:
    """The argon2id hash (PHC string, salt included) of `password`."""
    return await _in_hash_thread(hash_password_blocking, password)


def hash_password_blocking(password: str) -> str:
    """The same, on the calling thread (command-line tools; never on the trio loop)."""
    return _HASHER.hash(password)


async def verify_password(stored_hash: str, password: str) -> tuple[bool, str | None]:
    """(True, new hash or None) when `password` matches; (False, None) otherwise.

    The new hash is set when the stored one was made with weaker or other parameters: store it.
    A malformed stored hash is a mismatch, never an exception.
    """
    return await _in_hash_thread(_verify, stored_hash, password)


async def burn_verify(password: str) -> None:
    """Spend what a verify costs, for a login whose email has no account."""
    await _in_hash_thread(_burn, password)


# -- helpers ------------------------------------------------------------------------------------


def _lower_priority() -> None:
    # this thread only (Linux); elsewhere, or when not allowed, it runs at normal priority
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)


_pool = ThreadPoolExecutor(
    max_workers=HASH_THREADS, thread_name_prefix="pika-argon2", initializer=_lower_priority
)


async def _in_hash_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` on a low-priority hashing thread; wait for it without blocking the loop.
    Jobs beyond HASH_THREADS queue in the pool; a cancelled caller lets its job finish unseen."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    future = _pool.submit(fn, *args)
    future.add_done_callback(lambda _: token.run_sync_soon(done.set))
    await done.wait()
    return future.result()  # already done: returns at once, or raises what fn raised


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
