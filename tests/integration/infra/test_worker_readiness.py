"""A real ``checkout worker``: liveness, readiness of each dependency, metrics, declared topics."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.runtime.topics import ALL_TOPICS
from tests.support.postgres import throwaway_postgres
from tests.support.processes import eventually, free_port, worker

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


def worker_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {
        # A group of its own, so the test never joins the partitions of a platform left running.
        "CHECKOUT_APP_ID": f"test-worker-{uuid.uuid4().hex[:8]}",
        "WEB_PORT": str(free_port()),
        "CHECKOUT_DATA_DIR": str(tmp_path / "state"),
        **overrides,
    }


def readyz(internal_url: str) -> httpx.Response:
    """The detailed readiness, on the operators' listener."""
    return httpx.get(f"{internal_url}/readyz", timeout=10)


def test_readyz_names_each_dependency_and_follows_postgres_going_down_and_up(
    tmp_path: Path,
) -> None:
    with throwaway_postgres() as postgres:
        env = worker_env(tmp_path, DATABASE_URL=postgres.url)
        with worker(env) as proc:
            internal = proc.internal_url
            assert httpx.get(f"{proc.url}/healthz", timeout=5).json() == {"status": "alive"}
            ready = eventually(
                lambda: (r := readyz(internal)).status_code == 200 and r,
                timeout=30,
                what="ready",
            )
            # The public port says ready or not, and nothing about the hosts behind it.
            public = httpx.get(f"{proc.url}/readyz", timeout=10)
            assert (public.status_code, public.json()) == (200, {"status": "ready"})
            checks = ready.json()["checks"]
            assert {name: check["status"] for name, check in checks.items()} == {
                "kafka": "up",
                "postgres": "up",
                "redis": "up",
                "partitions": "up",
            }

            postgres.stop()
            down = eventually(
                lambda: (r := readyz(internal)).status_code == 503 and r,
                timeout=30,
                what="postgres down",
            )
            body = down.json()
            assert body["status"] == "unready"
            assert body["checks"]["postgres"]["status"] == "down"
            assert body["checks"]["postgres"]["error"]
            assert body["checks"]["kafka"]["status"] == "up"
            assert body["checks"]["redis"]["status"] == "up"
            metrics = httpx.get(f"{internal}/metrics", timeout=5).text
            assert 'checkout_dependency_up{dependency="postgres"} 0.0' in metrics

            postgres.start()
            eventually(
                lambda: readyz(internal).status_code == 200, timeout=30, what="postgres back up"
            )


def test_worker_declares_every_topic_with_its_partition_count_and_hides_table_endpoints(
    tmp_path: Path,
) -> None:
    env = worker_env(tmp_path)
    with worker(env) as proc:
        expected = {spec.name: spec.partitions for spec in ALL_TOPICS}
        declared = eventually(
            lambda: (found := asyncio.run(partition_counts(list(expected)))) == expected and found,
            timeout=60,
            what="all topics declared",
        )
        assert declared["crypto-checkout.domain-events"] == 12
        # Faust's table and router pages, and the metrics, are not on the public port.
        for page in ("/table/", "/router/", "/metrics"):
            assert httpx.get(f"{proc.url}{page}", timeout=5).status_code == 404, page
        metrics = httpx.get(f"{proc.internal_url}/metrics", timeout=5)
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "checkout_messages_received_total" in metrics.text


async def partition_counts(names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {
        topic["topic"]: len(topic["partitions"]) for topic in described if topic["error_code"] == 0
    }
