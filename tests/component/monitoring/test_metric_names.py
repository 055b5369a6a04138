"""Every metric the alert rules and the dashboard name is one the platform exports.

A rule on a misspelt or renamed metric never fires: this builds the platform (so that every
module, Faust's stream metrics and the collectors are registered) and checks each ``checkout_*``
name of monitoring/ against the registry, with prometheus_client's suffixes (``_total`` of a
counter; ``_bucket``, ``_sum``, ``_count`` of a histogram).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from app.bootstrap import build
from app.settings import Settings

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "monitoring"
METRIC = re.compile(r"\bcheckout_[a-z0-9_]+")
RECORDED = re.compile(r"\bcheckout:[a-z0-9_:]+")


def exported_names(tmp_path: Path) -> set[str]:
    build(Settings(data_dir=tmp_path, store="memory://"))
    # The registry knows each metric by every name it is exposed under.
    return set(REGISTRY._names_to_collectors)


def alert_rule_texts() -> list[str]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_texts() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "checkout.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_metric_of_the_rules_and_the_dashboard_is_exported(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    texts = alert_rule_texts() + dashboard_texts()
    named = {name for text in texts for name in METRIC.findall(text)}
    assert len(named) > 30
    missing = sorted(named - exported)
    assert not missing, f"named in monitoring/ but not exported: {missing}"


def test_the_dashboard_uses_only_recording_rules_that_exist() -> None:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    used = {
        name for text in dashboard_texts() + alert_rule_texts() for name in RECORDED.findall(text)
    }
    assert used and used <= recorded, sorted(used - recorded)


def test_the_new_business_and_technical_metrics_are_exported(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    for name in (
        "checkout_settlements_completed_total",
        "checkout_settled_usdt_total",
        "checkout_platform_fees_usdt_total",
        "checkout_settlement_fee_checks_total",
        "checkout_payment_confirmation_seconds_bucket",
        "checkout_http_request_duration_seconds_bucket",
        "checkout_http_responses_total",
        "checkout_consumer_lag_messages",
        "checkout_db_pool_connections",
        "checkout_db_pool_max_connections",
    ):
        assert name in exported, name
