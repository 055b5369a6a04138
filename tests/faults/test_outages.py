"""Outages under a steady load (docs/reliability.md, "The fault suite"): PostgreSQL stopped for
30 s, Redis stopped for 30 s, the Tron node unreachable for 60 s, one after the other, while the
merchant's webhook receiver is down for 5 minutes; then the books, the webhooks and the customers'
WebSockets reconciled.

The receiver's outage overlaps the three others on purpose: five minutes on their own would cost
the suite five more minutes of ``make test``. Overlapping them also makes the webhook queue grow
while PostgreSQL, which holds it, goes away and comes back. The receiver goes down as the load
starts and comes back 5 minutes later, once the three outages are over. Deliveries are retried on
a shortened schedule (``WEBHOOK_RETRY_SCHEDULE``, 1 s to 20 s between attempts: 6 min 38 s in all,
at least 5 min 18 s with the ±20 % jitter, longer than the outage), so they resume within about
24 s of the receiver's return instead of the production schedule's 30 minutes to an hour.

The node is made unreachable, not slow: a forwarder between the workers and the simulator
(tests/support/tcp_proxy.py) is frozen with SIGSTOP, so their requests hang unanswered, while the
chain goes on (the load pays and mines on the simulator directly). PostgreSQL and Redis are
really stopped (scripts/infra.sh down: ``pg_ctl stop -m fast``; SIGTERM for Redis, which keeps its
append-only file) and started again; they are the suite's own (tests/faults/conftest.py), so
nothing else running on the machine is hurt. Invoices are created throughout, Redis down
included (the answer the invoice agent cannot send over Redis is read from the invoice's owner:
docs/reliability.md, "Outages under load"); a customer whose page cannot open its WebSocket while
Redis is away reconnects, as the page does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tests.faults.conftest import KafkaCluster, Stores, fault_platform_env
from tests.faults.customers import Customers, websocket_customers
from tests.faults.load import SteadyLoad
from tests.faults.reconcile import (
    reconcile_customers,
    reconcile_webhooks_when_delivered,
    reconcile_when_settled,
)
from tests.faults.scenario import (
    ALL_PAID_WITHIN,
    assert_books,
    database_url,
    outage,
    register_webhook_endpoint,
)
from tests.support.platform import Platform, Simulator, running_platform
from tests.support.tcp_proxy import TcpProxy, tcp_proxy
from tests.support.webhook_receiver import WebhookReceiver, webhook_receiver

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("infrastructure")]

RATE = 2.0  # invoices a second
WARMUP = 6.0  # seconds of load (the receiver already down) before the first outage
BETWEEN = 4.0  # seconds of calm after an outage recovered, before the next one
RECEIVER_DOWN = 300.0
POSTGRES_DOWN = 30.0
REDIS_DOWN = 30.0
NODE_DOWN = 60.0
# Before attempt 2, 3, …: 6 min 38 s in all (5 min 18 s at the shortest jitter), past the outage.
RETRY_SCHEDULE = ",".join(["1s", "2s", "5s", "10s", *["20s"] * 19])
WEBHOOKS_WITHIN = 120.0  # seconds after every invoice was seen paid
CUSTOMERS_WITHIN = 60.0  # seconds after every invoice was seen paid


@dataclass
class Shop:
    platform: Platform
    node: TcpProxy
    receiver: WebhookReceiver
    customers: Customers
    endpoint: dict[str, Any]


@pytest.fixture(scope="module")
def shop(
    kafka_cluster: KafkaCluster, stores: Stores, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    with ExitStack() as stack:
        receiver = stack.enter_context(webhook_receiver())
        proxies: list[TcpProxy] = []

        def through_a_proxy(sim: Simulator) -> str:
            proxies.append(stack.enter_context(tcp_proxy(sim.url)))
            return proxies[-1].url

        platform = stack.enter_context(
            running_platform(
                tmp_path_factory.mktemp("outages"),
                workers=2,
                node_url=through_a_proxy,
                WEBHOOK_ALLOW_LOOPBACK="true",
                WEBHOOK_RETRY_SCHEDULE=RETRY_SCHEDULE,
                **fault_platform_env(kafka_cluster, stores),
            )
        )
        endpoint = register_webhook_endpoint(platform, receiver.url("/outages"))
        customers = stack.enter_context(websocket_customers())
        yield Shop(platform, proxies[0], receiver, customers, endpoint)


def test_postgres_redis_and_the_node_down_while_the_webhook_receiver_is_down_lose_nothing(
    shop: Shop, kafka_cluster: KafkaCluster, stores: Stores
) -> None:
    platform, receiver, customers = shop.platform, shop.receiver, shop.customers
    urls = platform.worker_urls

    def customer_opens_the_page(invoice_id: str, creator: int) -> None:
        customers.watch(invoice_id, urls[(creator + 1) % len(urls)])  # any worker serves it

    load = SteadyLoad(platform, rate=RATE, on_created=customer_opens_the_page)
    receiver.down()
    receiver_down_at = time.monotonic()
    print(f"\nthe webhook receiver down for {RECEIVER_DOWN:.0f} s, meanwhile:")
    load.start()
    try:
        time.sleep(WARMUP)
        stop, start = stores.stop_postgres, stores.start_postgres
        outage(platform, kafka_cluster, load, "PostgreSQL stopped", stop, start, POSTGRES_DOWN)
        time.sleep(BETWEEN)

        stop, start = stores.stop_redis, stores.start_redis
        redis = outage(platform, kafka_cluster, load, "Redis stopped", stop, start, REDIS_DOWN)
        # The invoice agent's answer cannot come over Redis; the owner of each invoice gives it.
        created = [o for o in load.orders if redis.began + 1.0 < o.sent_at < redis.ended]
        print(f"\nRedis stopped: {len(created)} invoices created (and paid) while it was down")
        assert len(created) >= REDIS_DOWN * RATE / 2
        time.sleep(BETWEEN)
        stop, start = shop.node.freeze, shop.node.thaw
        outage(platform, kafka_cluster, load, "the Tron node unreachable", stop, start, NODE_DOWN)
        time.sleep(max(0.0, receiver_down_at + RECEIVER_DOWN - time.monotonic()))
        receiver.up()
        receiver_up_at, receiver_up_clock = time.monotonic(), time.time()
        load.stop_creating()
        unpaid = load.wait_all_paid(timeout=ALL_PAID_WITHIN)
    finally:
        load.stop()
    assert unpaid == [], f"never paid: {[order.invoice_id for order in unpaid]}"
    invoice_ids = [order.invoice_id for order in load.orders]

    books = reconcile_when_settled(
        invoice_ids, platform.namespace, kafka_cluster.bootstrap, database_url(platform)
    )
    webhooks = reconcile_webhooks_when_delivered(
        database_url(platform),
        platform.merchant_id,
        shop.endpoint["id"],
        shop.endpoint["secret"],
        invoice_ids,
        receiver.requests,
        timeout=WEBHOOKS_WITHIN,
    )
    stragglers = customers.wait_all_ended(CUSTOMERS_WITHIN)
    seen = reconcile_customers(customers.results(), invoice_ids)

    print(
        f"\nthe webhook receiver down ({receiver_up_at - receiver_down_at:.1f} s): every webhook"
        f" delivered {webhooks.last_arrival - receiver_up_clock:.1f} s after it came back",
        *(f"\nreconciliation: {line}" for line in books.lines()),
        *(f"\nreconciliation: {line}" for line in webhooks.lines()),
        *(f"\nreconciliation: {line}" for line in seen.lines()),
        f"\nload: {len(load.orders)} invoices paid, {len(load.errors)} create requests refused",
    )
    assert_books(books, len(load.orders))
    assert webhooks.problems == []
    assert webhooks.delivered == webhooks.events > 0
    assert stragglers == [] and seen.problems == []
    assert seen.ended_paid == len(load.orders)
