"""monitoring/: the alert rules pass promtool's check and unit tests, carry the seeds' thresholds
and severities with a runbook each, and Alertmanager, Prometheus and Grafana are configured to
match. promtool is Debian's `prometheus` package: `make test-component` installs it
(scripts/promtool.sh); it is never skipped."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "monitoring"
ALERTS = MONITORING / "alerts.yml"
ALERT_TESTS = MONITORING / "tests" / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "checkout.json"
OPERATIONS = ROOT / "docs" / "operations.md"
SEVERITIES = ("critical", "high", "medium", "low")

# The seeds' targets and alerts, with their severities (DESIGN.md, issue 17).
REQUIRED = {
    "SettlementSuccessRateLow": ("critical", "< 0.995"),
    "SettlementSlow": ("high", "> 30"),
    "PaymentConfirmationSlow": ("high", "> 300"),
    "FeeMismatch": ("critical", "> 0"),
    "ApiLatencyHigh": ("medium", "> 0.5"),
    "ConsumerLagHigh": ("medium", "> 1000"),
    "ConsumerLagVeryHigh": ("high", "> 5000"),
    "DatabasePoolSaturated": ("high", "> 0.8"),
    "DeadLettersRising": ("high", "> 0"),
    "DependencyDown": ("critical", "== 0"),
    "WorkerDown": ("critical", "== 0"),
    "ChainWatcherBehind": ("high", "> 20"),
    "ChainPollsFailing": ("high", "> 3"),
    "HotWalletCannotCoverPayouts": ("high", "checkout_money_out_pending_usdt >"),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: `make promtool` (scripts/promtool.sh) installs Debian's "
            "prometheus package; `make test-component` does it first",
            pytrace=False,
        )
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_promtool_checks_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_prometheus_config(promtool: str) -> None:
    result = run(promtool, "check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboards_queries_are_promql(promtool: str, tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert exprs
    check = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    # Grafana's variables, as Grafana replaces them
                    {"record": f"dashboard:query_{n}", "expr": expr.replace("$__range", "1h")}
                    for n, expr in enumerate(exprs)
                ],
            }
        ]
    }
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(yaml.safe_dump(check))
    result = run(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_seeds_alerts_have_their_thresholds_and_severities() -> None:
    defined = alerts()
    for name, (severity, threshold) in REQUIRED.items():
        assert name in defined, f"{name} is missing from monitoring/alerts.yml"
        assert defined[name]["labels"]["severity"] == severity, name
        recorded = {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}
        expr = " ".join(defined[name]["expr"].split())
        whole = " ".join([expr, *(" ".join(recorded[r].split()) for r in recorded if r in expr)])
        assert threshold in whole, f"{name}: {threshold!r} not in {expr!r}"


def test_every_alert_has_a_severity_annotations_and_a_runbook_in_operations_md() -> None:
    operations = OPERATIONS.read_text()
    alerts_section = operations[operations.index("\n## Alerts\n") :]
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^### (.+)$", alerts_section, flags=re.MULTILINE)
    }
    seen = set()
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        seen.add(rule["labels"]["severity"])
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations.md", name
        assert anchor == name.lower() and anchor in anchors, f"no runbook for {name}"
    assert seen == set(SEVERITIES)


def test_every_alert_fires_once_and_stays_silent_once_in_the_unit_tests() -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for name in alerts():
        outcomes = [bool(case.get("exp_alerts")) for case in cases if case["alertname"] == name]
        assert True in outcomes, f"no test where {name} fires"
        assert False in outcomes, f"no test where {name} stays silent"


def test_alertmanager_routes_each_severity_to_its_receiver() -> None:
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    routes = config["route"]["routes"]

    def receivers_for(severity: str) -> list[str]:
        found = []
        for route in routes:
            [matcher] = route["matchers"]
            label, operator, value = re.fullmatch(r'(\w+)(=~|=)"(.*)"', matcher).groups()  # type: ignore[union-attr]
            matches = value == severity if operator == "=" else re.fullmatch(value, severity)
            if label == "severity" and matches:
                found.append(route["receiver"])
                if not route.get("continue"):
                    break
        return found

    assert receivers_for("critical") == ["pager", "chat"]
    assert receivers_for("high") == ["chat"]
    assert receivers_for("medium") == ["email"]
    assert receivers_for("low") == ["dashboard-only"]
    assert "email_configs" in receivers["email"]
    assert config["route"]["receiver"] in receivers


def test_grafana_provisions_the_datasource_the_dashboard_names() -> None:
    provisioning = MONITORING / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "checkout.yml").read_text())[
        "providers"
    ]
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"]
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows[:2] == ["Business", "Technical"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = " ".join(compose["grafana"]["volumes"])
    assert f"./monitoring/grafana/dashboards:{provider['options']['path']}" in mounts
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning" in mounts
    prometheus_mounts = " ".join(compose["prometheus"]["volumes"])
    assert "./monitoring/alerts.yml:/etc/prometheus/alerts.yml" in prometheus_mounts


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
