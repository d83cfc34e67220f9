"""Settings from PIKA_* variables: the defaults an operator gets, and one clear line for a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pika.config import Settings
from pika.errors import ConfigError


def test_with_no_variables_set_the_server_listens_on_loopback_port_3001_and_keeps_state_in_dot_pika() -> None:
    settings = Settings.from_env({})

    assert settings.host == "127.0.0.1"
    assert settings.port == 3001
    assert settings.data_dir == Path(".pika")
    assert settings.pgdata == Path(".pika") / "pgdata"
    assert settings.database_url is None
    assert settings.dev is False
    assert settings.allowed_origins == ()
    assert settings.trusted_proxies == ()


def test_the_default_limits_are_those_of_protocol_section_9() -> None:
    s = Settings.from_env({})

    assert s.max_frame_bytes == 64 * 1024
    assert s.outbox_frames == 256
    assert (s.ws_connects_per_ip, s.ws_connects_window) == (200, 10)
    assert s.ws_open_per_ip == 3000
    assert s.max_sessions == 1000
    assert s.dj_grace_seconds == 120
    assert (s.track_burst, s.track_rate) == (10, 1)
    assert (s.likes_per_minute, s.bulk_likes_per_minute, s.bulk_like_max_tracks) == (10, 3, 100)
    assert (s.tempo_per_minute, s.tempo_lapse_seconds) == (20, 300)
    assert (s.reactions_per_window, s.reactions_window) == (5, 10)
    assert s.poll_max_options == 10
    assert (s.poll_min_seconds, s.poll_max_seconds) == (30, 300)
    assert (s.announcement_min_seconds, s.announcement_max_seconds) == (15, 3600)
    assert s.listener_count_window == 2
    assert (s.poll_update_dj_window, s.poll_update_window) == (0.25, 1)
    assert s.large_room_members == 5000
    assert (s.login_failures_per_email, s.login_attempts_per_ip, s.login_window) == (5, 20, 15 * 60)
    assert (s.register_per_ip, s.register_window) == (5, 15 * 60)


def test_variables_are_parsed_into_typed_settings() -> None:
    settings = Settings.from_env(
        {
            "PIKA_PORT": "8080",
            "PIKA_DEV": "true",
            "PIKA_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
            "PIKA_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
            "PIKA_DATA_DIR": "/var/lib/pika",
        }
    )

    assert settings.port == 8080
    assert settings.dev is True
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.trusted_proxies == ("10.0.0.1", "192.168.0.0/16")
    assert settings.data_dir == Path("/var/lib/pika")


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("PIKA_PORT", "abc", "is not a whole number (0-65535)"),
        ("PIKA_PORT", "70000", "is out of range (0-65535)"),
        ("PIKA_DEV", "maybe", "is not a boolean"),
        ("PIKA_TRUSTED_PROXIES", "notanip", "not an IP address or network"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_the_rule(name: str, value: str, rule: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({name: value})

    message = str(refused.value)
    assert name in message
    assert value in message
    assert rule in message
    assert "\n" not in message


def test_command_line_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"PIKA_PORT": "8080", "PIKA_HOST": "0.0.0.0"}, port=9000, host="::1")

    assert settings.port == 9000
    assert settings.host == "::1"


def test_an_override_left_unset_keeps_the_environment_value() -> None:
    assert Settings.from_env({"PIKA_PORT": "8080"}, port=None).port == 8080


def test_serve_with_a_bad_port_exits_2_with_one_line_naming_pika_port(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIKA_")}
    env["PIKA_PORT"] = "abc"
    proc = subprocess.run(
        [sys.executable, "-m", "pika", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "PIKA_PORT" in proc.stderr
    assert "abc" in proc.stderr
    assert "Traceback" not in proc.stderr
