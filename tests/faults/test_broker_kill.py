"""kill -9 of the broker that leads the most of the platform's partitions, under a steady load
(docs/reliability.md, "The fault suite"): with replication 3 and min.insync.replicas 2 the other
brokers take the leadership over, the workers' clients follow, and with acks=all nothing the
platform acted on is lost; nothing is settled twice. The broker is started again afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.faults.conftest import KafkaCluster
from tests.faults.scenario import under_load
from tests.support.platform import Platform

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("infrastructure")]


async def busiest_broker(namespace: str, bootstrap: str) -> int:
    """The broker (node id = node number) leading the most partitions of ``namespace``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(namespace)]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    leaders = Counter(
        partition["leader"] for topic in described for partition in topic["partitions"]
    )
    node, _ = leaders.most_common(1)[0]
    return int(node)


def test_kill_9_of_the_busiest_broker_under_load_loses_nothing_and_settles_nothing_twice(
    platform: Platform, kafka_cluster: KafkaCluster
) -> None:
    killed: list[int] = []

    def kill_the_busiest_broker() -> str:
        node = asyncio.run(busiest_broker(platform.namespace, kafka_cluster.bootstrap))
        kafka_cluster.kill_node(node)
        killed.append(node)
        return f"kill -9 of broker {node} (the leader of most partitions)"

    try:
        under_load(platform, kafka_cluster, kill_the_busiest_broker)
    finally:
        for node in killed:
            kafka_cluster.start_node(node)  # the cluster whole again for what follows
