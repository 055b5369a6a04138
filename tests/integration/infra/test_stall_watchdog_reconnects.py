"""The stall watchdog's real offsets client, broken as issue 18 found it, is replaced (issue 18).

The shared broker is never stopped: the outage is a broker nobody listens for (a closed port),
then a client broken in the very state issue 18's was left in after a broker restart. Each time
the watchdog must drop the client and, with a new one against the real broker, seek a stalled
partition back. Only a topic of the test's own is touched.
"""

from __future__ import annotations

import socket
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from app.runtime.stall import StallTracker, StallWatchdog

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

BROKER = "127.0.0.1:9092"


def closed_port() -> str:
    """An address where no broker listens: the broker is away."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def topic_with_three_messages() -> str:
    topic = f"test-stall-watchdog-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BROKER)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BROKER, acks="all")
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, value=b"%d" % n)
    finally:
        await producer.stop()
    return topic


class StuckConsumer:
    """Faust's consumer as the watchdog reads it: messages wait, none was delivered."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.flow_active = True
        self._committed_offset = {tp: 0}
        self._read_offset = {tp: None}
        self._acked: dict[TopicPartition, list[int]] = {tp: []}
        self.seeks: list[int] = []

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)


def failures() -> float:
    return REGISTRY.get_sample_value("checkout_stall_watchdog_failures_total") or 0.0


async def test_a_broken_offsets_client_is_replaced_and_the_repair_resumes() -> None:
    topic = await topic_with_three_messages()
    consumer = StuckConsumer(TopicPartition(topic, 0))
    app: Any = SimpleNamespace(rebalancing=False, consumer=consumer)
    servers = {"now": closed_port()}
    clients: list[AIOKafkaConsumer] = []

    def connect() -> AIOKafkaConsumer:
        client = AIOKafkaConsumer(bootstrap_servers=servers["now"], enable_auto_commit=False)
        clients.append(client)
        return client

    dog = StallWatchdog(
        app,
        {topic},
        bootstrap_servers=BROKER,
        client_id="test-stall-watchdog",
        tracker=StallTracker(0),  # waiting messages are a stall at once
        connect=connect,
    )
    before = failures()
    try:
        await dog.check()  # the broker is away: counted, not raised
        assert failures() == before + 1
        assert consumer.seeks == []

        servers["now"] = BROKER  # back
        await dog.check()
        assert consumer.seeks == [0]
        assert dog.readiness() == {"status": "up"}

        # The state issue 18's cached client was left in after the broker's restart: every read
        # raised AttributeError("'NoneType' object has no attribute 'end_offsets'").
        broken = clients[-1]
        broken._fetcher = None
        await dog.check()
        assert failures() == before + 2
        assert consumer.seeks == [0]
        assert broken._closed  # stopped and dropped

        await dog.check()
        assert consumer.seeks == [0, 0]  # a new client: the repair resumes
        assert len(clients) == 3
    finally:
        await dog.close()
    assert all(client._closed for client in clients)
