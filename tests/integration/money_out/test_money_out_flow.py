"""Money out on the real stack: two workers, the signer in its own process, Kafka, PostgreSQL and
the Tron simulator. A refund of an overpayment and payouts are built by the node, signed by the
signer, broadcast, followed to their solidified block, and booked in a journal that balances;
a payout above the threshold waits for the admin; one over the signer's limit fails and its
amount returns to the balance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import psycopg2
import pytest

from tests.integration.money_out.support import (
    DATABASE_URL,
    api,
    balance,
    events_of,
    follow,
    journal_balances,
    money_out_platform,
    receipt,
    settled_invoice,
)
from tests.support.platform import Platform, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

PASSWORD = "an admin password of some length"
# The signer's own limits, small enough to refuse a payout the workers accept.
SIGNER_LIMITS = "payout=40:1000,refund=100:1000,sweep=1000:1000,sweep_topup=30:300"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    overrides = {
        "PAYOUT_APPROVAL_THRESHOLD": "30",  # payouts of 30 USDT or more wait for the admin
        "PAYOUT_BATCH_SECONDS": "0",
        "MONEY_OUT_INTERVAL": "0.3",
    }
    data = tmp_path_factory.mktemp("money-out")
    with money_out_platform(data, {"SIGNER_LIMITS": SIGNER_LIMITS}, **overrides) as (running, _):
        yield running


def test_an_overpayment_is_refunded_to_its_sender_on_chain(platform: Platform) -> None:
    invoice = settled_invoice(platform, "10", "12")
    before = balance(platform)
    platform.sim.mine(1)
    created = api(
        platform,
        "POST",
        f"/api/v1/invoices/{invoice['id']}/refunds",
        json={},
        headers={"Idempotency-Key": f"refund-{uuid.uuid4()}"},
    )
    assert created.status_code == 201, created.text
    refund = created.json()
    assert (refund["amount"], refund["status"]) == ("2", "pending")
    assert balance(platform)["available"] == before["available"] - 2
    assert balance(platform)["outgoing"] == before["outgoing"] + 2

    confirmed = follow(platform, f"/api/v1/refunds/{refund['id']}", "confirmed")
    assert confirmed["tx_hash"] and confirmed["block_number"]
    assert Decimal(confirmed["network_fee"]["burned_trx"]) > 0
    # On chain: 2.00 USDT from the hot wallet to whoever paid the invoice.
    info = receipt(platform, confirmed["tx_hash"])
    assert info["receipt"]["result"] == "SUCCESS"
    (log,) = info["log"]
    assert int(log["data"], 16) == 2_000_000
    assert confirmed["address"] == refund["address"]

    after = balance(platform)
    assert after["available"] == before["available"] - 2 and after["outgoing"] == before["outgoing"]
    assert journal_balances() == {"TRX": 0, "USDT": 0}
    assert events_of(refund["id"]) == ["RefundCreated", "RefundConfirmed"]


def test_a_payout_below_the_threshold_is_paid_and_one_above_waits_for_the_admin(
    platform: Platform,
) -> None:
    settled_invoice(platform, "80", "80")
    before = balance(platform)["available"]
    platform.sim.mine(1)
    payee = platform.sim.status()["faucet"]["address"]
    small = api(
        platform,
        "POST",
        "/api/v1/payouts",
        json={"amount": "5.5", "address": payee},
        headers={"Idempotency-Key": f"payout-{uuid.uuid4()}"},
    ).json()
    large = api(
        platform,
        "POST",
        "/api/v1/payouts",
        json={"amount": "30", "address": payee},
        headers={"Idempotency-Key": f"payout-{uuid.uuid4()}"},
    ).json()
    assert (small["status"], large["status"]) == ("approved", "requested")
    assert balance(platform)["available"] == before - Decimal("35.5")

    paid = follow(platform, f"/api/v1/payouts/{small['id']}", "confirmed")
    assert receipt(platform, paid["tx_hash"])["receipt"]["result"] == "SUCCESS"
    assert events_of(small["id"]) == ["PayoutCreated", "PayoutPaid"]
    waiting = api(platform, "GET", f"/api/v1/payouts/{large['id']}").json()
    assert waiting["status"] == "requested" and waiting["tx_hash"] is None

    email = f"admin-{platform.namespace}@platform.example"
    cli(platform, "create-admin", "--email", email, stdin=PASSWORD + "\n")
    token = httpx.post(
        f"{platform.url}/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=10,
    ).json()["access_token"]
    platform.sim.mine(1)
    approved = httpx.post(
        f"{platform.url}/api/v1/admin/payouts/{large['id']}/approve",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    follow(platform, f"/api/v1/payouts/{large['id']}", "confirmed")
    assert events_of(large["id"]) == ["PayoutCreated", "PayoutApproved", "PayoutPaid"]
    assert balance(platform)["available"] == before - Decimal("35.5")
    assert balance(platform)["outgoing"] == 0
    assert journal_balances() == {"TRX": 0, "USDT": 0}


def test_a_payout_the_signer_refuses_fails_and_returns_to_the_balance(platform: Platform) -> None:
    settled_invoice(platform, "60", "60")
    before = balance(platform)["available"]
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        # This merchant's own threshold: no admin needed for 45 (the signer's limit is 40).
        cur.execute(
            "UPDATE merchants SET payout_approval_threshold = 100000000 WHERE merchant_id = %s",
            (platform.merchant_id,),
        )
    platform.sim.mine(1)
    payout = api(
        platform,
        "POST",
        "/api/v1/payouts",
        json={"amount": "45", "address": platform.sim.status()["faucet"]["address"]},
        headers={"Idempotency-Key": f"payout-{uuid.uuid4()}"},
    ).json()
    assert payout["status"] == "approved", payout
    failed = follow(platform, f"/api/v1/payouts/{payout['id']}", "failed")
    assert "limit_per_transaction" in failed["failure_reason"]
    assert failed["tx_hash"] is None
    assert balance(platform)["available"] == before
    assert events_of(payout["id"]) == ["PayoutCreated", "PayoutFailed"]


def cli(platform: Platform, *args: str, stdin: str = "") -> dict[str, Any]:
    return run_cli(platform, *args, stdin=stdin)
