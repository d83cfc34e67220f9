"""The production Containerfile and compose file keep their safety properties.

Both are read as data (the Containerfile instruction by instruction, the compose file with
PyYAML), so an edit that runs the server as root, publishes it on every interface, or writes
a password into the file fails here instead of in production.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "Containerfile"
COMPOSE = ROOT / "compose.prod.yml"

SERVE = ["python", "-m", "pika", "serve", "--no-migrate"]
MIGRATE_UP = ["python", "-m", "pika.migrate", "up"]

# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`; `$${...}` is an escaped literal, not a reference.
_REFERENCE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<modifier>[^}]*)\}")


# -- helpers ---------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "the Containerfile ends inside a continued line"
    return result


def exec_form(args: str) -> list[str]:
    """The argv of a CMD/ENTRYPOINT, in exec (JSON) or shell form."""
    args = args.strip()
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def argv(command: Any) -> list[str]:
    return list(command) if isinstance(command, list) else shlex.split(command)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def is_reference(value: str) -> bool:
    """The whole value is one `${...}` reference."""
    match = _REFERENCE.fullmatch(value.strip())
    return match is not None


def url_password_is_reference(url: str) -> bool:
    """The URL's password is exactly one `${...}` reference (references may hold ':' themselves)."""
    masked = _REFERENCE.sub(lambda m: f"REF{m.start()}X", url)  # no ':' or '@' inside
    match = re.match(r"^[a-z][a-z0-9+.-]*://[^:@/]*:(?P<password>[^@/]*)@", masked)
    return match is not None and re.fullmatch(r"REF\d+X", match["password"]) is not None


def literal_password_problems(compose: dict[str, Any]) -> list[str]:
    """Places where a password is written into the compose file instead of taken from ${...}."""
    problems = []
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if "PASSWORD" in key.upper() and not is_reference(value):
                problems.append(f"{name}.{key}={value!r}")
            if key == "PIKA_DATABASE_URL" and not url_password_is_reference(value):
                problems.append(f"{name}.{key}={value!r}")
    return problems


def optional_password_references(text: str) -> list[str]:
    """Every ${...} naming a password that lacks the `:?` required form."""
    return [
        m.group(0)
        for m in _REFERENCE.finditer(text)
        if "PASSWORD" in m["name"].upper() and not m["modifier"].startswith(":?")
    ]


@pytest.fixture(scope="module")
def containerfile() -> list[tuple[str, str]]:
    return instructions(CONTAINERFILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _last(containerfile: list[tuple[str, str]], keyword: str) -> tuple[int, str]:
    found = [(i, args) for i, (kw, args) in enumerate(containerfile) if kw == keyword]
    assert found, f"the Containerfile has no {keyword}"
    return found[-1]


def _env(containerfile: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in containerfile:
        if keyword == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


# -- Containerfile ---------------------------------------------------------------------------


def test_the_image_is_built_on_slim_python_3_11(containerfile):
    froms = [args for kw, args in containerfile if kw == "FROM"]
    assert froms, "no FROM"
    assert froms[-1].split()[0] in {"python:3.11-slim", "docker.io/library/python:3.11-slim"}


def test_the_server_runs_as_a_non_root_user_set_before_cmd(containerfile):
    user_at, user = _last(containerfile, "USER")
    cmd_at, _ = _last(containerfile, "CMD")
    assert user_at < cmd_at
    assert user.split(":")[0] not in {"root", "0", ""}


def test_the_container_serves_without_migrating(containerfile):
    _, cmd = _last(containerfile, "CMD")
    assert exec_form(cmd) == SERVE
    assert not [kw for kw, _ in containerfile if kw == "ENTRYPOINT"]


def test_the_image_has_a_healthcheck_on_the_health_endpoint(containerfile):
    _, check = _last(containerfile, "HEALTHCHECK")
    assert not check.upper().startswith("NONE")
    assert "http://127.0.0.1:3001/health" in check
    assert "urllib" in check


def test_the_image_finds_its_sql_listens_on_all_interfaces_and_exposes_both_ports(containerfile):
    env = _env(containerfile)
    assert env["PIKA_SQL_DIR"] == "/app/sql"
    assert env["PIKA_HOST"] == "0.0.0.0"
    assert env["PIKA_DATA_DIR"] == "/var/lib/pika"
    exposed = [port for kw, args in containerfile if kw == "EXPOSE" for port in args.split()]
    assert "3001" in exposed and "3002" in exposed  # HTTP and the live listener
    copied = " ".join(args for kw, args in containerfile if kw == "COPY")
    assert "sql/" in copied and "src/" in copied


# -- compose.prod.yml ------------------------------------------------------------------------


def test_postgres_has_a_pg_isready_healthcheck(compose):
    check = compose["services"]["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in (" ".join(check) if isinstance(check, list) else check)


def test_postgres_keeps_its_data_in_a_declared_named_volume(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["image"].rsplit("/", 1)[-1].startswith("postgres:16")
    sources = [
        (v["source"] if isinstance(v, dict) else v.split(":")[0])
        for v in postgres["volumes"]
        if (v.get("target") if isinstance(v, dict) else v.split(":")[1]) == "/var/lib/postgresql/data"
    ]
    assert sources, "postgres data is not on a volume"
    assert sources[0] in (compose.get("volumes") or {}), "the data volume is not a named, declared volume"


def test_migrate_runs_the_migrations_once_after_postgres_is_healthy(compose):
    migrate = compose["services"]["migrate"]
    assert argv(migrate["command"]) == MIGRATE_UP
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"
    assert "PIKA_DATABASE_URL" in env_of(migrate)


def test_the_server_waits_for_migrations_to_succeed(compose):
    pika = compose["services"]["pika"]
    assert argv(pika["command"]) == SERVE
    assert pika["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert pika["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert pika["restart"] == "unless-stopped"
    assert "stop_grace_period" in pika


def test_migrate_and_server_use_the_same_image_and_database(compose):
    migrate, pika = compose["services"]["migrate"], compose["services"]["pika"]
    assert migrate["image"] == pika["image"]
    assert migrate["build"]["dockerfile"] == pika["build"]["dockerfile"] == "Containerfile"
    assert env_of(migrate)["PIKA_DATABASE_URL"] == env_of(pika)["PIKA_DATABASE_URL"]


def test_the_server_port_is_published_on_loopback_only(compose):
    assert compose["services"]["pika"]["ports"]
    for name, service in compose["services"].items():
        if name not in {"pika", "grafana"}:  # grafana: the monitoring profile's dashboard
            assert not service.get("ports"), f"{name} publishes a port"
        for port in service.get("ports") or ():
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", port
            else:
                assert str(port).startswith("127.0.0.1:"), port


def test_both_ports_are_published_for_the_proxy(compose):
    published = [
        str(p.get("target") if isinstance(p, dict) else p).rsplit(":", 1)[-1]
        for p in compose["services"]["pika"]["ports"]
    ]
    assert sorted(published) == ["3001", "3002"]


def test_the_cloudflare_tunnel_routes_ws_to_the_live_port_before_the_catch_all():
    ingress = yaml.safe_load((ROOT / "deploy" / "cloudflared.yml").read_text())["ingress"]
    services = [(rule.get("path"), rule["service"]) for rule in ingress]
    assert services.index(("^/ws", "http://localhost:3002")) < services.index((None, "http://localhost:3001"))
    assert ingress[-1] == {"service": "http_status:404"}


def test_caddy_routes_ws_to_the_live_port():
    lines = [line.split() for line in (ROOT / "deploy" / "Caddyfile").read_text().splitlines()]
    assert ["reverse_proxy", "/ws", "127.0.0.1:3002"] in lines
    assert ["reverse_proxy", "127.0.0.1:3001"] in lines


def test_origins_and_proxies_come_from_the_environment(compose):
    env = env_of(compose["services"]["pika"])
    for key in ("PIKA_PUBLIC_ORIGIN", "PIKA_PUBLIC_LIVE_URL", "PIKA_ALLOWED_ORIGINS", "PIKA_TRUSTED_PROXIES"):
        assert is_reference(env[key]), f"{key}={env[key]!r}"


def test_no_password_is_written_in_the_compose_file(compose):
    assert literal_password_problems(compose) == []


def test_every_password_reference_is_required(compose):
    text = COMPOSE.read_text()
    assert "POSTGRES_PASSWORD" in text
    assert optional_password_references(text) == []


def test_the_password_checks_catch_a_literal_or_defaulted_password():
    leaky = {
        "services": {
            "db": {"environment": {"POSTGRES_PASSWORD": "hunter2"}},
            "app": {"environment": ["PIKA_DATABASE_URL=postgresql://pika:hunter2@db/pika"]},
        }
    }
    assert len(literal_password_problems(leaky)) == 2
    assert not url_password_is_reference("postgresql://${U:-pika}@db/pika")  # no password: trust auth
    assert url_password_is_reference("postgresql://${U:-pika}:${P:?set P}@db:5432/${D:-pika}")
    assert optional_password_references("x: ${POSTGRES_PASSWORD:-hunter2} ${DB_PASSWORD}") == [
        "${POSTGRES_PASSWORD:-hunter2}",
        "${DB_PASSWORD}",
    ]
    assert optional_password_references("x: $${POSTGRES_PASSWORD} ${POSTGRES_PASSWORD:?set it}") == []
