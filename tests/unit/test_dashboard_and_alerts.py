"""The shipped Grafana dashboard and Prometheus rules are valid and use only real metrics.

promtool comes from Debian's ``prometheus`` package, which scripts/setup.sh installs: these
tests fail (never skip) when it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_metrics_catalogue import exposed_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "config" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
DASHBOARD = ROOT / "config" / "grafana" / "dvcbus-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
# Series Prometheus itself makes for every scrape job; everything else must be ours.
PROMETHEUS_SERIES = {"up"}
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{)")
_DVCBUS = re.compile(r"\bdvcbus_[a-z0-9_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is required (Debian package `prometheus`); run scripts/setup.sh",
            pytrace=False,
        )
    return path


def run_promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_alert_rules_are_valid_for_promtool() -> None:
    assert "SUCCESS" in run_promtool("check", "rules", RULES.name)


def test_alert_rules_fire_on_the_situations_they_describe() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", "alerts_test.yml")


def test_shipped_prometheus_config_is_valid() -> None:
    run_promtool("check", "config", "prometheus.yml")


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    concrete = [
        e.replace("$__rate_interval", "5m").replace("$target", "hanoi") for e in dashboard_exprs()
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(concrete)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    run_promtool("check", "rules", str(path), cwd=tmp_path)


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_dashboard_and_rules_use_only_metrics_the_bus_exports(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    assert exprs
    known = exposed_names()
    used = {name for e in exprs for name in _DVCBUS.findall(e)}
    assert sorted(used - known) == [], f"{source} uses metrics that do not exist"
    others = {name for e in exprs for name in _SELECTOR.findall(e)} - known
    assert others <= PROMETHEUS_SERIES, f"{source} selects unknown series {sorted(others)}"


def test_every_alert_has_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor in headings, f"{rule['alert']}: no section #{anchor} in docs/operations.md"
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_the_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert {
        "DvcbusOldestMessageOld",
        "DvcbusDeadLettersGrowing",
        "DvcbusCircuitOpen",
        "DvcbusNoDeliveries",
        "DvcbusProcessDown",
    } <= names


def test_dashboard_has_an_overview_and_a_row_of_panels_per_target() -> None:
    panels = dashboard()["panels"]
    rows = [p for p in panels if p["type"] == "row"]
    assert rows[0]["title"].startswith("Overview")
    per_target = [r for r in rows if r.get("repeat") == "target"]
    assert len(per_target) == 1
    start = panels.index(per_target[0])
    titles = {p["title"] for p in panels[start + 1 :]}
    for needed in (
        "Throughput",
        "Error rate",
        "Latency p50 / p99",
        "Backlog and in flight",
        "Oldest message age",
        "Circuit",
        "Dead letters by reason (/min)",
    ):
        assert needed in titles
    variables = {v["name"] for v in dashboard()["templating"]["list"]}
    assert {"datasource", "target"} <= variables
