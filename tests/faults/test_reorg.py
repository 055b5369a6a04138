"""A reorg of depth 18 at the tip under a steady load (docs/reliability.md, "A reorg after
settlement", "The fault suite"): some transfers of the replaced blocks move, others are dropped.

The load pays each invoice with its exact amount, under 100 USDT, so one confirmation pays it:
the 18 replaced blocks carry about a hundred payments already paid and settled. Holding the load
(no transfer sent, no block mined meanwhile), the simulator replaces its whole unsolidified chain
with a new branch (``/sim/reorg``): a few settled transfers are dropped from it for good, every
other one is included again — in the block at its height, two blocks later, or, past the branch's
end, back in the pool and in the next block mined. The chain watcher orphans every transfer it
had read from the replaced blocks and reads the new branch.

A moved transfer's invoice may be reopened for a moment (its settlement reversed) and is paid
again; a dropped one's must be: the payment orphaned, the invoice reopened, its settlement
reversed (``SettlementReversed``, a webhook, a ``settlement_reversal`` in the ledger). Its customer
reloads the payment page until it no longer says paid, then pays again; the invoice is paid and
settled again, once. Then the books are reconciled with those reversed rounds
(tests/faults/reconcile.py ``reversals``), the webhooks (each aggregate's events in order) and the
customers' WebSockets (each at ``paid``; the customers who paid again saw the invoice reopened
first). Durations are printed, never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg2
import pytest

from tests.faults.conftest import KafkaCluster, Stores, fault_platform_env
from tests.faults.customers import Customers, websocket_customers
from tests.faults.load import Order, SteadyLoad
from tests.faults.reconcile import (
    AT_MOST_ONE_REVERSAL,
    ONE_REVERSAL,
    reconcile_customers,
    reconcile_webhooks_when_delivered,
    reconcile_when_settled,
)
from tests.faults.scenario import (
    ALL_PAID_WITHIN,
    assert_books,
    database_url,
    register_webhook_endpoint,
)
from tests.support.platform import Platform, running_platform
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("infrastructure")]

RATE = 2.0  # invoices a second
DEPTH = 18  # blocks replaced: the simulator's whole unsolidified chain
DROPPED = 6  # settled transfers the new branch drops; their customers pay again
# Where the other transfers of the replaced blocks go, in turn: the new block at their height,
# two blocks later (past the branch's end for the last two blocks), back to the pool (the first
# block mined after the reorg).
MOVES = (0, 2, DEPTH)
AFTER = 15.0  # seconds of load after the reorg
FOLLOWED_WITHIN = 120.0  # seconds for the platform to read the new branch (or reopen an invoice)
WEBHOOKS_WITHIN = 60.0
CUSTOMERS_WITHIN = 60.0


@dataclass
class Shop:
    platform: Platform
    receiver: WebhookReceiver
    customers: Customers
    endpoint: dict[str, Any]


@pytest.fixture(scope="module")
def shop(
    kafka_cluster: KafkaCluster, stores: Stores, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    with ExitStack() as stack:
        receiver = stack.enter_context(webhook_receiver())
        platform = stack.enter_context(
            running_platform(
                tmp_path_factory.mktemp("reorg"),
                workers=2,
                WEBHOOK_ALLOW_LOOPBACK="true",
                **fault_platform_env(kafka_cluster, stores),
            )
        )
        endpoint = register_webhook_endpoint(platform, receiver.url("/reorg"))
        customers = stack.enter_context(websocket_customers())
        yield Shop(platform, receiver, customers, endpoint)


@dataclass(frozen=True)
class Reorg:
    """What the simulator did at the tip, and when."""

    head: int
    at: float  # monotonic
    at_clock: float  # wall clock, as PostgreSQL's (the event store's recorded_at)
    old_blocks: frozenset[str]  # the ids of the replaced blocks
    moved: dict[str, Order]  # by transfer id: included again (in the branch, or the next block)
    dropped: dict[str, Order]  # by transfer id: gone for good; the customer pays again
    later: int  # of the moved, those put in a later block of the branch
    to_pool: int  # of the moved, those put back in the pool (past the branch's end)

    @property
    def transfers(self) -> int:
        return len(self.moved) + len(self.dropped)

    def since(self, clock: float | None) -> str:
        return "-" if clock is None else f"{clock - self.at_clock:.1f} s"


def test_a_reorg_of_depth_18_moving_some_transfers_and_dropping_others_settles_each_once(
    shop: Shop, kafka_cluster: KafkaCluster
) -> None:
    platform, customers = shop.platform, shop.customers
    urls = platform.worker_urls
    database = database_url(platform)

    def customer_opens_the_page(invoice_id: str, creator: int) -> None:
        customers.watch(invoice_id, urls[(creator + 1) % len(urls)])  # any worker serves it

    load = SteadyLoad(platform, rate=RATE, on_created=customer_opens_the_page)
    load.start()
    try:
        # Every replaced block carries the load's payments, most of them paid and settled.
        while load.blocks_mined <= DEPTH:
            time.sleep(0.5)
        reorg = reorganise(platform, load, database)
        paid_again = customers_pay_again(shop, load, reorg)
        time.sleep(max(0.0, reorg.at + AFTER - time.monotonic()))
        load.stop_creating()
        unpaid = load.wait_all_paid(timeout=ALL_PAID_WITHIN)
        not_followed = wait_followed(database, reorg)  # blocks still come meanwhile
    finally:
        load.stop()
    assert unpaid == [], f"never paid: {[order.invoice_id for order in unpaid]}"
    assert not_followed == [], f"the platform did not follow the reorg for {not_followed}"

    invoice_ids = [order.invoice_id for order in load.orders]
    reversals = {o.invoice_id: AT_MOST_ONE_REVERSAL for o in reorg.moved.values()} | {
        o.invoice_id: ONE_REVERSAL for o in reorg.dropped.values()
    }
    books = reconcile_when_settled(
        invoice_ids,
        platform.namespace,
        kafka_cluster.bootstrap,
        database,
        timeout=60.0,
        reversals=reversals,
    )
    webhooks = reconcile_webhooks_when_delivered(
        database,
        platform.merchant_id,
        shop.endpoint["id"],
        shop.endpoint["secret"],
        invoice_ids,
        shop.receiver.requests,
        timeout=WEBHOOKS_WITHIN,
    )
    stragglers = customers.wait_all_ended(CUSTOMERS_WITHIN)
    seen = reconcile_customers(customers.results(), invoice_ids)
    timeline = Timeline.read(database, reorg)
    dropped_ids = {order.invoice_id for order in reorg.dropped.values()}
    saw_it_reopened = [  # the page's first view after the reload: not paid
        customer
        for customer in customers.results()
        if customer.invoice_id in dropped_ids and customer.statuses[:1] not in ([], ["paid"])
    ]

    print(
        f"\nreorg of depth {DEPTH} at block {reorg.head}: blocks {reorg.head - DEPTH + 1}.."
        f"{reorg.head} replaced, carrying {reorg.transfers} of the load's transfers:"
        f" {len(reorg.moved)} moved ({len(reorg.moved) - reorg.later - reorg.to_pool} to the new"
        f" block at their height, {reorg.later} later in the branch, {reorg.to_pool} back to the"
        f" pool), {len(reorg.dropped)} dropped",
        f"\nmoved: {timeline.moved_reopened} invoices reopened (settlement reversed, paid"
        f" again), {len(reorg.moved) - timeline.moved_reopened} not (never read before the"
        f" reorg); every moved payment paid {reorg.since(timeline.moved_paid)} after the reorg",
        f"\ndropped: every invoice reopened {reorg.since(timeline.dropped_reopened)} after the"
        f" reorg, its settlement reversed {reorg.since(timeline.dropped_reversed)} after it;"
        f" the customers paid again {max(paid_again.values()) - reorg.at:.1f} s after it; every"
        f" one paid again {reorg.since(timeline.dropped_paid)} after the reorg (at most"
        f" {timeline.repaid_after_mined(reorg):.1f} s after its new transfer was mined)",
        f"\nreorg: moved {len(reorg.moved)}, dropped {len(reorg.dropped)}, settlements reversed"
        f" {books.reversed}, invoices settled again {books.settled_again}",
        *(f"\nreconciliation: {line}" for line in books.lines()),
        *(f"\nreconciliation: {line}" for line in webhooks.lines()),
        *(f"\nreconciliation: {line}" for line in seen.lines()),
        f"\nload: {len(load.orders)} invoices paid, {len(load.errors)} create requests refused",
    )
    assert_books(books, len(load.orders))
    assert books.reversed == books.settled_again >= len(reorg.dropped)
    assert webhooks.problems == []
    assert webhooks.delivered == webhooks.events > 0
    assert webhooks.by_type["SettlementReversed"] == books.reversed
    assert stragglers == [] and seen.problems == []
    assert seen.ended_paid == len(load.orders)
    assert len(saw_it_reopened) == len(dropped_ids), "a customer paying again saw it paid"


def reorganise(platform: Platform, load: SteadyLoad, database: str) -> Reorg:
    """The reorg at the tip, the load held: ``DROPPED`` settled transfers of the replaced blocks
    dropped (spread over them), the others moved as ``MOVES`` says."""
    with load.chain_held():
        head = int(platform.sim.status()["head"]["number"])
        first = head - DEPTH + 1
        replaced = [o for o in load.orders if o.block is not None and o.block >= first]
        settled = settled_invoices(database, [order.invoice_id for order in replaced])
        candidates = [order for order in replaced if order.invoice_id in settled]
        assert len(candidates) >= DROPPED, f"only {len(candidates)} settled in the last blocks"
        step = len(candidates) / DROPPED
        dropped = {o.txid: o for o in (candidates[int(i * step)] for i in range(DROPPED))}
        moved = {order.txid: order for order in replaced if order.txid not in dropped}
        delays = {txid: MOVES[i % len(MOVES)] for i, txid in enumerate(moved)}
        answer = platform.sim.post(
            "/sim/reorg",
            {
                "depth": DEPTH,
                "drop": list(dropped),
                "delay": {txid: blocks for txid, blocks in delays.items() if blocks},
            },
        )
        at, at_clock = time.monotonic(), time.time()
    assert answer["lost"] == [], answer  # every transfer not dropped is on the chain or pending
    assert sorted(answer["dropped"]) == sorted(dropped)
    assert answer["head"] == head and len(answer["old_blocks"]) == DEPTH
    to_pool = set(answer["returned_to_pool"])
    later = [txid for txid in moved if delays[txid] and txid not in to_pool]
    return Reorg(
        head=head,
        at=at,
        at_clock=at_clock,
        old_blocks=frozenset(answer["old_blocks"]),
        moved=moved,
        dropped=dropped,
        later=len(later),
        to_pool=len(to_pool),
    )


def settled_invoices(database: str, invoice_ids: list[str]) -> set[str]:
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT invoice_id FROM settlements"
            " WHERE invoice_id = ANY(%s) AND status = 'completed'",
            (invoice_ids,),
        )
        return {row[0] for row in cur.fetchall()}


def customers_pay_again(shop: Shop, load: SteadyLoad, reorg: Reorg) -> dict[str, float]:
    """Each dropped invoice's customer reloads the payment page until it no longer says paid,
    then follows it and pays the amount again: when each paid again (monotonic)."""
    urls = shop.platform.worker_urls
    waiting = list(reorg.dropped.values())
    paid_again: dict[str, float] = {}
    until = time.monotonic() + FOLLOWED_WITHIN
    while waiting and time.monotonic() < until:
        for order in list(waiting):
            url = urls[len(paid_again) % len(urls)]
            if public_status(url, order.invoice_id) not in (None, "paid"):
                shop.customers.watch(order.invoice_id, url)
                load.pay_again(order)
                paid_again[order.invoice_id] = time.monotonic()
                waiting.remove(order)
        time.sleep(0.5)
    assert waiting == [], f"never reopened: {[order.invoice_id for order in waiting]}"
    return paid_again


def public_status(url: str, invoice_id: str) -> str | None:
    """What the payment page says (the customer's view, without fees)."""
    try:
        answer = httpx.get(f"{url}/api/v1/public/invoice/{invoice_id}", timeout=5)
    except httpx.HTTPError:
        return None
    return str(answer.json()["status"]) if answer.status_code == 200 else None


def wait_followed(database: str, reorg: Reorg) -> list[str]:
    """Until the platform has read the new branch: each moved transfer's payment detected last
    in a block that is not a replaced one, each dropped one's orphaned last; the transfers still
    awaited after ``FOLLOWED_WITHIN`` s. (The books' reconciliation then waits for what follows:
    reversals, rounds paid again, settlements.)"""
    until = time.monotonic() + FOLLOWED_WITHIN
    while True:
        with psycopg2.connect(database) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT ON (aggregate_id) split_part(aggregate_id, ':', 1), event_type,"
                "    payload -> 'data' ->> 'block_id'"
                " FROM event_store WHERE aggregate_type = 'payment'"
                "   AND split_part(aggregate_id, ':', 1) = ANY(%s)"
                "   AND event_type IN ('PaymentDetected', 'PaymentOrphaned')"
                " ORDER BY aggregate_id, aggregate_version DESC",
                ([*reorg.moved, *reorg.dropped],),
            )
            last = {txid: (event_type, block) for txid, event_type, block in cur.fetchall()}
        awaited = [
            txid
            for txid in reorg.moved
            if txid not in last
            or last[txid][0] != "PaymentDetected"
            or last[txid][1] in reorg.old_blocks
        ]
        awaited += [t for t in reorg.dropped if last.get(t, ("", ""))[0] != "PaymentOrphaned"]
        if not awaited or time.monotonic() >= until:
            return awaited
        time.sleep(1.0)


@dataclass(frozen=True)
class Timeline:
    """When the platform recorded (the event store's ``recorded_at``, wall clock) the last of
    each step after the reorg. Not ``occurred_at``: a payment is paid at its block's time, and a
    moved transfer's new block may have the replaced one's."""

    moved_reopened: int  # moved invoices reopened
    moved_paid: float | None  # the last moved invoice paid (None: all stayed paid)
    dropped_reopened: float | None
    dropped_reversed: float | None  # the last of their settlements reversed
    dropped_paid: float | None  # the last of them paid again
    dropped_paid_each: dict[str, float]  # invoice → paid again

    @classmethod
    def read(cls, database: str, reorg: Reorg) -> Timeline:
        moved = [order.invoice_id for order in reorg.moved.values()]
        dropped = [order.invoice_id for order in reorg.dropped.values()]
        with psycopg2.connect(database) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT coalesce(payload -> 'data' ->> 'invoice_id', aggregate_id), event_type,"
                "    extract(epoch FROM max(recorded_at))::float8"
                " FROM event_store"
                " WHERE recorded_at > to_timestamp(%s)"
                "   AND event_type IN"
                "       ('InvoicePaymentReverted', 'InvoicePaid', 'SettlementReversed')"
                "   AND (aggregate_id = ANY(%s) OR payload -> 'data' ->> 'invoice_id' = ANY(%s))"
                " GROUP BY 1, 2",
                (reorg.at_clock, moved + dropped, moved + dropped),
            )
            last = {(invoice, event_type): at for invoice, event_type, at in cur.fetchall()}

        def latest(invoice_ids: list[str], event_type: str) -> float | None:
            times = [last[(i, event_type)] for i in invoice_ids if (i, event_type) in last]
            return max(times, default=None)

        return cls(
            moved_reopened=sum(1 for i in moved if (i, "InvoicePaymentReverted") in last),
            moved_paid=latest(moved, "InvoicePaid"),
            dropped_reopened=latest(dropped, "InvoicePaymentReverted"),
            dropped_reversed=latest(dropped, "SettlementReversed"),
            dropped_paid=latest(dropped, "InvoicePaid"),
            dropped_paid_each={
                i: last[(i, "InvoicePaid")] for i in dropped if (i, "InvoicePaid") in last
            },
        )

    def repaid_after_mined(self, reorg: Reorg) -> float:
        """The longest a dropped invoice took to be paid after its new transfer was mined."""
        return max(
            (
                self.dropped_paid_each[order.invoice_id]
                - (reorg.at_clock + order.mined_at - reorg.at)
                for order in reorg.dropped.values()
                if order.mined_at is not None and order.invoice_id in self.dropped_paid_each
            ),
            default=float("nan"),
        )
