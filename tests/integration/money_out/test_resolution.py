"""Underpaid invoices resolved on the real stack (two workers, the signer, Kafka, PostgreSQL, the
simulator): ``accept`` settles on what was received; ``refund`` returns it on chain from the
customer funds, never from the merchant's balance; ``extend`` reopens the invoice and a top-up
pays it; the merchant's tolerance accepts a near payment at expiry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import psycopg2
import pytest

from app.settings import Settings
from tests.integration.money_out.support import api, money_out_platform
from tests.support.platform import Platform
from tests.support.processes import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("infrastructure")]

DATABASE_URL = Settings.from_env().database_url


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("resolution")
    with money_out_platform(data, MONEY_OUT_INTERVAL="0.3") as (running, _):
        yield running


def resolve(platform: Platform, invoice_id: str, **body: Any) -> httpx.Response:
    return api(
        platform,
        "POST",
        f"/api/v1/invoices/{invoice_id}/resolve",
        json=body,
        headers={"Idempotency-Key": f"resolve-{uuid.uuid4()}"},
    )


def underpaid(platform: Platform, amount: str, paid: str, **fields: Any) -> dict[str, Any]:
    """An invoice of ``amount`` with ``paid`` sent and confirmed (still underpaid)."""
    invoice = platform.create_invoice(amount, **fields)
    platform.pay_and_confirm(invoice, paid, blocks=1)
    return platform.wait_invoice(
        invoice["id"],
        lambda body: Decimal(body["amount_confirmed"]) == Decimal(paid),
        f"{paid} USDT confirmed on invoice {invoice['id']}",
    )


def available(platform: Platform) -> Decimal:
    return Decimal(api(platform, "GET", "/api/v1/balance").json()["available"])


def test_accept_settles_the_invoice_on_what_was_received(platform: Platform) -> None:
    invoice = underpaid(platform, "10", "7")
    before = available(platform)
    answer = resolve(platform, invoice["id"], action="accept")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["resolution"]) == ("paid", "accept")
    settlement = platform.wait_settlement(invoice["id"])
    assert (settlement["gross_amount"], settlement["net_amount"]) == ("7", "6.93")
    eventually(
        lambda: available(platform) == before + Decimal("6.93"),
        timeout=30,
        what="the balance to grow by the net of 7.00",
    )
    # Resolved once: the same action again is refused, naming why.
    again = resolve(platform, invoice["id"], action="accept")
    assert again.status_code == 422 and again.json()["error"]["code"] == "invoice_not_underpaid"
    public = httpx.get(f"{platform.url}/api/v1/public/invoice/{invoice['id']}", timeout=10)
    assert public.json()["resolution"] == "accept"

    def listed() -> dict[str, Any] | None:  # the list (read model) shows it too, a moment later
        items = api(platform, "GET", "/api/v1/invoices", params={"limit": 100}).json()["data"]
        found = [item for item in items if item["id"] == invoice["id"]]
        return found[0] if found and found[0]["resolution"] == "accept" else None

    item = eventually(listed, timeout=30, what="the invoice listed as accepted", every=0.5)
    assert (item["status"], item["amount_confirmed"]) == ("paid", "7")


def test_refund_returns_what_was_received_from_the_customer_funds(platform: Platform) -> None:
    invoice = underpaid(platform, "10", "4")
    before = available(platform)
    platform.sim.mine(1)  # a fresh head: the refund's transaction lives 60 s from it
    answer = resolve(platform, invoice["id"], action="refund")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["resolution"]) == ("expired", "refund")
    refund_id = body["refund_id"]

    def confirmed() -> dict[str, Any] | None:
        response = api(platform, "GET", f"/api/v1/refunds/{refund_id}")
        if response.status_code != 200:
            return None  # recorded from the InvoiceResolved event, a moment later
        refund = response.json()
        if refund["status"] == "confirmed":
            return dict(refund)
        platform.sim.mine(19 if refund["status"] == "broadcast" else 1)
        return None

    refund = eventually(confirmed, timeout=180, what=f"refund {refund_id} confirmed", every=0.5)
    assert (refund["amount"], refund["invoice_id"]) == ("4", invoice["id"])
    info = platform.sim.post("/wallet/gettransactioninfobyid", {"value": refund["tx_hash"]})
    assert info["receipt"]["result"] == "SUCCESS"
    assert int(info["log"][0]["data"], 16) == 4_000_000
    # Never the merchant's money: the balance did not move.
    assert available(platform) == before
    with psycopg2.connect(DATABASE_URL) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT e.account || ' ' || e.currency, sum(e.amount) FROM ledger_entries e"
            " JOIN ledger_transactions t USING (tx_id)"
            " WHERE t.reference = %s GROUP BY 1 ORDER BY 1",
            (refund_id,),
        )
        entries = {name: int(total) for name, total in cur.fetchall()}
    burned = entries["hot_wallet TRX"]
    assert burned > 0  # the TRX the transfer burned, booked as a network cost
    assert entries == {
        "customer_funds USDT": -4_000_000,  # held on the deposit address, never settled
        "hot_wallet USDT": 4_000_000,  # paid from the hot wallet
        "hot_wallet TRX": burned,
        "network_costs TRX": -burned,
        f"refunds_payable:{platform.merchant_id} USDT": 0,  # owed, then paid
    }
    # A second refund of the same invoice is refused.
    again = resolve(platform, invoice["id"], action="refund")
    assert again.status_code == 422, again.text


def test_extend_reopens_an_expired_invoice_and_a_top_up_pays_it(platform: Platform) -> None:
    invoice = underpaid(platform, "10", "6", expires_in=10)
    platform.wait_expired(invoice)
    answer = resolve(platform, invoice["id"], action="extend", expires_in=600)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["amount_due"], body["resolution"]) == ("confirming", "4", "extend")
    assert body["expires_at"] > invoice["expires_at"]
    public = httpx.get(f"{platform.url}/api/v1/public/invoice/{invoice['id']}", timeout=10).json()
    assert (public["status"], public["amount_due"]) == ("confirming", "4")
    platform.pay_and_confirm(invoice, "4", blocks=1)
    paid = platform.wait_invoice(invoice["id"], lambda body: body["status"] == "paid", "paid")
    assert paid["payment_exception"] is None and paid["amount_confirmed"] == "10"
    settlement = platform.wait_settlement(invoice["id"])
    assert settlement["gross_amount"] == "10"


def test_resolve_refuses_what_is_not_an_underpaid_invoice(platform: Platform) -> None:
    fresh = platform.create_invoice("5")
    cases = [
        ({"action": "accept"}, 422, "invoice_not_underpaid"),
        ({"action": "extend"}, 400, "parameter_missing"),
        ({"action": "forgive"}, 400, "parameter_invalid"),
        ({"action": "accept", "expires_in": 60}, 400, "parameter_invalid"),
    ]
    for body, status, code in cases:
        answer = resolve(platform, fresh["id"], **body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), body
    other = httpx.post(
        f"{platform.url}/api/v1/invoices/{fresh['id']}/resolve",
        json={"action": "accept"},
        headers=platform.headers(platform.other_api_key),
        timeout=10,
    )
    assert other.status_code == 404


def test_a_payment_after_expiry_is_refunded_by_default_from_what_came(platform: Platform) -> None:
    invoice = platform.create_invoice("3", expires_in=10)
    platform.wait_expired(invoice)
    platform.pay_and_confirm(invoice, "3", blocks=1)
    late = platform.wait_invoice(
        invoice["id"],
        lambda body: body["payment_exception"] == "paid_late" and body["amount_confirmed"] == "3",
        "paid late",
    )
    assert late["status"] == "expired"
    before = available(platform)

    def refunded() -> dict[str, Any] | None:
        # The read model trails the invoice by a moment: until it shows the late payment, the
        # refund finds nothing to refund (422) and is asked again.
        platform.sim.mine(1)
        answer = api(
            platform,
            "POST",
            f"/api/v1/invoices/{invoice['id']}/refunds",
            json={},
            headers={"Idempotency-Key": f"late-{invoice['id']}"},
        )
        return dict(answer.json()) if answer.status_code == 201 else None

    refund = eventually(refunded, timeout=30, what="the late payment's refund", every=0.5)
    assert refund["amount"] == "3"

    def confirmed() -> dict[str, Any] | None:
        body = api(platform, "GET", f"/api/v1/refunds/{refund['id']}").json()
        if body["status"] == "confirmed":
            return dict(body)
        platform.sim.mine(19 if body["status"] == "broadcast" else 1)
        return None

    done = eventually(confirmed, timeout=180, what="the late refund confirmed", every=0.5)
    assert done["tx_hash"] and available(platform) == before
