"""One `Settings` object, read once from `PIKA_*` environment variables.

Nothing else in Pika! reads the environment: the server, the migration runner and the
tests build a `Settings` and pass it down.  Each field declares its variable, a parser and
one line of help, so `--help` and the README's settings table come from the same place.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pika.errors import ConfigError

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("is not a boolean (use 1/0, true/false, yes/no, on/off)")


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"is not a whole number ({low}-{high})") from None
        if not low <= value <= high:
            raise ValueError(f"is out of range ({low}-{high})")
        return value

    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"is not a number ({low}-{high})") from None
        if not low <= value <= high:
            raise ValueError(f"is out of range ({low}-{high})")
        return value

    return parse


def _str(raw: str) -> str:
    return raw.strip()


def _opt_str(raw: str) -> str | None:
    return raw.strip() or None


def _ws_url(raw: str) -> str | None:
    value = raw.strip()
    if value and not (value.startswith(("ws://", "wss://")) and len(value.split("/", 3)[2]) > 0):
        raise ValueError("is not a ws:// or wss:// URL")
    return value or None


def _list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())


def _networks(raw: str) -> tuple[str, ...]:
    items = _list(raw)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"has {item!r}, which is not an IP address or network") from None
    return items


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("is not one of DEBUG, INFO, WARNING, ERROR")
    return value


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"line", "json"}:
        raise ValueError("is not one of line, json")
    return value


def _workers(raw: str) -> int:
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    return _int(1, 256)(raw)


def _opt_port(raw: str) -> int | None:
    return _int(1, 65535)(raw) if raw.strip() else None


def setting(default: Any, parse: Callable[[str], Any], help: str, group: str = "server") -> Any:
    """Declare one setting: its default, how to parse its env var, and its help line."""
    return field(default=default, metadata={"parse": parse, "help": help, "group": group})


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one Pika! process. Env var = `PIKA_` + field name upper-cased."""

    # -- server and storage --------------------------------------------------------------------
    database_url: str | None = setting(
        None, _opt_str, "PostgreSQL URL; unset = start the embedded PostgreSQL in PIKA_DATA_DIR"
    )
    data_dir: Path = setting(
        Path(".pika"), lambda r: Path(r.strip()), "state dir (embedded database in pgdata/)"
    )
    host: str = setting("127.0.0.1", _str, "address to listen on")
    port: int = setting(3001, _int(0, 65535), "HTTP port to listen on (0 = any free port)")
    live_port: int = setting(
        3002, _int(0, 65535), "live WebSocket port on the same host, the fast /ws (0 = any free port)"
    )
    public_live_url: str | None = setting(
        None, _ws_url, "the live WebSocket URL pages use behind a proxy (e.g. wss://pika.example/ws)"
    )
    public_origin: str | None = setting(
        None, _opt_str, "the server's own origin as browsers see it (e.g. https://pika.example)"
    )
    allowed_origins: tuple[str, ...] = setting((), _list, "extra browser origins allowed (comma-separated)")
    dev: bool = setting(False, _bool, "development mode: any browser origin is allowed")
    trusted_proxies: tuple[str, ...] = setting(
        (), _networks, "proxy addresses/networks whose CF-Connecting-IP / X-Forwarded-For is trusted"
    )
    log_level: str = setting("INFO", _log_level, "DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting("line", _log_format, "log lines as `line` (key=value) or `json` (log shippers)")
    metrics_token: str | None = setting(
        None, _opt_str, "bearer token /metrics requires (set it in production); unset = open"
    )
    workers: int = setting(
        1, _workers, "server processes on this host sharing the ports (1-256, or auto = one per core)"
    )
    process_name: str | None = setting(
        None, _opt_str, "this process's name in /health and /metrics; unset = hostname:pid"
    )
    reuse_port: bool = setting(
        True, _bool, "workers bind the ports with SO_REUSEPORT (off: they share sockets the supervisor opens)"
    )
    metrics_port: int | None = setting(
        None, _opt_port, "also serve /health and /metrics on this port (worker N on this port + N)"
    )
    db_pool_size: int = setting(10, _int(1, 200), "PostgreSQL connections (and worker threads) for queries")
    db_deadline_seconds: float = setting(
        3.0, _float(0.1, 600), "a database call not done by then is refused, nothing applied (s)"
    )
    sql_dir: Path = setting(SQL_DIR, lambda r: Path(r.strip()), "folder with migrations/ and queries/")
    ws_compression: bool = setting(False, _bool, "accept per-message deflate (costs memory and CPU)")
    listener_flush_seconds: float = setting(
        5.0, _float(0.05, 3600), "how often listeners are saved for a restart (s; a crash loses less)"
    )
    migration_lock_timeout: float = setting(
        30.0, _float(0.1, 3600), "a migration waiting longer than this for a lock gives up (s)"
    )
    vapid_private_key: str | None = setting(
        None, _opt_str, "Web Push VAPID private key (base64url); unset = PIKA_DATA_DIR/vapid.pem"
    )
    vapid_public_key: str | None = setting(
        None, _opt_str, "Web Push VAPID public key (base64url), checked against the private key"
    )
    vapid_subject: str = setting(
        "mailto:pika@localhost", _str, "Web Push VAPID contact (mailto: or https: URL) for push services"
    )
    push_allow_http: bool = setting(
        False, _bool, "accept http:// push endpoints on loopback (tests with a local push service only)"
    )
    push_hosts: tuple[str, ...] = setting(
        ("fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com", "push.apple.com"),
        _list,
        "hosts (and their subdomains) a push endpoint may name: the browsers' push services",
    )
    push_concurrency: int = setting(4, _int(1, 64), "Web Push requests in flight at once")
    retention_days: int = setting(
        30, _int(1, 36500), "telemetry and other operational rows older than this are deleted daily (days)"
    )

    # -- PROTOCOL.md §9 limits -----------------------------------------------------------------
    max_frame_bytes: int = setting(
        65536, _int(1024, 16 * 2**20), "largest inbound frame; bigger closes 1009", "limits"
    )
    outbox_frames: int = setting(256, _int(1, 100_000), "outbound queue per connection (frames)", "limits")
    ws_connects_per_ip: int = setting(
        200, _int(1, 10**7), "new WebSocket connections per IP per window", "limits"
    )
    ws_connects_window: float = setting(10.0, _float(0.1, 3600), "window for new connections (s)", "limits")
    ws_open_per_ip: int = setting(3000, _int(1, 10**7), "open WebSocket connections per IP", "limits")
    ws_reopen_seconds: float = setting(
        30.0,
        _float(0, 3600),
        "after a start, each IP may open PIKA_WS_OPEN_PER_IP new connections this long (s)",
        "limits",
    )
    max_sessions: int = setting(1000, _int(1, 10**6), "live sessions at once", "limits")
    max_controllers: int = setting(
        5, _int(1, 100), "DJ consoles attached to one session (ATTACH_SESSION)", "limits"
    )
    dj_grace_seconds: float = setting(
        120.0, _float(0, 86400), "DJ grace period after a dropped connection (s)", "limits"
    )
    track_burst: int = setting(
        10, _int(1, 10**6), "track broadcasts allowed in a burst per session", "limits"
    )
    track_rate: float = setting(
        1.0, _float(0.001, 10**6), "track broadcasts per second after the burst", "limits"
    )
    track_backlog_seconds: float = setting(
        600.0, _float(0, 86400), "how far back a track's playedAt counts for the flood guard (s)", "limits"
    )
    likes_per_minute: int = setting(10, _int(1, 10**6), "likes per client per minute", "limits")
    bulk_likes_per_minute: int = setting(
        3, _int(1, 10**6), "bulk-like messages per client per minute", "limits"
    )
    bulk_like_max_tracks: int = setting(100, _int(1, 10**5), "tracks in one bulk like", "limits")
    tempo_per_minute: int = setting(20, _int(1, 10**6), "tempo votes per client per minute", "limits")
    tempo_lapse_seconds: float = setting(300.0, _float(1, 86400), "a tempo vote lapses after (s)", "limits")
    reactions_per_window: int = setting(5, _int(1, 10**6), "reactions per client per window", "limits")
    reactions_window: float = setting(10.0, _float(0.1, 3600), "reaction window (s)", "limits")
    poll_max_options: int = setting(10, _int(2, 100), "options in a poll", "limits")
    poll_min_seconds: int = setting(30, _int(1, 86400), "shortest poll (s)", "limits")
    poll_max_seconds: int = setting(300, _int(1, 86400), "longest poll (s)", "limits")
    announcement_min_seconds: int = setting(15, _int(1, 86400), "shortest announcement (s)", "limits")
    announcement_max_seconds: int = setting(3600, _int(1, 86400), "longest announcement (s)", "limits")
    listener_count_window: float = setting(
        2.0, _float(0.01, 3600), "LISTENER_COUNT coalescing window (s)", "limits"
    )
    tempo_feedback_window: float = setting(
        1.0, _float(0.01, 3600), "TEMPO_FEEDBACK coalescing window (s)", "limits"
    )
    poll_update_dj_window: float = setting(
        0.25, _float(0.01, 3600), "POLL_UPDATE window to the DJ (s)", "limits"
    )
    poll_update_window: float = setting(
        1.0, _float(0.01, 3600), "POLL_UPDATE window to subscribers (s)", "limits"
    )
    large_room_members: int = setting(
        5000, _int(1, 10**7), "past this many members, audience windows double", "limits"
    )
    listener_linger_seconds: float = setting(
        300.0, _float(0, 86400), "a closed client still counts as a listener for (s)", "limits"
    )
    session_idle_seconds: float = setting(
        4 * 3600.0, _float(1, 10**7), "a session with no DJ action expires after (s)", "limits"
    )
    session_max_age_seconds: float = setting(
        24 * 3600.0, _float(1, 10**7), "a session expires at this age (s)", "limits"
    )
    ping_interval: float = setting(20.0, _float(0.1, 3600), "WebSocket protocol ping interval (s)", "limits")
    idle_timeout: float = setting(60.0, _float(1, 86400), "close a connection silent for (s)", "limits")
    write_stall_seconds: float = setting(
        30.0, _float(0.1, 86400), "close with 1013 a connection that takes no byte for (s)", "limits"
    )
    login_failures_per_email: int = setting(5, _int(1, 10**6), "failed logins per email per window", "limits")
    login_attempts_per_ip: int = setting(20, _int(1, 10**6), "login attempts per IP per window", "limits")
    login_window: float = setting(900.0, _float(1, 86400), "login limit window (s)", "limits")
    register_per_ip: int = setting(
        5, _int(1, 10**6), "registrations and token regenerations per IP per window", "limits"
    )
    register_window: float = setting(900.0, _float(1, 86400), "registration limit window (s)", "limits")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every `PIKA_*` variable; `overrides` (e.g. from CLI flags) win over the environment.

        Raises ConfigError naming the variable and the rule it breaks.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = env_name(f.name)
            if name in env:
                try:
                    values[f.name] = f.metadata["parse"](env[name])
                except ValueError as exc:
                    raise ConfigError(f"{name}={env[name]!r} {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def process(self) -> str:
        """This process's name: PIKA_PROCESS_NAME, else hostname:pid."""
        return self.process_name or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"


def env_name(field_name: str) -> str:
    return "PIKA_" + field_name.upper()


def describe() -> list[tuple[str, str, str, str]]:
    """(variable, default, help, group) for every setting: the source of `--help` and the README table."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(default)
        if f.name == "sql_dir":
            default = "<repo>/sql"
        rows.append(
            (
                env_name(f.name),
                "" if default is None else str(default),
                f.metadata["help"],
                f.metadata["group"],
            )
        )
    return rows
