"""End to end in a real ``checkout worker``: domain events on Kafka → the live status agent →
Redis → a WebSocket client of the worker's web server sees the views in order."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.processes import eventually, free_port, worker
from tests.unit.live.scenario import Scenario

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

TOPIC = "crypto-checkout.domain-events"
BOOTSTRAP = "127.0.0.1:9092"


async def topic_exists() -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        return TOPIC in await admin.list_topics()
    finally:
        await admin.close()


async def produce(producer: AIOKafkaProducer, events: list) -> None:
    for event in events:
        await producer.send_and_wait(
            TOPIC, key=event.aggregate_id.encode(), value=event.model_dump_json().encode()
        )


async def test_the_agent_in_a_real_worker_feeds_the_websocket_in_order(tmp_path: Path) -> None:
    invoice_id = f"inv_e2e_{uuid.uuid4().hex[:12]}"
    scenario = Scenario(invoice_id=invoice_id, amount="150")
    payment = scenario.pay("100")  # underpaid
    scenario.confirmations(payment, 4)
    scenario.expire()  # confirming → expired while underpaid
    created, rest = scenario.events[0], scenario.events[1:]
    port = free_port()
    env = {
        "CHECKOUT_APP_ID": f"test-live-{uuid.uuid4().hex[:8]}",
        "WEB_PORT": str(port),
        "CHECKOUT_DATA_DIR": str(tmp_path / "state"),
    }
    base = f"http://127.0.0.1:{port}/api/v1/public/invoice/{invoice_id}"
    with worker(env, name="live-worker") as proc:
        for _ in range(120):
            if await topic_exists():
                break
            await asyncio.sleep(0.5)
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
        await producer.start()
        try:
            await produce(producer, [created])

            def view_served() -> dict | None:
                response = httpx.get(base, timeout=5)
                return response.json() if response.status_code == 200 else None

            try:
                first_json = await asyncio.to_thread(
                    eventually, view_served, timeout=120, what="the agent to apply InvoiceCreated"
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{proc.log_tail(60)}") from None
            assert first_json["status"] == "pending"

            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"{base}/ws") as ws,
            ):
                received = [orjson.loads((await ws.receive(timeout=10)).data)]
                assert received[0] == first_json
                await produce(producer, rest)

                # The payment's events travel on another partition than the invoice's, so the
                # invoice may be expired before its payment's last confirmations are shown:
                # read on until both have arrived.
                def settled(view: dict) -> bool:
                    payments = view["payments"]
                    return (
                        view["status"] == "expired"
                        and bool(payments)
                        and (payments[0]["confirmations"] == 4)
                    )

                while not settled(received[-1]):
                    message = await ws.receive(timeout=60)
                    assert message.type == aiohttp.WSMsgType.TEXT, (message, proc.log_tail())
                    received.append(orjson.loads(message.data))
        finally:
            await producer.stop()

    versions = [view["version"] for view in received]
    assert versions == sorted(set(versions))
    statuses = [view["status"] for view in received]
    assert statuses[0] == "pending" and statuses[-1] == "expired"
    assert "confirming" in statuses
    final = received[-1]
    assert (final["amount_received"], final["amount_due"], final["payment_exception"]) == (
        "100",
        "50",
        "underpaid",
    )
    assert final["payments"][0]["payment_id"] == payment
    assert final["payments"][0]["confirmations"] == 4
