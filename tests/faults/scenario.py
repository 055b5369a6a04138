"""One fault scenario: the load, the fault, the wait until every payment is paid, the verdict.

``under_load`` runs the steady load (tests/faults/load.py) for ``WARMUP`` s, injects the fault,
keeps the load ``AFTER`` s more, stops creating and waits until every invoice is paid (blocks keep
coming), then prints, from the fault, when payments were paid again and when every payment mined
until then was paid, and the reconciliation (tests/faults/reconcile.py), which must hold.

``outage`` is the same for a fault with a length (a server stopped for 30 s, the node unreachable
for 60 s) under a load that is already running: it stops, waits, starts again, then waits until
every payment mined until the end of the outage is paid and one mined after it too, and returns
the recovery, measured from the fault's beginning and from its end. Several outages run one after
the other under one load (tests/faults/test_outages.py).

Durations are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.settings import Settings
from tests.faults.conftest import KafkaCluster
from tests.faults.load import Order, SteadyLoad
from tests.faults.reconcile import Reconciliation, reconcile, reconcile_when_settled
from tests.support.platform import Platform

WARMUP = 12.0  # seconds of load before the fault
AFTER = 25.0  # seconds of load after it
ALL_PAID_WITHIN = 120.0  # seconds, once creation stopped


@dataclass(frozen=True)
class Recovery:
    what: str
    began: float  # monotonic: the fault was injected
    ended: float  # monotonic: what was stopped is back (= began for a kill)
    restored: float  # s after ``began``: the first payment mined after it was seen paid
    caught_up: float  # s after ``began``: every payment mined until then was seen paid

    def line(self) -> str:
        if self.ended == self.began:
            return (
                f"{self.what}: payments paid again {self.restored:.1f} s after the fault; every"
                f" payment mined until then paid {self.caught_up:.1f} s after it"
            )
        length = self.ended - self.began
        return (
            f"{self.what} ({length:.1f} s): payments paid again {self.restored:.1f} s after the"
            f" fault began ({self.restored - length:+.1f} s from its end); every payment mined"
            f" until then paid {self.caught_up:.1f} s after it began"
            f" ({self.caught_up - length:+.1f} s from its end)"
        )


def recovery(what: str, orders: list[Order], began: float, ended: float) -> Recovery:
    """From the orders of a load that has caught up with the fault: when payments came back."""
    after = [o for o in orders if o.mined_at is not None and o.mined_at > began]
    assert after, "no block was mined after the fault"
    restored = min(o.paid_seen_at or float("inf") for o in after) - began
    until = began + max(restored, ended - began)
    caught_up = max(
        (o.paid_seen_at or float("inf")) - began
        for o in orders
        if o.mined_at is not None and o.mined_at <= until
    )
    return Recovery(what, began, ended, restored, caught_up)


def register_webhook_endpoint(platform: Platform, url: str) -> dict[str, Any]:
    """The merchant registers ``url`` for every event; returns the endpoint (its signing secret)."""
    response = httpx.post(
        f"{platform.url}/api/v1/webhook-endpoints",
        json={"url": url},
        headers=platform.headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def database_url(platform: Platform) -> str:
    return Settings.from_env(platform.env).database_url


def under_load(
    platform: Platform, cluster: KafkaCluster, fault: Callable[[], str]
) -> tuple[float, float]:
    """Run ``fault`` (it returns what it did, for the report) under load; the recovery times."""
    load = SteadyLoad(platform, rate=2.0)
    load.start()
    try:
        time.sleep(WARMUP)
        fault_at = time.monotonic()
        what = fault()
        time.sleep(AFTER)
        load.stop_creating()
        unpaid = load.wait_all_paid(timeout=ALL_PAID_WITHIN)
    finally:
        load.stop()
    assert unpaid == [], f"never paid: {[order.invoice_id for order in unpaid]}"

    measured = recovery(what, load.orders, fault_at, fault_at)
    result = reconcile(
        [order.invoice_id for order in load.orders],
        platform.namespace,
        cluster.bootstrap,
        database_url(platform),
    )
    print(f"\n{measured.line()}", *(f"\nreconciliation: {line}" for line in result.lines()))
    assert_books(result, len(load.orders))
    return measured.restored, measured.caught_up


def assert_books(result: Reconciliation, orders: int) -> None:
    assert result.problems == []
    assert result.paid == result.invoices == result.settled_once == orders
    assert result.gross == result.fees + result.net
    assert sum(result.dead_letters.values()) == 0


def outage(
    platform: Platform,
    cluster: KafkaCluster,
    load: SteadyLoad,
    what: str,
    stop: Callable[[], None],
    start: Callable[[], None],
    length: float,
) -> Recovery:
    """``stop``, ``length`` s later ``start``, under the running ``load``; once it recovered, the
    books of every invoice paid so far reconciled (the dead-letter topics are read at the end)."""
    refused_before = len(load.errors)
    began = time.monotonic()
    stop()
    time.sleep(max(0.0, began + length - time.monotonic()))
    start()
    ended = time.monotonic()
    unpaid = load.wait_recovered(began, ended, timeout=ALL_PAID_WITHIN)
    if unpaid:
        logs = "\n".join(f"--- {w.name} ---\n{w.log_tail(40)}" for w in platform.workers)
        raise AssertionError(
            f"after {what}: {len(unpaid)} payments mined until it ended not paid"
            f" {ALL_PAID_WITHIN:.0f} s later, e.g. {[o.invoice_id for o in unpaid[:5]]}\n{logs}"
        )
    measured = recovery(what, load.orders, began, ended)
    paid = [o.invoice_id for o in load.orders if o.paid_seen_at is not None]
    result = reconcile_when_settled(
        paid, platform.namespace, cluster.bootstrap, database_url(platform), dead_letters=False
    )
    during = sum(1 for o in load.orders if o.mined_at is not None and began < o.mined_at <= ended)
    print(
        f"\n{measured.line()}",
        f"\n{what}: {during} payments mined during it; create requests refused meanwhile:"
        f" {len(load.errors) - refused_before} (e.g. {load.errors[refused_before:][:1]})",
        *(f"\nreconciliation: {line}" for line in result.lines()[:2]),
        f"\nreconciliation: problems: {result.problems or 'none'}",
    )
    assert result.problems == [], f"after {what}"
    assert result.paid == result.invoices == result.settled_once == len(paid)
    return measured
