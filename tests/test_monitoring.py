"""Monitoring as ops run it: /metrics behind PIKA_METRICS_TOKEN, and deploy/monitoring/ (Prometheus
scrape config, alert rules, the Grafana dashboard) using only metrics a running server exports.

`promtool` (Debian's `prometheus` package, installed by .ci/run) checks the rules and the config.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pika.server import Running
from tests.conftest import StartServer
from tests.test_auth import call
from tests.wsclient import connect

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
TOKEN = "metrics-secret-for-tests-0123456789"
#: Series Prometheus makes itself (not exported by the server).
SYNTHETIC = {"up"}


async def test_metrics_need_the_bearer_token_when_one_is_set(start_server: StartServer) -> None:
    server = await start_server(metrics_token=TOKEN)

    missing = await call(server.url, "GET", "/metrics", client=None)
    wrong = await call(server.url, "GET", "/metrics", token="not-" + TOKEN, client=None)
    right = await call(server.url, "GET", "/metrics", token=TOKEN, client=None)

    for refused in (missing, wrong):
        assert refused.status == 401
        assert refused.headers["content-type"].startswith("application/json")
        assert "Bearer" in refused.json()["error"] and TOKEN not in refused.body.decode()
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert right.status == 200
    assert b"pika_ws_connections" in right.body


async def test_metrics_stay_open_without_a_token(server: Running) -> None:
    assert (await call(server.url, "GET", "/metrics", client=None)).status == 200


async def test_every_metric_the_rules_and_dashboard_use_is_exported(server: Running) -> None:
    async with connect(server.url) as peer:  # a frame in, a NACK out: labelled series appear too
        await peer.request("SUBSCRIBE", sessionId="x")
    exported = _exported_names((await call(server.url, "GET", "/metrics", client=None)).body.decode())

    used = _used_names()

    assert {"pika_database_up", "pika_ws_nacks_total", "pika_audit_events_total"} <= used
    assert used - SYNTHETIC <= exported, sorted(used - SYNTHETIC - exported)
    assert "pika_database_up 1.0" in (await call(server.url, "GET", "/metrics", client=None)).body.decode()


def test_promtool_accepts_the_alert_rules_and_the_scrape_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `apt-get install -y prometheus` (Debian ships it; .ci/run does)")
    rules = subprocess.run(
        [promtool, "check", "rules", str(MONITORING / "alerts.yml")], capture_output=True, text=True
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # As the compose service runs it: a scratch copy with the token written beside the config.
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(MONITORING / name, tmp_path / name)
    (tmp_path / "metrics_token").write_text(TOKEN)
    config = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_monitoring_profile_runs_prometheus_and_grafana_against_the_server() -> None:
    services = yaml.safe_load((ROOT / "compose.prod.yml").read_text())["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]

    assert prometheus["profiles"] == ["monitoring"] and grafana["profiles"] == ["monitoring"]
    assert "pika" not in services or "profiles" not in services["pika"]
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["pika:3001"]
    assert scrape["authorization"]["credentials_file"] == "metrics_token"
    assert "PIKA_METRICS_TOKEN" in " ".join(prometheus["command"])
    assert not prometheus.get("ports")
    for mount in grafana["volumes"]:
        source = mount.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).is_dir(), mount
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ][0]
    assert datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads((MONITORING / "grafana/dashboards/pika.json").read_text())
    assert {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]} == {datasource["uid"]}


# -- helpers ------------------------------------------------------------------------------------


def _used_names() -> set[str]:
    """Metric names in the alert expressions and the dashboard's queries."""
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((MONITORING / "grafana/dashboards/pika.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expr in exprs for name in re.findall(r"\b(?:pika_[a-z0-9_]+|up)\b", expr)}


def _exported_names(text: str) -> set[str]:
    """Every series name the exposition declares: samples, and for each `# TYPE` its family's
    names (a labelled counter with no sample yet still declares `<name>_total`)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            if kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
