"""One fault scenario: the load, the fault, the wait until every payment is paid, the verdict.

``under_load`` runs the steady load (tests/faults/load.py) for ``WARMUP`` s, injects the fault,
keeps the load ``AFTER`` s more, stops creating and waits until every invoice is paid (blocks keep
coming), then prints, from the fault, when payments were paid again and when every payment mined
until then was paid, and the reconciliation (tests/faults/reconcile.py), which must hold.
Durations are printed, never asserted: the machines are shared and noisy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.faults.conftest import KafkaCluster
from tests.faults.load import SteadyLoad
from tests.faults.reconcile import reconcile
from tests.support.platform import Platform

WARMUP = 12.0  # seconds of load before the fault
AFTER = 25.0  # seconds of load after it
ALL_PAID_WITHIN = 120.0  # seconds, once creation stopped


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

    after = [o for o in load.orders if o.mined_at is not None and o.mined_at > fault_at]
    assert after, "no block was mined after the fault"
    restored = min(o.paid_seen_at or 0.0 for o in after) - fault_at
    caught_up = max(
        (o.paid_seen_at or 0.0) - fault_at
        for o in load.orders
        if o.mined_at is not None and o.mined_at <= fault_at + restored
    )
    result = reconcile(
        [order.invoice_id for order in load.orders], platform.namespace, cluster.bootstrap
    )
    print(
        f"\n{what}: payments paid again {restored:.1f} s after the fault; every payment mined"
        f" until then paid {caught_up:.1f} s after it",
        *(f"\nreconciliation: {line}" for line in result.lines()),
    )
    assert result.problems == []
    assert result.paid == result.invoices == result.settled_once == len(load.orders)
    assert result.gross == result.fees + result.net
    assert sum(result.dead_letters.values()) == 0
    return restored, caught_up
