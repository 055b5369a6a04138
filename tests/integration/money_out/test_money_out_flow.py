"""Money out on the real stack: two workers, the signer in its own process, Kafka, PostgreSQL and
the Tron simulator. A refund of an overpayment and payouts are built by the node, signed by the
signer, broadcast, followed to their solidified block, and booked in a journal that balances;
a payout above the threshold waits for the admin; one over the signer's limit fails and its
amount returns to the balance."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import psycopg2
import pytest

from app.adapters.tron.settings import DEV_HOT_WALLET
from app.settings import Settings
from tests.support.platform import Platform, running_platform
from tests.support.processes import REPO_ROOT, VENV_BIN, ManagedProcess, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

PASSWORD = "an admin password of some length"
DATABASE_URL = Settings.from_env().database_url
# The signer's own limits, small enough to refuse a payout the workers accept.
SIGNER_LIMITS = "payout=40:1000,refund=100:1000,sweep=1000:1000,sweep_topup=30:300"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("money-out")
    overrides = {
        "PAYOUT_APPROVAL_THRESHOLD": "30",  # payouts of 30 USDT or more wait for the admin
        "PAYOUT_BATCH_SECONDS": "0",
        "MONEY_OUT_INTERVAL": "0.3",
    }
    with running_platform(data, **overrides) as running:
        signer = ManagedProcess(
            "signer",
            [str(VENV_BIN / "checkout"), "signer"],
            {
                **running.env,
                "SIGNER_LOG_FILE": str(data / "signed.jsonl"),
                "SIGNER_LIMITS": SIGNER_LIMITS,
            },
            REPO_ROOT,
        )
        try:
            running.sim.post(
                "/sim/fund", {"address": DEV_HOT_WALLET, "trx": "10000", "usdt": "100000"}
            )
            yield running
        finally:
            signer.stop()


def api(platform: Platform, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**platform.headers(), **kwargs.pop("headers", {})}
    return httpx.request(method, f"{platform.url}{path}", headers=headers, timeout=30, **kwargs)


def money(text: str) -> Decimal:
    return Decimal(text)


def balance(platform: Platform) -> dict[str, Decimal]:
    body = api(platform, "GET", "/api/v1/balance").json()
    return {name: money(body[name]) for name in ("available", "incoming", "outgoing")}


def settled_invoice(platform: Platform, amount: str, paid: str) -> dict[str, Any]:
    invoice = platform.create_invoice(amount)
    platform.pay_and_confirm(invoice, paid, blocks=1 if Decimal(amount) < 100 else 12)
    platform.wait_settlement(invoice["id"])
    return invoice


def follow(platform: Platform, path: str, status: str, timeout: float = 60) -> dict[str, Any]:
    """Mine blocks while waiting for the transfer at ``path`` to reach ``status``."""

    def probe() -> dict[str, Any] | None:
        body = api(platform, "GET", path).json()
        if body["status"] == status:
            return dict(body)
        if body["status"] in ("broadcast",):
            platform.sim.mine(19)  # into a block, then solidified
        elif body["status"] in ("approved", "signing", "pending"):
            platform.sim.mine(1)  # a fresh head: the next transaction built lives 60 s from it
        return None

    return eventually(probe, timeout=timeout, what=f"{path} to be {status}", every=0.5)


def journal_balances() -> dict[str, int]:
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT currency, sum(amount) FROM ledger_entries GROUP BY currency ORDER BY currency"
        )
        return {currency: int(total) for currency, total in cur.fetchall()}


def events_of(aggregate_id: str) -> list[str]:
    def probe() -> list[str] | None:
        with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT event_type FROM event_store WHERE aggregate_id = %s"
                " ORDER BY aggregate_version",
                (aggregate_id,),
            )
            found = [row[0] for row in cur.fetchall()]
        return found if len(found) >= 2 else None

    return eventually(probe, timeout=30, what=f"the events of {aggregate_id}", every=0.5)


def receipt(platform: Platform, txid: str) -> dict[str, Any]:
    return dict(platform.sim.post("/wallet/gettransactioninfobyid", {"value": txid}))


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
    result = subprocess.run(
        [str(VENV_BIN / "checkout"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**platform.env},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))
