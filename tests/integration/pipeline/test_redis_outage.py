"""Redis unreachable: invoices are still created, answered and paid.

A create waits for the invoice agent's answer over Redis pub/sub; with Redis gone the answer
cannot come, so the request asks the worker owning the invoice for it (app/runtime/commands.py,
web/owner_invoices.py). Redis is made unreachable for this platform only: its workers reach it
through a forwarder (tests/support/tcp_proxy.py) that is killed, which closes every connection
and refuses new ones as a stopped Redis does, while the other tests keep theirs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.settings import Settings
from tests.support.platform import running_platform
from tests.support.tcp_proxy import tcp_proxy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]


def test_invoices_are_created_and_paid_while_redis_is_unreachable(tmp_path: Path) -> None:
    with (
        tcp_proxy(Settings.from_env().redis_url) as redis,
        running_platform(tmp_path, REDIS_URL=redis.url) as platform,
    ):
        redis.cut()
        try:
            created, answered_in = [], []
            for i in range(6):  # on both workers: the invoice's owner is this one or the other
                started = time.monotonic()
                created.append(
                    platform.create_invoice(f"{20 + i}.25", url=platform.worker_urls[i % 2])
                )
                answered_in.append(time.monotonic() - started)
            print(f"\ncreates answered with Redis down in {[f'{s:.1f}' for s in answered_in]} s")
            for i, invoice in enumerate(created):
                # The invoice the agent created: what its owner has, not a guess.
                assert invoice["status"] == "pending"
                assert invoice["amount"] == f"{20 + i}.25"
                stored = platform.invoice(invoice["id"], url=platform.worker_urls[(i + 1) % 2])
                assert stored["deposit_address"] == invoice["deposit_address"]
                assert stored["created_at"] == invoice["created_at"]
            # Payments go on without Redis (the live status waits for it: tests/faults).
            platform.pay_and_confirm(created[0], "20.25")
            platform.wait_invoice(created[0]["id"], lambda i: i["status"] == "paid", "paid")
        finally:
            redis.restore()
        # Redis back: answered over the reply channel again.
        assert platform.create_invoice("9.99")["status"] == "pending"
