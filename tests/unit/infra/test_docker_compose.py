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


def test_compose_has_every_service_with_a_healthcheck() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"kafka", "postgres", "redis", "worker", "tron-sim", "migrate"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name in ("kafka", "postgres", "redis", "worker", "tron-sim"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_the_worker_environment_is_valid_settings() -> None:
    worker = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]
    environment = {key: str(value) for key, value in worker["environment"].items()}
    settings = Settings.from_env(environment)
    assert settings.kafka_broker == "kafka://kafka:9092"
    assert settings.database_url.startswith("postgresql://")
    assert settings.web_port == 6066


def test_the_signer_runs_apart_with_valid_settings_and_no_published_port() -> None:
    signer = yaml.safe_load(COMPOSE.read_text())["services"]["signer"]
    assert signer["command"] == ["checkout", "signer"]
    assert "ports" not in signer and "expose" not in signer  # no listener at all
    environment = {key: str(value) for key, value in signer["environment"].items()}
    settings = Settings.from_env(environment)
    assert settings.signer_log_file.parts[:3] == ("/", "var", "lib")
    assert settings.chain.hot_wallet_address == "TLrpNTBuCpGMrB9TyVwgEhNVRhtWEQPHh4"
