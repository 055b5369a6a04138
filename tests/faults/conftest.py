"""The fault suite's world (docs/reliability.md): a 3-broker KRaft cluster of its own and the
platform on it under a steady load.

The cluster runs beside the development broker, on 19092/19102/19112 (controllers one port up),
with replication factor 3 and min.insync.replicas 2 (scripts/infra.sh); the workers produce
with acks=all. It is started once per session and wiped afterwards, so each run starts clean.
PostgreSQL and Redis are the development ones (``make test`` starts them), shared as in the
integration tier: every run has its own topic namespace and merchant.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.platform import Platform, running_platform
from tests.support.processes import REPO_ROOT

CLUSTER_NODES = 3
CLUSTER_BASE_PORT = 19092
CLUSTER_DIR = REPO_ROOT / ".local" / "kafka" / f"cluster-{CLUSTER_NODES}n-{CLUSTER_BASE_PORT}"


@dataclass(frozen=True)
class KafkaCluster:
    bootstrap: str  # host:port,host:port,…
    env: dict[str, str]

    @property
    def broker_url(self) -> str:
        """KAFKA_BROKER for the workers: every broker, so any one may be down."""
        return ",".join(f"kafka://{server}" for server in self.bootstrap.split(","))

    def kill_node(self, node: int) -> None:
        """SIGKILL one broker: no controlled shutdown, its leaderships simply vanish."""
        pid = int((CLUSTER_DIR / f"node-{node}" / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        raise AssertionError(f"Kafka node {node} (pid {pid}) outlived SIGKILL")

    def start_node(self, node: int) -> None:
        """Start one broker again (scripts/infra.sh kafka-start-node), on its own data."""
        _infra(self.env, "kafka-start-node", str(node))


def _infra(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "infra.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"scripts/infra.sh {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    env = {
        **os.environ,
        "KAFKA_NODES": str(CLUSTER_NODES),
        "KAFKA_BASE_PORT": str(CLUSTER_BASE_PORT),
    }
    shutil.rmtree(CLUSTER_DIR, ignore_errors=True)  # a run never reads a previous run's topics
    _infra(env, "up", "kafka")
    bootstrap = _infra(env, "kafka-bootstrap").strip().splitlines()[-1]
    try:
        yield KafkaCluster(bootstrap, env)
    finally:
        _infra(env, "down", "kafka")
        shutil.rmtree(CLUSTER_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def platform(
    kafka_cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    data_dir: Path = tmp_path_factory.mktemp("faults")
    with running_platform(
        data_dir,
        workers=2,
        KAFKA_BROKER=kafka_cluster.broker_url,
        KAFKA_REPLICATION_FACTOR=str(CLUSTER_NODES),
    ) as running:
        yield running
