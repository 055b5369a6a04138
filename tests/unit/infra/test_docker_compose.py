"""docker-compose.yml runs the same platform with the same settings as the local scripts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"


def compose_plugin_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(
    not compose_plugin_available(),
    reason="the docker client or its compose plugin is not installed (no engine is needed)",
)
def test_docker_compose_config_is_valid() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


BROKERS = ("kafka-1", "kafka-2", "kafka-3")
WORKERS = ("worker-1", "worker-2")


def test_compose_has_every_service_with_a_healthcheck() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {*BROKERS, *WORKERS, "postgres", "redis", "tron-sim", "migrate", "nginx"} <= set(
        services
    )
    assert {"prometheus", "alertmanager", "grafana", "jaeger", "node-exporter"} <= set(services)
    assert {"kafka-exporter", "signer", "backup"} <= set(services)
    for name in (*BROKERS, *WORKERS, "postgres", "redis", "tron-sim", "nginx"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_three_brokers_keep_every_write_on_two_of_three() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    ids = set()
    for name in BROKERS:
        broker = services[name]
        assert broker["image"].startswith("apache/kafka:")
        env = broker["environment"]
        ids.add(env["KAFKA_NODE_ID"])
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert (
            env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        )
        assert (env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == (3, 2)
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert ids == {1, 2, 3}


def test_the_workers_environment_is_valid_settings() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    hosts = set()
    for name in WORKERS:
        environment = {key: str(value) for key, value in services[name]["environment"].items()}
        settings = Settings.from_env(environment)
        assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert settings.kafka_replication_factor == 3
        assert settings.database_url.startswith("postgresql://")
        assert settings.web_port == 6066
        hosts.add(environment["WEB_HOST"])
    assert hosts == set(WORKERS)  # each its own canonical URL for forwarding
    upstreams = services["nginx"]["environment"]["LB_UPSTREAM_SERVERS"]
    assert all(f"server {name}:6066" in upstreams for name in WORKERS)
    scraped = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    targets = {
        target
        for job in scraped["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    assert {
        "worker-1:7066",
        "worker-2:7066",
        "node-exporter:9100",
        "kafka-exporter:9308",
    } <= targets


def test_the_signer_runs_apart_with_valid_settings_and_no_published_port() -> None:
    signer = yaml.safe_load(COMPOSE.read_text())["services"]["signer"]
    assert signer["command"] == ["checkout", "signer"]
    assert "ports" not in signer and "expose" not in signer  # no listener at all
    environment = {key: str(value) for key, value in signer["environment"].items()}
    settings = Settings.from_env(environment)
    assert settings.signer_log_file.parts[:3] == ("/", "var", "lib")
    assert settings.chain.hot_wallet_address == "TLrpNTBuCpGMrB9TyVwgEhNVRhtWEQPHh4"
