"""Where a pipeline run's time went, hop by hop, from the records a test platform left behind.

Run a benchmark or test with ``CHECKOUT_TEST_KEEP_TOPICS=1`` so its namespace's topics are kept,
then ``.venv/bin/python bench/pipeline_hops.py <namespace>`` (the benchmark prints the namespace).
Every record carries its producer's timestamp, so the latency of each hop of every paid invoice
can be read afterwards without instrumenting the workers:

    block → transfer observed      the chain watcher (block timestamp → record on checkout.deposits)
    transfer → PaymentDetected     the payment agent
    PaymentDetected → InvoicePaid  invoice commands and the invoice agent
    InvoicePaid → SettlementCreated  the settlement agent and its ledger booking

Timestamps are set when a record is handed to the producer, so a hop includes the consumer
fetch and the agent's queue, not the time the last record spent waiting to be sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from bench_pipeline import BOOTSTRAP, percentile

HOPS = (
    ("transfer", "PaymentDetected"),
    ("PaymentDetected", "InvoicePaid"),
    ("InvoicePaid", "SettlementCreated"),
)


async def read_topic(servers: str, topic: str) -> list[tuple[int, dict[str, Any]]]:
    """Every record of ``topic``: (producer timestamp in ms, decoded JSON value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # a topic this client has not seen
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise SystemExit(f"no topic {topic}: was it run with CHECKOUT_TEST_KEEP_TOPICS=1?")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[int, dict[str, Any]]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records.extend((m.timestamp, json.loads(m.value)) for m in messages)
        return records
    finally:
        await consumer.stop()


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


async def hops(namespace: str, servers: str) -> None:
    deposits = await read_topic(servers, f"{namespace}.checkout.deposits")
    events = await read_topic(servers, f"{namespace}.crypto-checkout.domain-events")

    invoice_of: dict[str, str] = {}
    for _, value in deposits:
        if value["kind"] == "deposit_registered":
            invoice_of[value["deposit_address"]] = value["invoice_id"]
    seen: dict[str, dict[str, float]] = defaultdict(dict)
    watcher: list[float] = []
    for timestamp, value in deposits:
        if value["kind"] == "transfer_observed":
            transfer = value["transfer"]
            invoice_id = invoice_of.get(transfer["to_address"])
            if invoice_id is not None:
                seen[invoice_id].setdefault("transfer", timestamp)
                watcher.append(timestamp - _epoch_ms(transfer["block_timestamp"]))
    for timestamp, value in events:
        invoice_id = value["data"].get("invoice_id") or value["aggregate_id"]
        seen[invoice_id].setdefault(value["event_type"], timestamp)

    settled = [times for times in seen.values() if "SettlementCreated" in times]
    print(f"{namespace}: {len(settled)} settled invoices; hop latencies in ms")
    print(f"{'hop':36s} {'p50':>8s} {'p95':>8s} {'max':>8s}")
    rows = [("block → transfer observed", watcher)]
    rows += [
        (f"{start} → {end}", [times[end] - times[start] for times in settled if start in times])
        for start, end in HOPS
    ]
    for name, values in rows:
        if values:
            print(
                f"{name:36s} {percentile(values, 50):8.0f} {percentile(values, 95):8.0f}"
                f" {max(values):8.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("namespace", help="the platform's topic namespace, t<random>")
    args = parser.parse_args()
    asyncio.run(hops(args.namespace, BOOTSTRAP))


if __name__ == "__main__":
    main()
