"""The fault suite's world (docs/reliability.md): a 3-broker KRaft cluster of its own and the
platform on it under a steady load.

The cluster runs beside the development broker, on 19092/19102/19112 (controllers one port up),
with replication factor 3 and min.insync.replicas 2 (scripts/infra.sh); the workers produce
with acks=all. PostgreSQL and Redis are the suite's own too, on 15432 and 16379 (scripts/infra.sh
with PG_PORT and REDIS_PORT: data under .local/postgres-15432 and .local/redis-16379, no WAL
archive), because scenarios stop them: the development ones on 5432 and 6379 serve whatever
else runs meanwhile (the integration tier). All of them are started once per session and wiped
afterwards, so each run starts clean; every module's platform has its own topic namespace and
merchant.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.platform import Platform, running_platform
from tests.support.processes import REPO_ROOT, eventually

CLUSTER_NODES = 3
CLUSTER_BASE_PORT = 19092
CLUSTER_DIR = REPO_ROOT / ".local" / "kafka" / f"cluster-{CLUSTER_NODES}n-{CLUSTER_BASE_PORT}"
PG_PORT = 15432
REDIS_PORT = 16379
STORE_DIRS = (
    REPO_ROOT / ".local" / f"postgres-{PG_PORT}",
    REPO_ROOT / ".local" / f"redis-{REDIS_PORT}",
)


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
        """Start one broker again (scripts/infra.sh kafka-start-node), on its own data, and wait
        until the cluster is whole: every broker in the metadata, every partition led and all
        its replicas in sync. The script returns as soon as the JVM is launched; a module that
        started its platform meanwhile created its topics while the broker rejoined, and once
        (run B of 2026-12-03) the leading worker's chain watcher and payment agent then stood
        still for over a minute. The scenarios test one fault at a time, on a whole cluster."""
        started = time.monotonic()
        _infra(self.env, "kafka-start-node", str(node))
        eventually(
            lambda: asyncio.run(_cluster_whole(self.bootstrap)),
            timeout=180,
            what=f"Kafka node {node} back and every partition in sync",
            every=1.0,
        )
        print(
            f"\nKafka node {node} back, every partition in sync {time.monotonic() - started:.1f} s"
            " after its start"
        )


async def _cluster_whole(bootstrap: str) -> bool:
    """True when every broker is in the metadata and every partition is led and fully in sync;
    otherwise raises, naming what is missing (``eventually`` keeps it for its failure message)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        brokers = len((await admin.describe_cluster())["brokers"])
        topics = await admin.describe_topics()
    finally:
        await admin.close()
    if brokers < CLUSTER_NODES:
        raise AssertionError(f"{brokers} of {CLUSTER_NODES} brokers in the metadata")
    lagging = [
        f"{topic['topic']}[{partition['partition']}]"
        for topic in topics
        for partition in topic["partitions"]
        if partition["leader"] < 0 or set(partition["isr"]) != set(partition["replicas"])
    ]
    if lagging:
        raise AssertionError(
            f"{len(lagging)} partitions without a leader or out of sync: {lagging[:3]}"
        )
    return True


@dataclass(frozen=True)
class Stores:
    """The suite's own PostgreSQL and Redis, which scenarios stop and start again."""

    env: dict[str, str]  # for scripts/infra.sh: PG_PORT, REDIS_PORT, …

    @property
    def database_url(self) -> str:
        return f"postgresql://checkout:checkout@127.0.0.1:{PG_PORT}/checkout"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{REDIS_PORT}/0"

    @property
    def platform_env(self) -> dict[str, str]:
        """What points a platform at them."""
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}

    def stop_postgres(self) -> None:
        """``pg_ctl stop -m fast``: every connection is closed, the server is gone."""
        _infra(self.env, "down", "postgres")

    def start_postgres(self) -> None:
        _infra(self.env, "up", "postgres")

    def stop_redis(self) -> None:
        """SIGTERM: Redis closes every connection, writes its append-only file and exits."""
        _infra(self.env, "down", "redis")

    def start_redis(self) -> None:
        _infra(self.env, "up", "redis")


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


@pytest.fixture(scope="session")
def stores() -> Iterator[Stores]:
    env = {
        **os.environ,
        "PG_PORT": str(PG_PORT),
        "REDIS_PORT": str(REDIS_PORT),
        "PG_ARCHIVE": "off",  # a throwaway database: no WAL archive to fill
    }
    _infra(env, "down", "postgres")  # whatever a crashed run left behind
    _infra(env, "down", "redis")
    for directory in STORE_DIRS:
        shutil.rmtree(directory, ignore_errors=True)
    _infra(env, "up", "postgres")  # also applies the migrations
    _infra(env, "up", "redis")
    try:
        yield Stores(env)
    finally:
        _infra(env, "down", "redis")
        _infra(env, "down", "postgres")
        for directory in STORE_DIRS:
            shutil.rmtree(directory, ignore_errors=True)


def fault_platform_env(kafka_cluster: KafkaCluster, stores: Stores) -> dict[str, str]:
    """What every platform of the suite runs with: the cluster, the suite's own stores."""
    return {
        "KAFKA_BROKER": kafka_cluster.broker_url,
        "KAFKA_REPLICATION_FACTOR": str(CLUSTER_NODES),
        **stores.platform_env,
    }


@pytest.fixture(scope="module")
def platform(
    kafka_cluster: KafkaCluster, stores: Stores, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    data_dir: Path = tmp_path_factory.mktemp("faults")
    with running_platform(
        data_dir, workers=2, **fault_platform_env(kafka_cluster, stores)
    ) as running:
        yield running
