"""The reconciliation after a fault: what must hold however the platform was hurt.

For the invoices of a run: every paid invoice settled exactly once (one settlement not reversed,
completed); each settlement's gross = fee + net and equal to what the invoice confirmed, so
Σ gross = Σ fee + Σ net; every ledger transaction balanced (per currency); every domain event of
their aggregates in the event store once (one event per aggregate version, the expected ones per
invoice and settlement); nothing on a dead-letter topic of the run's namespace. Webhooks and the
customers' WebSockets are not reconciled yet (docs/reliability.md, "Not done yet").
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg2
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from app.settings import Settings


@dataclass
class Reconciliation:
    invoices: int
    paid: int
    settled_once: int
    gross: int
    fees: int
    net: int
    problems: list[str] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        usdt = Decimal(1_000_000)
        return [
            f"invoices {self.invoices}, paid {self.paid}, settled exactly once {self.settled_once}",
            f"sum gross {Decimal(self.gross) / usdt} = sum fee {Decimal(self.fees) / usdt}"
            f" + sum net {Decimal(self.net) / usdt}: {self.gross == self.fees + self.net}",
            f"dead letters: {sum(self.dead_letters.values())} {dict(self.dead_letters)}",
            f"problems: {self.problems or 'none'}",
        ]


def reconcile(invoice_ids: list[str], namespace: str, bootstrap: str) -> Reconciliation:
    with psycopg2.connect(Settings.from_env().database_url) as conn, conn.cursor() as cur:
        result = _books(cur, invoice_ids)
        result.problems += _events(cur, invoice_ids)
    result.dead_letters = asyncio.run(_dead_letters(namespace, bootstrap))
    return result


def _books(cur: psycopg2.extensions.cursor, invoice_ids: list[str]) -> Reconciliation:
    cur.execute(
        "SELECT invoice_id, status, amount_confirmed FROM invoice_summaries"
        " WHERE invoice_id = ANY(%s)",
        (invoice_ids,),
    )
    invoices = {row[0]: (row[1], int(row[2])) for row in cur.fetchall()}
    cur.execute(
        "SELECT invoice_id, status, gross_amount, platform_fee_amount, net_amount"
        " FROM settlements WHERE invoice_id = ANY(%s) AND status <> 'reversed'",
        (invoice_ids,),
    )
    settlements: dict[str, list[tuple[str, int, int, int]]] = {}
    for invoice_id, status, gross, fee, net in cur.fetchall():
        settlements.setdefault(invoice_id, []).append((status, int(gross), int(fee), int(net)))
    problems = [
        f"{invoice_id}: not in the read model"
        for invoice_id in invoice_ids
        if invoice_id not in invoices
    ]
    paid = [invoice_id for invoice_id, (status, _) in invoices.items() if status == "paid"]
    once = 0
    gross_total = fee_total = net_total = 0
    for invoice_id in paid:
        rows = settlements.get(invoice_id, [])
        if len(rows) != 1:
            problems.append(f"{invoice_id}: {len(rows)} settlements")
            continue
        status, gross, fee, net = rows[0]
        if status != "completed" or gross != fee + net or gross != invoices[invoice_id][1]:
            problems.append(f"{invoice_id}: settlement {status} {gross} = {fee} + {net}?")
            continue
        once += 1
        gross_total, fee_total, net_total = gross_total + gross, fee_total + fee, net_total + net
    problems += [
        f"{invoice_id}: settled but {invoices.get(invoice_id, ('unknown',))[0]}"
        for invoice_id in settlements
        if invoice_id not in paid
    ]
    cur.execute(
        "SELECT tx_id, currency, sum(amount) FROM ledger_entries"
        " GROUP BY tx_id, currency HAVING sum(amount) <> 0 LIMIT 10"
    )
    problems += [f"ledger transaction {tx} unbalanced in {c}: {s}" for tx, c, s in cur.fetchall()]
    return Reconciliation(
        len(invoice_ids), len(paid), once, gross_total, fee_total, net_total, problems
    )


def _events(cur: psycopg2.extensions.cursor, invoice_ids: list[str]) -> list[str]:
    """Each aggregate's versions once, and per invoice one InvoiceCreated and one InvoicePaid,
    per settlement one SettlementCreated and one SettlementCompleted."""
    cur.execute(
        "SELECT aggregate_id, event_type, aggregate_version FROM event_store"
        " WHERE aggregate_id = ANY(%s)"
        "    OR (aggregate_type = 'settlement' AND payload -> 'data' ->> 'invoice_id' = ANY(%s))",
        (invoice_ids, invoice_ids),
    )
    rows = cur.fetchall()
    problems = []
    versions = Counter((aggregate, version) for aggregate, _, version in rows)
    problems += [f"{a} v{v} recorded {n} times" for (a, v), n in versions.items() if n > 1]
    kinds = Counter((aggregate, event_type) for aggregate, event_type, _ in rows)
    for invoice_id in invoice_ids:
        if kinds[(invoice_id, "InvoiceCreated")] != 1:
            problems.append(f"{invoice_id}: {kinds[(invoice_id, 'InvoiceCreated')]} InvoiceCreated")
        if kinds[(invoice_id, "InvoicePaid")] > 1:
            problems.append(f"{invoice_id}: {kinds[(invoice_id, 'InvoicePaid')]} InvoicePaid")
    for (aggregate, event_type), count in kinds.items():
        if event_type in ("SettlementCreated", "SettlementCompleted") and count != 1:
            problems.append(f"{aggregate}: {count} {event_type}")
    return problems


async def _dead_letters(namespace: str, bootstrap: str) -> Counter[str]:
    """Records on every dead-letter topic of the namespace, by topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(namespace) and ".dlq" in t]
    finally:
        await admin.close()
    found: Counter[str] = Counter()
    if not topics:
        return found
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000, max_records=100_000)
        for partition, records in batches.items():
            found[partition.topic] += len(records)
    finally:
        await consumer.stop()
    return found
