"""How fast domain events go into the read models: batched against one by one, beside Kafka.

Per run, three fresh sets of realistic event histories (the domain's own handlers,
tests/unit/live/scenario.py: invoices paid at once, paid after 12 confirmations, expired,
underpaid then expired, cancelled, with their settlements; a merchant of their own) are

1. produced to a fresh 12-partition topic with aiokafka and consumed back in this process: what
   reading the events costs (``raw consume``);
2. projected one event per transaction (``projections.apply``, as the projection agent did
   before batching): decoded from their JSON, recorded in ``event_store``, folded by its trigger
   into the report tables, and the invoice summaries updated;
3. projected in batches of ``--batch`` events, one transaction each (``projections.apply_batch``,
   what the agent does now).

Each set is new to the database (the store records an event id once, and a repeat would cost
nothing). Prints events per second for each, the ratios, and medians of the runs:

    .venv/bin/python bench/bench_projection.py [--invoices 400] [--runs 3] [--batch 500]

Needs `make infra` (Kafka and PostgreSQL); the topics it creates are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.adapters.postgres import projections
from app.domain.commands import CompleteSettlement
from app.domain.events import DomainEvent, parse_event
from app.domain.policies import settlement_command_for
from app.domain.settlement import Settlement
from app.settings import Settings
from tests.unit.live.scenario import Scenario


def histories(invoices: int) -> list[DomainEvent]:
    """``invoices`` invoice histories of one new merchant, as the platform emits them."""
    merchant_id = f"mer_bench_{secrets.token_hex(8)}"
    tag = secrets.token_hex(5)
    base = secrets.randbelow(2**56) * 1024
    events: list[DomainEvent] = []
    for i in range(invoices):
        kind = i % 20
        amount = "150" if kind in (1, 2) else "9.99"  # 10 % need 12 confirmations
        scenario = Scenario(invoice_id=f"inv_bench_{tag}_{i}", amount=amount)
        if kind == 3:
            scenario.expire()
        elif kind == 4:
            scenario.cancel()
        elif kind == 5:
            scenario.pay("5", n=base + i)
            scenario.expire()
        else:
            payment = scenario.pay(amount, n=base + i)
            if amount == "150":
                for confirmations in range(2, 13):
                    scenario.confirmations(payment, confirmations)
        events += scenario.events + settled(scenario)
    return [e.model_copy(update={"merchant_id": merchant_id}) for e in events]


def settled(scenario: Scenario) -> list[DomainEvent]:
    paid = [e for e in scenario.events if e.event_type == "InvoicePaid"]
    command = settlement_command_for(paid[-1]) if paid else None
    if command is None:
        return []
    [created] = Settlement.create(command)
    completed = Settlement.replay([created]).decide(
        CompleteSettlement(
            command_id=f"complete-{command.settlement_id}",
            settlement_id=command.settlement_id,
            completed_at=command.created_at + timedelta(seconds=1),
        )
    )
    return [created, *completed]


async def raw_consume(settings: Settings, payloads: list[bytes]) -> float:
    """Events per second read back by an aiokafka consumer, from the first to the last."""
    topic = f"bench.projection.{secrets.token_hex(6)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=12, replication_factor=1)])
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            for i, payload in enumerate(payloads):
                await producer.send(topic, payload, key=str(i % 97).encode())
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            seen, started = 0, time.perf_counter()
            while seen < len(payloads):
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                seen += sum(len(records) for records in batches.values())
            return len(payloads) / (time.perf_counter() - started)
        finally:
            await consumer.stop()
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def one_by_one(pool: Any, payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for offset, payload in enumerate(payloads):
        await projections.apply(pool, parse_event(payload), 0, offset)
    return len(payloads) / (time.perf_counter() - started)


async def batched(pool: Any, payloads: list[bytes], size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(payloads), size):
        batch = [
            (parse_event(payload), 0, start + i)
            for i, payload in enumerate(payloads[start : start + size])
        ]
        await projections.apply_batch(pool, batch)
    return len(payloads) / (time.perf_counter() - started)


async def run(settings: Settings, args: argparse.Namespace) -> dict[str, float]:
    sets = [[e.model_dump_json().encode() for e in histories(args.invoices)] for _ in range(3)]
    async with aiopg.create_pool(settings.database_url, minsize=1, maxsize=2) as pool:
        figures = {
            "events per run": float(len(sets[0])),
            "raw consume events/s": await raw_consume(settings, sets[0]),
            "one by one events/s": await one_by_one(pool, sets[1]),
            "batched events/s": await batched(pool, sets[2], args.batch),
        }
    figures["batched ÷ one by one"] = figures["batched events/s"] / figures["one by one events/s"]
    figures["batched ÷ raw consume"] = figures["batched events/s"] / figures["raw consume events/s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--invoices", type=int, default=400, help="invoice histories per set")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="events per batched transaction")
    args = parser.parse_args()
    if min(args.invoices, args.runs, args.batch) < 1:
        parser.error("--invoices, --runs and --batch must be positive")
    settings = Settings.from_env()
    runs = []
    for number in range(1, args.runs + 1):
        figures = asyncio.run(run(settings, args))
        print(
            f"run {number}/{args.runs}: {figures['events per run']:.0f} events; "
            + ", ".join(f"{k} {_number(v)}" for k, v in figures.items() if k != "events per run"),
            flush=True,
        )
        runs.append(figures)
    print(
        f"\n{args.invoices} invoice histories per set, batches of {args.batch}; "
        f"median of {len(runs)}"
    )
    header = f"{'figure':28s}" + "".join(f"{'run ' + str(i + 1):>11s}" for i in range(len(runs)))
    print(header + f"{'median':>11s}")
    print("-" * (len(header) + 11))
    for name in runs[0]:
        cells = "".join(f"{_number(run[name]):>11s}" for run in runs)
        print(f"{name:28s}{cells}{_number(statistics.median(r[name] for r in runs)):>11s}")


def _number(value: float) -> str:
    return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


if __name__ == "__main__":
    main()
