"""The server's VAPID key pair (RFC 8292): from PIKA_VAPID_* settings, else PIKA_DATA_DIR/vapid.pem.

The embedded default (no PIKA_DATABASE_URL) creates the file at first start so push works out of
the box; a production server gets its keys from `python -m pika.admin vapid`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid, b64urlencode

from pika.config import Settings
from pika.errors import ConfigError

__all__ = [
    "VapidKeys",
    "create_key_file",
    "key_file",
    "load_keys",
    "new_keys",
    "private_key_of",
    "public_key_of",
]


@dataclass(frozen=True)
class VapidKeys:
    private_key: str  # base64url raw scalar: picklable, what the worker processes sign with
    public_key: str  # base64url uncompressed P-256 point: the pages' applicationServerKey
    subject: str


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "vapid.pem"


def public_key_of(vapid: Vapid) -> str:
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64urlencode(raw)


def private_key_of(vapid: Vapid) -> str:
    """The raw 32-byte private scalar, base64url: the form PIKA_VAPID_PRIVATE_KEY takes."""
    number = vapid.private_key.private_numbers().private_value
    return b64urlencode(number.to_bytes(32, "big"))


def new_keys() -> Vapid:
    vapid = Vapid()
    vapid.generate_keys()
    return vapid


def create_key_file(path: Path) -> Vapid:
    """Write a new key pair to `path` (mode 0600); refuse to replace an existing one."""
    vapid = new_keys()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = vapid.private_pem()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return vapid


def load_keys(settings: Settings) -> VapidKeys | None:
    """The configured key pair, the data dir's, a new one for the embedded default, else None."""
    if settings.vapid_private_key:
        try:
            vapid = Vapid.from_string(settings.vapid_private_key)
        except Exception:
            raise ConfigError("PIKA_VAPID_PRIVATE_KEY: not a base64url P-256 private key") from None
        if settings.vapid_public_key and settings.vapid_public_key.rstrip("=") != public_key_of(vapid):
            raise ConfigError("PIKA_VAPID_PUBLIC_KEY: does not belong to PIKA_VAPID_PRIVATE_KEY")
    elif key_file(settings).exists():
        vapid = Vapid.from_file(str(key_file(settings)))
    elif settings.database_url is None:
        vapid = create_key_file(key_file(settings))
    else:
        return None
    if not settings.vapid_subject.startswith(("mailto:", "https://")):
        raise ConfigError("PIKA_VAPID_SUBJECT: must be a mailto: or https:// URL (RFC 8292 §2.1)")
    return VapidKeys(private_key_of(vapid), public_key_of(vapid), settings.vapid_subject)
