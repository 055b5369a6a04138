"""The reconciliation after a fault: what must hold however the platform was hurt.

For the invoices of a run: every paid invoice settled exactly once (one settlement not reversed,
completed); each settlement's gross = fee + net and equal to what the invoice confirmed, so
Σ gross = Σ fee + Σ net; every ledger transaction balanced (per currency); every domain event of
their aggregates in the event store once (one event per aggregate version, the expected ones per
invoice, payment and settlement); nothing on a dead-letter topic of the run's namespace.

A reorg after settlement (docs/reliability.md) reverses a round: ``reversals`` names the invoices
allowed reversed rounds and how many (``ONE_REVERSAL``: a transfer reorganised away for good, the
customer paid again; ``AT_MOST_ONE_REVERSAL``: a transfer the new branch holds again); every
other invoice has none. A reversed round holds a reversed settlement booked back by one
``settlement_reversal`` ledger transaction (the merchant, the fees and the customer funds back
where they were), one ``SettlementReversed``, the invoice's ``InvoicePaymentReverted`` naming the
round, and the next round's ``InvoicePaid``; every ``PaymentOrphaned`` has the invoice's
``InvoicePaymentReverted``. Sums are over the settlements not reversed.

Where a merchant's endpoint listened (``reconcile_webhooks``): every event of the run's invoices,
payments and settlements in the event store reached it at least once, signed with the endpoint's
secret (checked with examples/verify_webhook.py, the function merchants copy), with its event id in
the body and the ``Checkout-Event-Id`` header; per aggregate, the first arrivals in
``aggregate_version`` order; and no delivery is left pending or failed. Where customers followed
their invoices (tests/faults/customers.py, ``reconcile_customers``): each one's WebSocket ended at
the invoice's final status, ``paid``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NamedTuple

import psycopg2
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.faults.customers import Customer
from tests.support.webhook_receiver import ReceivedWebhook

# How many rounds of an invoice may be reversed (``reversals``).
NO_REVERSAL: Final = frozenset({0})
ONE_REVERSAL: Final = frozenset({1})  # its transfer reorganised away; the customer paid again
AT_MOST_ONE_REVERSAL: Final = frozenset({0, 1})  # its transfer moved to another block
Reversals = Mapping[str, Collection[int]]

# The ledger's accounts (migrations/0005_settlements_ledger.sql, app/adapters/postgres/ledger.py).
CUSTOMER_FUNDS = "customer_funds"
PLATFORM_FEES = "platform_fees"


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
    reversed: int = 0  # settlements reversed and booked back
    settled_again: int = 0  # invoices with a reversed round, settled once since

    def lines(self) -> list[str]:
        usdt = Decimal(1_000_000)
        reversals = (
            f"; settlements reversed {self.reversed}, invoices settled again {self.settled_again}"
            if self.reversed
            else ""
        )
        return [
            f"invoices {self.invoices}, paid {self.paid}, settled exactly once {self.settled_once}"
            + reversals,
            f"sum gross {Decimal(self.gross) / usdt} = sum fee {Decimal(self.fees) / usdt}"
            f" + sum net {Decimal(self.net) / usdt}: {self.gross == self.fees + self.net}",
            f"dead letters: {sum(self.dead_letters.values())} {dict(self.dead_letters)}",
            problems_line("problems", self.problems),
        ]


def problems_line(what: str, problems: list[str], shown: int = 10) -> str:
    """``what: [the first problems]`` (or none), and how many more there are."""
    more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
    return f"{what}: {problems[:shown] or 'none'}{more}"


def reconcile(
    invoice_ids: list[str],
    namespace: str,
    bootstrap: str,
    database_url: str,
    *,
    dead_letters: bool = True,
    reversals: Reversals | None = None,
) -> Reconciliation:
    """The books of ``invoice_ids`` in the platform's database (``database_url``), and with
    ``dead_letters`` the dead-letter topics of ``namespace``; ``reversals``: the invoices that
    may have reversed rounds, and how many (none for the others)."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        result = _books(cur, invoice_ids, reversals or {})
        result.problems += _events(cur, invoice_ids, reversals or {})
    if dead_letters:
        result.dead_letters = asyncio.run(_dead_letters(namespace, bootstrap))
    return result


def reconcile_when_settled(
    invoice_ids: list[str],
    namespace: str,
    bootstrap: str,
    database_url: str,
    *,
    dead_letters: bool = True,
    timeout: float = 30.0,
    reversals: Reversals | None = None,
) -> Reconciliation:
    """``reconcile`` once the read model and the settlements have caught up with what the
    invoices' owners answered (they follow a moment later): every invoice paid and settled once,
    nothing amiss; the last attempt after ``timeout`` s."""
    until = time.monotonic() + timeout
    while True:
        result = reconcile(
            invoice_ids,
            namespace,
            bootstrap,
            database_url,
            dead_letters=False,
            reversals=reversals,
        )
        settled = result.paid == result.settled_once == len(invoice_ids)
        if (settled and not result.problems) or time.monotonic() >= until:
            break
        time.sleep(1.0)
    if dead_letters:
        result.dead_letters = asyncio.run(_dead_letters(namespace, bootstrap))
    return result


class _Settlement(NamedTuple):
    settlement_id: str
    merchant_id: str
    status: str
    gross: int
    fee: int
    net: int


def _books(
    cur: psycopg2.extensions.cursor, invoice_ids: list[str], reversals: Reversals
) -> Reconciliation:
    cur.execute(
        "SELECT invoice_id, status, amount_confirmed FROM invoice_summaries"
        " WHERE invoice_id = ANY(%s)",
        (invoice_ids,),
    )
    invoices = {row[0]: (row[1], int(row[2])) for row in cur.fetchall()}
    cur.execute(
        "SELECT invoice_id, settlement_id, merchant_id, status, gross_amount,"
        " platform_fee_amount, net_amount FROM settlements WHERE invoice_id = ANY(%s)",
        (invoice_ids,),
    )
    settlements: dict[str, list[_Settlement]] = {}  # not reversed
    reversed_: dict[str, list[_Settlement]] = {}
    for invoice_id, *row in cur.fetchall():
        settlement = _Settlement(*row[:3], *(int(amount) for amount in row[3:]))
        rounds = reversed_ if settlement.status == "reversed" else settlements
        rounds.setdefault(invoice_id, []).append(settlement)
    problems = [
        f"{invoice_id}: not in the read model"
        for invoice_id in invoice_ids
        if invoice_id not in invoices
    ]
    paid = [invoice_id for invoice_id, (status, _) in invoices.items() if status == "paid"]
    problems += [
        f"{invoice_id}: {status} in the read model"
        for invoice_id, (status, _) in invoices.items()
        if status != "paid"
    ]
    once = 0
    gross_total = fee_total = net_total = 0
    for invoice_id in paid:
        allowed = reversals.get(invoice_id, NO_REVERSAL)
        if len(reversed_.get(invoice_id, [])) not in allowed:
            problems.append(
                f"{invoice_id}: {len(reversed_.get(invoice_id, []))} settlements reversed,"
                f" expected {sorted(allowed)}"
            )
        rows = settlements.get(invoice_id, [])
        if len(rows) != 1:
            problems.append(f"{invoice_id}: {len(rows)} settlements")
            continue
        status, gross, fee, net = rows[0][2:]
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
    problems += _bookings(cur, invoice_ids, settlements, reversed_)
    cur.execute(
        "SELECT tx_id, currency, sum(amount) FROM ledger_entries"
        " GROUP BY tx_id, currency HAVING sum(amount) <> 0 LIMIT 10"
    )
    problems += [f"ledger transaction {tx} unbalanced in {c}: {s}" for tx, c, s in cur.fetchall()]
    return Reconciliation(
        len(invoice_ids),
        len(paid),
        once,
        gross_total,
        fee_total,
        net_total,
        problems,
        reversed=sum(len(rows) for rows in reversed_.values()),
        settled_again=sum(
            1 for invoice_id in reversed_ if len(settlements.get(invoice_id, [])) == 1
        ),
    )


def _bookings(
    cur: psycopg2.extensions.cursor,
    invoice_ids: list[str],
    settlements: dict[str, list[_Settlement]],
    reversed_: dict[str, list[_Settlement]],
) -> list[str]:
    """Each settlement booked once in the ledger (customer funds −gross, merchant +net, fees
    +fee); a reversed one booked back once by a ``settlement_reversal``, and only a reversed one."""
    cur.execute(
        "SELECT t.reference, t.kind, e.account, sum(e.amount)"
        " FROM ledger_transactions t JOIN ledger_entries e USING (tx_id)"
        " WHERE t.kind IN ('settlement', 'settlement_reversal')"
        "   AND t.reference IN (SELECT settlement_id FROM settlements WHERE invoice_id = ANY(%s))"
        " GROUP BY t.reference, t.kind, e.account",
        (invoice_ids,),
    )
    booked: dict[tuple[str, str], dict[str, int]] = {}
    for settlement_id, kind, account, amount in cur.fetchall():
        booked.setdefault((settlement_id, kind), {})[account] = int(amount)
    problems = []
    for rows, reversed_round in ((settlements, False), (reversed_, True)):
        for settlement in (s for invoice_rows in rows.values() for s in invoice_rows):
            booking = {
                CUSTOMER_FUNDS: -settlement.gross,
                f"merchant:{settlement.merchant_id}": settlement.net,
                PLATFORM_FEES: settlement.fee,
            }
            found = booked.get((settlement.settlement_id, "settlement"))
            if found != booking:
                problems.append(f"settlement {settlement.settlement_id} booked as {found}")
            back = booked.get((settlement.settlement_id, "settlement_reversal"))
            expected = {a: -amount for a, amount in booking.items()} if reversed_round else None
            if back != expected:
                problems.append(
                    f"settlement {settlement.settlement_id} ({settlement.status}) booked back as"
                    f" {back}"
                )
    return problems


class _Event(NamedTuple):
    aggregate_id: str
    event_type: str
    version: int
    data: dict[str, Any]


def _events(
    cur: psycopg2.extensions.cursor, invoice_ids: list[str], reversals: Reversals
) -> list[str]:
    """Each aggregate's versions once; per invoice one InvoiceCreated, per settlement one
    SettlementCreated and one SettlementCompleted; the rounds (``_rounds``); every
    PaymentOrphaned reverted on its invoice."""
    cur.execute(
        "SELECT aggregate_id, event_type, aggregate_version, payload -> 'data' FROM event_store"
        " WHERE aggregate_id = ANY(%s)"
        "    OR (aggregate_type IN ('settlement', 'payment')"
        "        AND payload -> 'data' ->> 'invoice_id' = ANY(%s))",
        (invoice_ids, invoice_ids),
    )
    events = [_Event(a, t, int(v), dict(d or {})) for a, t, v, d in cur.fetchall()]
    versions = Counter((event.aggregate_id, event.version) for event in events)
    problems = [f"{a} v{v} recorded {n} times" for (a, v), n in versions.items() if n > 1]
    kinds = Counter((event.aggregate_id, event.event_type) for event in events)
    problems += [
        f"{invoice_id}: {kinds[(invoice_id, 'InvoiceCreated')]} InvoiceCreated"
        for invoice_id in invoice_ids
        if kinds[(invoice_id, "InvoiceCreated")] != 1
    ]
    for (aggregate, event_type), count in kinds.items():
        once = event_type in ("SettlementCreated", "SettlementCompleted")
        if (once and count != 1) or (event_type == "SettlementReversed" and count > 1):
            problems.append(f"{aggregate}: {count} {event_type}")
    problems += _rounds(events, invoice_ids, reversals)
    orphaned = Counter(
        (str(e.data["invoice_id"]), e.aggregate_id)
        for e in events
        if e.event_type == "PaymentOrphaned"
    )
    reverted = Counter(
        (e.aggregate_id, str(e.data["payment_id"]))
        for e in events
        if e.event_type == "InvoicePaymentReverted" and e.data.get("reason") == "orphaned"
    )
    problems += [
        f"{invoice_id}: payment {payment_id} orphaned {count} times, its invoice reverted it"
        f" {reverted[(invoice_id, payment_id)]} times"
        for (invoice_id, payment_id), count in (orphaned | reverted).items()
        if orphaned[(invoice_id, payment_id)] != reverted[(invoice_id, payment_id)]
    ]
    return problems


def _rounds(events: list[_Event], invoice_ids: list[str], reversals: Reversals) -> list[str]:
    """Per invoice, its rounds reversed (as many as ``reversals`` allow, none by default): 1, 2,
    … each by one InvoicePaymentReverted naming it and one SettlementReversed; one InvoicePaid
    per round, 1, 2, …, at most one more than were reversed."""
    reversed_rounds: dict[str, list[int]] = {}
    paid_rounds: dict[str, list[int]] = {}
    settlements_reversed: Counter[str] = Counter()
    for event in events:
        if event.event_type == "InvoicePaymentReverted" and event.data.get("reversed_round"):
            reversed_rounds.setdefault(event.aggregate_id, []).append(
                int(event.data["reversed_round"])
            )
        elif event.event_type == "InvoicePaid":
            paid_rounds.setdefault(event.aggregate_id, []).append(
                int(event.data.get("settlement_round") or 1)
            )
        elif event.event_type == "SettlementReversed":
            settlements_reversed[str(event.data["invoice_id"])] += 1
    problems = []
    for invoice_id in invoice_ids:
        rounds = sorted(reversed_rounds.get(invoice_id, []))
        allowed = reversals.get(invoice_id, NO_REVERSAL)
        if len(rounds) not in allowed or rounds != list(range(1, len(rounds) + 1)):
            problems.append(f"{invoice_id}: rounds {rounds} reversed, expected {sorted(allowed)}")
        if settlements_reversed[invoice_id] != len(rounds):
            problems.append(
                f"{invoice_id}: {settlements_reversed[invoice_id]} SettlementReversed for"
                f" {len(rounds)} rounds reversed"
            )
        paid = sorted(paid_rounds.get(invoice_id, []))
        if paid != list(range(1, len(paid) + 1)) or len(paid) > len(rounds) + 1:
            problems.append(f"{invoice_id}: InvoicePaid of rounds {paid}, {len(rounds)} reversed")
    return problems


async def _dead_letters(namespace: str, bootstrap: str) -> Counter[str]:
    """Records on every dead-letter topic of the namespace, by topic: each partition read to its
    end (one fetch may bring only some of them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(namespace) and ".dlq" in t]
        described = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    found: Counter[str] = Counter()
    partitions = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]
    if not partitions:
        return found
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        left = {tp: end for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            for partition, records in batches.items():
                found[partition.topic] += len(records)
            for tp in list(left):
                if await consumer.position(tp) >= left[tp]:
                    del left[tp]
        if left:  # not read to the end in time: say so rather than undercount
            found["(not read to the end)"] = len(left)
    finally:
        await consumer.stop()
    return found


# --- webhooks ------------------------------------------------------------------------------------

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "verify_webhook.py"
_spec = importlib.util.spec_from_file_location("verify_webhook_example", _EXAMPLE)
assert _spec is not None and _spec.loader is not None
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)
verify_webhook = _example.verify_webhook


@dataclass
class WebhookReconciliation:
    events: int  # events of the run's invoices, payments and settlements in the event store
    delivered: int  # of them, received signed with their event id at least once
    requests: int  # requests the receiver answered (redeliveries included)
    attempts: int  # attempts the platform made (failed ones included)
    last_arrival: float  # wall clock: the last of the events' first arrivals (0: none)
    problems: list[str] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)  # of the delivered, by event type

    def lines(self) -> list[str]:
        return [
            f"webhooks: {self.events} events, {self.delivered} delivered at least once with their"
            f" event id, signed, in order per aggregate; {self.requests} requests received"
            f" ({self.requests - self.delivered} repeated), {self.attempts} attempts made",
            f"webhooks delivered by type: {dict(sorted(self.by_type.items()))}",
            problems_line("webhook problems", self.problems),
        ]


def reconcile_webhooks(
    database_url: str,
    merchant_id: str,
    endpoint_id: str,
    secret: str,
    invoice_ids: list[str],
    received: list[ReceivedWebhook],
) -> WebhookReconciliation:
    """Every event of ``invoice_ids`` (their own, their payments', their settlements') reached
    the endpoint whose requests are ``received`` (in arrival order), as docs/webhooks.md says."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_id::text, aggregate_id, aggregate_version, event_type FROM event_store"
            " WHERE merchant_id = %s AND (aggregate_id = ANY(%s)"
            "   OR payload -> 'data' ->> 'invoice_id' = ANY(%s))",
            (merchant_id, invoice_ids, invoice_ids),
        )
        rows = cur.fetchall()
        events = {event_id: (aggregate, int(version)) for event_id, aggregate, version, _ in rows}
        types = {event_id: event_type for event_id, *_, event_type in rows}
        cur.execute(
            "SELECT status, count(*), sum(attempts) FROM webhook_deliveries"
            " WHERE endpoint_id = %s GROUP BY status",
            (endpoint_id,),
        )
        statuses = {status: (int(count), int(attempts)) for status, count, attempts in cur}
    problems = [
        f"{count} deliveries {status}"
        for status, (count, _) in statuses.items()
        if status != "succeeded"
    ]
    first_arrival: dict[str, int] = {}
    for position, webhook in enumerate(received):
        body = _verified(webhook, secret, problems)
        if body is None:
            continue
        if webhook.headers.get("Checkout-Event-Id") != body["id"]:
            problems.append(
                f"{body['id']}: Checkout-Event-Id {webhook.headers.get('Checkout-Event-Id')}"
            )
        first_arrival.setdefault(str(body["id"]), position)
    missing = [event_id for event_id in events if event_id not in first_arrival]
    problems += [f"event {events[e][0]} v{events[e][1]} ({e}) never delivered" for e in missing]
    by_aggregate: dict[str, list[tuple[int, int]]] = {}
    for event_id, (aggregate, version) in events.items():
        if event_id in first_arrival:
            by_aggregate.setdefault(aggregate, []).append((first_arrival[event_id], version))
    for aggregate, arrivals in by_aggregate.items():
        versions = [version for _, version in sorted(arrivals)]
        if versions != sorted(versions):
            problems.append(f"{aggregate}: versions arrived in the order {versions}")
    return WebhookReconciliation(
        events=len(events),
        delivered=len(events) - len(missing),
        requests=len(received),
        attempts=sum(attempts for _, attempts in statuses.values()),
        last_arrival=max(
            (received[first_arrival[e]].received_at for e in events if e in first_arrival),
            default=0.0,
        ),
        problems=problems,
        by_type=Counter(types[e] for e in events if e in first_arrival),
    )


def reconcile_webhooks_when_delivered(
    database_url: str,
    merchant_id: str,
    endpoint_id: str,
    secret: str,
    invoice_ids: list[str],
    received: Callable[[], list[ReceivedWebhook]],
    timeout: float,
) -> WebhookReconciliation:
    """``reconcile_webhooks`` once it holds (deliveries follow the events a moment later, or
    after their retries), or the last attempt after ``timeout`` s; ``received()`` gives the
    requests the endpoint received so far."""
    until = time.monotonic() + timeout
    while True:
        result = reconcile_webhooks(
            database_url, merchant_id, endpoint_id, secret, invoice_ids, received()
        )
        if not result.problems or time.monotonic() >= until:
            return result
        time.sleep(1.0)


def _verified(webhook: ReceivedWebhook, secret: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = verify_webhook(
            webhook.body,
            webhook.headers.get("Checkout-Signature", ""),
            secret,
            now=int(webhook.received_at),
        )
    except ValueError as exc:
        problems.append(f"a request to {webhook.path} refused: {exc}")
        return None
    return body


# --- customers -----------------------------------------------------------------------------------


@dataclass
class CustomerReconciliation:
    customers: int
    ended_paid: int
    connections: int
    refusals: Counter[str]
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"customers: {self.customers} WebSockets followed, {self.ended_paid} ended at paid;"
            f" {self.connections} connections ({self.connections - self.customers} reconnections),"
            f" refused or dropped: {dict(self.refusals) or 'none'}",
            problems_line("customer problems", self.problems),
        ]


def reconcile_customers(
    customers: list[Customer], invoice_ids: list[str]
) -> CustomerReconciliation:
    """Every invoice's customer ended, over the WebSocket, at ``paid``."""
    followed = {customer.invoice_id: customer for customer in customers}
    problems = [f"{i}: no customer followed it" for i in invoice_ids if i not in followed]
    for customer in customers:
        if customer.final != "paid":
            problems.append(
                f"{customer.invoice_id}: ended at {customer.final} after {customer.statuses}"
                f" ({customer.connections} connections; {customer.refusals[-3:]})"
            )
    refusals: Counter[str] = Counter()
    for customer in customers:
        refusals.update(customer.refusals)
    return CustomerReconciliation(
        customers=len(customers),
        ended_paid=sum(1 for customer in customers if customer.final == "paid"),
        connections=sum(customer.connections for customer in customers),
        refusals=refusals,
        problems=problems,
    )
