"""Money out in the dashboard over the real views and services (in-memory ports): refunds and the
resolution of an underpayment on the invoice page, the Payouts page (request, cancel, pages,
schedule), the admin's approvals. Every form that moves money carries its own idempotency key:
the same form sent twice is one refund or payout."""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from app.domain.commands import ApplyPaymentConfirmed, ApplyPaymentDetected
from app.domain.money_out import Attempt, Stage
from app.domain.policies import settlement_command_for
from tests.component.web.conftest import SHOP
from tests.component.web.test_dashboard import PASSWORD, add_user, csrf_of, sign_in
from tests.component.web.test_merchant_api import pay_in_full
from tests.component.web.test_money_out_api import CUSTOMER, OTHER_CUSTOMER, store
from tests.support.fakes import MemoryWorld
from tests.unit.domain.factories import usdt

pytestmark = pytest.mark.component

TX_HASH = "ab" * 32
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def form_of(page: str, action: str, action_field: str | None = None) -> dict[str, str]:
    """The hidden fields of the form on ``page`` posting to ``action`` (the one whose hidden
    ``action`` field is ``action_field``, when several post there)."""
    for match in re.finditer(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', page, re.S):
        if html.unescape(match.group(1)) != action:
            continue
        fields = dict(_HIDDEN.findall(match.group(2)))
        if action_field is None or fields.get("action") == action_field:
            return fields
    raise AssertionError(f"no form posting to {action} ({action_field}) on the page")


async def send(client: TestClient, path: str, fields: dict[str, str], **filled: str) -> Any:
    return await client.post(path, data={**fields, **filled}, allow_redirects=False)


async def page_of(client: TestClient, path: str) -> str:
    answer = await client.get(path)
    assert answer.status == 200, await answer.text()
    return await answer.text()


async def paid_invoice(client: TestClient, world: MemoryWorld, amount: str, paid: str) -> str:
    """An invoice of ``amount`` paid with ``paid`` by CUSTOMER, settled."""
    created = await client.post("/api/v1/invoices", json={"amount": amount}, headers=SHOP)
    invoice_id = str((await created.json())["id"])
    await pay_in_full(world, invoice_id, usdt(paid))
    command = settlement_command_for(world.publisher.events[-1])
    assert command is not None
    await world.services.settling.settle(command)
    store(world).invoice_amounts[invoice_id] = usdt(amount)
    store(world).senders[invoice_id] = (CUSTOMER,)
    return invoice_id


async def underpaid_invoice(client: TestClient, world: MemoryWorld, amount: str, paid: str) -> str:
    """An invoice of ``amount`` that received and confirmed only ``paid`` from CUSTOMER."""
    created = await client.post("/api/v1/invoices", json={"amount": amount}, headers=SHOP)
    invoice = await created.json()
    commands = world.services.invoice_commands
    held = world.tables.invoices.get(invoice["id"])
    assert held is not None
    now = held.created_at
    await commands.apply(
        ApplyPaymentDetected(
            command_id="under-detected", invoice_id=invoice["id"], payment_id="p1",
            amount=usdt(paid), detected_at=now,
        )
    )  # fmt: skip
    await commands.apply(
        ApplyPaymentConfirmed(
            command_id="under-confirmed", invoice_id=invoice["id"], payment_id="p1",
            amount=usdt(paid), confirmed_at=now,
        )
    )  # fmt: skip
    store(world).senders[invoice["id"]] = (CUSTOMER,)
    return str(invoice["id"])


def balance_of(world: MemoryWorld) -> dict[str, int]:
    """What GET /api/v1/balance answers (the reports' read model, set from the ledger here)."""
    figures = {
        "available": store(world).balance("merchant:mer_shop"),
        "incoming": 0,
        "outgoing": store(world).balance("merchant:mer_shop:in_flight"),
    }
    world.ports.reports.balances["mer_shop"] = figures  # type: ignore[attr-defined]
    return figures


async def test_an_overpayment_is_refunded_from_the_invoice_page_once_however_often_sent(
    client: TestClient, world: MemoryWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "web.dashboard.views.explorer_base", lambda network: "https://nile.tronscan.org/#"
    )
    await sign_in(client, world)
    invoice_id = await paid_invoice(client, world, amount="10", paid="12")
    path = f"/dashboard/invoices/{invoice_id}"
    page = await page_of(client, path)
    assert 'id="refunds-heading">Refunds</h2>' in page and "No refund." in page
    assert "the overpayment, <strong>2 USDT</strong>" in page
    form = form_of(page, f"{path}/refunds")
    assert form["idempotency_key"].startswith("dash_")

    # Sent twice (a double click): one refund, the same answer both times.
    for _ in range(2):
        sent = await send(client, f"{path}/refunds", form, amount="", address="")
        assert sent.status == 303, await sent.text()
        assert sent.headers["Location"] == f"{path}?notice=refund_requested"
    (refund,) = store(world).transfers.values()
    assert (refund.amount, refund.to_address) == (usdt("2"), CUSTOMER)
    assert refund.invoice_id == invoice_id
    assert store(world).balance("merchant:mer_shop") == usdt("11.88") - usdt("2")

    page = await page_of(client, f"{path}?notice=refund_requested")
    assert "Refund requested" in page
    row = re.search(rf'<tr data-refund-id="{refund.transfer_id}">(.*?)</tr>', page, re.S)
    assert row, page
    assert "2 USDT" in row.group(1) and CUSTOMER in row.group(1)
    assert '<span class="badge pending">pending</span>' in row.group(1)
    assert "there is none left: give an amount" in page  # the overpayment is refunded

    # Refused by the API: its words next to the refund form, a fresh key to send it again.
    refused = await send(
        client, f"{path}/refunds", form_of(page, f"{path}/refunds"), amount="50", address=""
    )
    assert refused.status == 422
    text = await refused.text()
    alert = re.search(r'<p class="error" role="alert">([^<]+)</p>', text)
    assert alert and "balance" in alert.group(1), text
    assert text.index('role="alert"') > text.index('id="refunds-heading"')
    assert form_of(text, f"{path}/refunds")["idempotency_key"] != form["idempotency_key"]
    # The old form changed and sent again: the first request stands, nothing new is sent.
    reused = await send(client, f"{path}/refunds", form, amount="1", address="")
    assert reused.status == 409
    assert "already sent with other values" in await reused.text()
    assert len(store(world).transfers) == 1

    # Broadcast: its transaction links to the explorer; a failed one says why.
    transfers = store(world).transfers
    transfers[refund.transfer_id] = dataclasses.replace(
        refund,
        stage=Stage.BROADCAST,
        attempt=Attempt(1, TX_HASH, {}, "", 0),
        broadcast_accepted=True,
    )
    page = await page_of(client, path)
    assert f'<a href="https://nile.tronscan.org/#/transaction/{TX_HASH}"' in page
    assert '<span class="badge broadcast">broadcast</span>' in page
    transfers[refund.transfer_id] = dataclasses.replace(
        refund, stage=Stage.FAILED, failure_reason="the transaction ran out of energy"
    )
    page = await page_of(client, path)
    assert '<span class="badge failed">failed</span>' in page
    assert "the transaction ran out of energy" in page
    assert "the overpayment, <strong>2 USDT</strong>" in page  # a failed refund gave it back


async def test_a_refund_to_another_address_and_who_may_refund(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world, role="developer")  # developers hold refunds:write
    invoice_id = await paid_invoice(client, world, amount="10", paid="10")
    path = f"/dashboard/invoices/{invoice_id}"
    page = await page_of(client, path)
    assert "there is none left: give an amount" in page
    sent = await send(
        client,
        f"{path}/refunds",
        form_of(page, f"{path}/refunds"),
        amount="3.5",
        address=OTHER_CUSTOMER,
    )
    assert sent.status == 303, await sent.text()
    (refund,) = store(world).transfers.values()
    assert (refund.amount, refund.to_address) == (usdt("3.5"), OTHER_CUSTOMER)

    client.session.cookie_jar.clear()
    await sign_in(client, world, role="viewer")
    page = await page_of(client, path)
    assert 'id="refunds-heading"' in page and "3.5 USDT" in page  # viewers see the refunds
    assert f'action="{path}/refunds"' not in page
    token = await csrf_of(client, path)
    forced = await send(
        client, f"{path}/refunds", {"csrf": token, "idempotency_key": "dash_forced"}
    )
    assert forced.status == 403
    assert 'role="alert"' in await forced.text()  # the API's refusal, above the page
    assert len(store(world).transfers) == 1


async def test_an_underpaid_invoice_is_extended_then_accepted_from_its_page(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    invoice_id = await underpaid_invoice(client, world, amount="10", paid="4")
    path = f"/dashboard/invoices/{invoice_id}"
    page = await page_of(client, path)
    assert 'id="resolve-heading">Resolve the underpayment</h2>' in page
    assert "The customer sent 4 of 10 USDT" in page
    for action in ("accept", "refund", "extend"):
        assert form_of(page, f"{path}/resolve", action)["idempotency_key"].startswith("dash_")
    keys = {form_of(page, f"{path}/resolve", a)["idempotency_key"] for a in ("accept", "extend")}
    assert len(keys) == 2  # one key per form: one decision never stands in for another

    wrong = await send(client, f"{path}/resolve", form_of(page, f"{path}/resolve", "extend"))
    assert wrong.status == 400
    assert "Give the minutes to extend by." in await wrong.text()
    too_long = await send(
        client, f"{path}/resolve", form_of(page, f"{path}/resolve", "extend"), minutes="20000"
    )
    assert too_long.status == 400
    assert "from 60 to 604800 seconds (the minutes given × 60)" in await too_long.text()

    before = await (await client.get(f"/api/v1/invoices/{invoice_id}", headers=SHOP)).json()
    extended = await send(
        client, f"{path}/resolve", form_of(page, f"{path}/resolve", "extend"), minutes="90"
    )
    assert extended.status == 303, await extended.text()
    assert extended.headers["Location"] == f"{path}?notice=resolved_extend"
    after = await (await client.get(f"/api/v1/invoices/{invoice_id}", headers=SHOP)).json()
    assert after["resolution"] == "extend" and after["expires_at"] > before["expires_at"]
    page = await page_of(client, extended.headers["Location"])
    assert "open again until its new deadline" in page
    assert '<dd id="resolution">extended</dd>' in page
    assert 'id="resolve-heading"' in page  # still underpaid: it may still be accepted

    accepted = await send(client, f"{path}/resolve", form_of(page, f"{path}/resolve", "accept"))
    assert accepted.headers["Location"] == f"{path}?notice=resolved_accept"
    invoice = await (await client.get(f"/api/v1/invoices/{invoice_id}", headers=SHOP)).json()
    assert (invoice["status"], invoice["resolution"]) == ("paid", "accept")
    page = await page_of(client, path)
    assert '<dd id="resolution">accepted for what was received</dd>' in page
    assert 'id="resolve-heading"' not in page

    # Once decided, the API refuses another decision; its words are shown above the forms.
    csrf = form_of(page, f"{path}/refunds")["csrf"]
    again = await send(client, f"{path}/resolve", {"csrf": csrf}, action="accept")
    assert again.status == 422
    assert 'role="alert"' in await again.text()


async def test_an_underpaid_invoice_refunded_is_closed_and_says_so(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    invoice_id = await underpaid_invoice(client, world, amount="10", paid="4")
    path = f"/dashboard/invoices/{invoice_id}"
    page = await page_of(client, path)
    refunded = await send(client, f"{path}/resolve", form_of(page, f"{path}/resolve", "refund"))
    assert refunded.headers["Location"] == f"{path}?notice=resolved_refund", await refunded.text()
    invoice = await (await client.get(f"/api/v1/invoices/{invoice_id}", headers=SHOP)).json()
    assert (invoice["status"], invoice["resolution"]) == ("expired", "refund")
    page = await page_of(client, refunded.headers["Location"])
    assert "Everything received goes back to the customer" in page
    assert '<dd id="resolution">what was received is refunded</dd>' in page
    assert 'id="resolve-heading"' not in page and f'action="{path}/refunds"' not in page


async def test_a_payout_is_requested_once_listed_cancelled_and_the_balance_follows(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    await paid_invoice(client, world, amount="100", paid="100")  # 99 net
    balance_of(world)
    page = await page_of(client, "/dashboard/balance")
    assert '<a href="/dashboard/payouts" id="to-payouts">' in page
    assert '<a href="/dashboard/payouts" >Payouts</a>' in page  # in the navigation

    page = await page_of(client, "/dashboard/payouts")
    assert '<span class="figure" id="available">99 USDT</span>' in page
    assert "No payout yet." in page and "No schedule" in page
    form = form_of(page, "/dashboard/payouts")
    for _ in range(2):
        sent = await send(client, "/dashboard/payouts", form, amount="40", address=CUSTOMER)
        assert sent.headers["Location"] == "/dashboard/payouts?notice=payout_requested"
    (payout,) = store(world).transfers.values()
    assert (payout.amount, payout.to_address, payout.stage) == (
        usdt("40"), CUSTOMER, Stage.APPROVED,
    )  # fmt: skip
    balance_of(world)
    page = await page_of(client, "/dashboard/payouts?notice=payout_requested")
    assert '<span class="figure" id="available">59 USDT</span>' in page
    assert '<span class="figure" id="outgoing">40 USDT</span>' in page
    row = re.search(rf'<tr data-payout-id="{payout.transfer_id}">(.*?)</tr>', page, re.S)
    assert row and '<span class="badge approved">approved</span>' in row.group(1)
    assert f'aria-label="Cancel payout {payout.transfer_id} of 40 USDT"' in row.group(1)

    refused = await send(
        client, "/dashboard/payouts", form_of(page, "/dashboard/payouts"),
        amount="60", address=CUSTOMER,
    )  # fmt: skip
    assert refused.status == 422
    text = await refused.text()
    assert 'role="alert"' in text and text.index('role="alert"') < text.index("payouts-heading")

    cancelled = await send(
        client, f"/dashboard/payouts/{payout.transfer_id}/cancel", {"csrf": form["csrf"]}
    )
    assert cancelled.headers["Location"] == "/dashboard/payouts?notice=payout_cancelled"
    assert store(world).transfers[payout.transfer_id].stage is Stage.CANCELLED
    assert store(world).balance("merchant:mer_shop") == usdt("99")
    page = await page_of(client, cancelled.headers["Location"])
    assert '<span class="badge cancelled">cancelled</span>' in page
    assert f"/dashboard/payouts/{payout.transfer_id}/cancel" not in page


async def test_payouts_are_listed_page_by_page_with_their_transactions(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world, role="viewer")
    await paid_invoice(client, world, amount="100", paid="100")
    for number in range(27):
        response = await client.post(
            "/api/v1/payouts",
            json={"amount": "1", "address": CUSTOMER},
            headers={**SHOP, "Idempotency-Key": f"many-{number}"},
        )
        assert response.status == 201
    oldest = min(store(world).transfers.values(), key=lambda t: (t.created_at, t.transfer_id))
    store(world).transfers[oldest.transfer_id] = dataclasses.replace(
        oldest, stage=Stage.CONFIRMED, attempt=Attempt(1, TX_HASH, {}, "", 0),
        broadcast_accepted=True,
    )  # fmt: skip
    page = await page_of(client, "/dashboard/payouts")
    assert page.count("<tr data-payout-id=") == 25
    assert oldest.transfer_id not in page
    # A viewer reads payouts but requests, cancels and schedules none.
    assert 'action="/dashboard/payouts"' not in page and "Cancel</button>" not in page
    assert 'action="/dashboard/payout-schedule"' not in page
    older = re.search(r'<a href="(/dashboard/payouts\?cursor=[^"]+)" rel="next">', page)
    assert older, page
    rest = await page_of(client, html.unescape(older.group(1)))
    assert rest.count("<tr data-payout-id=") == 2
    assert '<span class="badge confirmed">confirmed</span>' in rest and TX_HASH in rest
    assert 'rel="next"' not in rest

    token = await csrf_of(client, "/dashboard/payouts")
    forced = await send(
        client, "/dashboard/payouts", {"csrf": token, "idempotency_key": "dash_viewer"},
        amount="1", address=CUSTOMER,
    )  # fmt: skip
    assert forced.status == 403
    assert len(store(world).transfers) == 27


async def test_the_payout_schedule_is_set_shown_refused_and_deleted(
    client: TestClient, world: MemoryWorld
) -> None:
    await sign_in(client, world)
    page = await page_of(client, "/dashboard/payouts")
    csrf = form_of(page, "/dashboard/payout-schedule")["csrf"]
    saved = await send(
        client, "/dashboard/payout-schedule", {"csrf": csrf},
        frequency="weekly", weekday="friday", hour="17", address=CUSTOMER,
        minimum_amount="50", keep_amount="100",
    )  # fmt: skip
    assert saved.headers["Location"] == "/dashboard/payouts?notice=schedule_saved"
    schedule = await (await client.get("/api/v1/payout-schedule", headers=SHOP)).json()
    assert (schedule["weekday"], schedule["hour"]) == ("friday", 17)
    assert (schedule["minimum_amount"], schedule["keep_amount"]) == ("50", "100")
    page = await page_of(client, saved.headers["Location"])
    assert "Every Friday from 17:00 UTC, your available balance less 100 USDT kept" in page
    assert '<option value="friday" selected>' in page

    # Daily: the weekday of the form is not sent; blank amounts take the API's defaults.
    daily = await send(
        client, "/dashboard/payout-schedule", {"csrf": csrf},
        frequency="daily", weekday="monday", hour="3", address=CUSTOMER,
        minimum_amount="", keep_amount="",
    )  # fmt: skip
    assert daily.status == 303, await daily.text()
    schedule = await (await client.get("/api/v1/payout-schedule", headers=SHOP)).json()
    assert (schedule["weekday"], schedule["hour"], schedule["keep_amount"]) == (None, 3, "0")

    refused = await send(
        client, "/dashboard/payout-schedule", {"csrf": csrf},
        frequency="daily", hour="3", address="T" + "1" * 33,
    )  # fmt: skip
    assert refused.status == 400
    text = await refused.text()
    assert 'role="alert"' in text and "address" in text
    assert text.index('role="alert"') > text.index('id="schedule-heading"')

    deleted = await send(client, "/dashboard/payout-schedule/delete", {"csrf": csrf})
    assert deleted.headers["Location"] == "/dashboard/payouts?notice=schedule_deleted"
    assert (await client.get("/api/v1/payout-schedule", headers=SHOP)).status == 404
    assert "No schedule" in await page_of(client, deleted.headers["Location"])


async def test_the_admin_approves_a_payout_waiting_above_the_threshold(
    client: TestClient, world: MemoryWorld
) -> None:
    await paid_invoice(client, world, amount="2000", paid="2000")
    response = await client.post(
        "/api/v1/payouts",
        json={"amount": "1500", "address": CUSTOMER},
        headers={**SHOP, "Idempotency-Key": "big"},
    )
    payout = await response.json()
    assert payout["status"] == "requested"

    await sign_in(client, world)
    page = await page_of(client, "/dashboard/payouts")
    assert "waits for the platform's approval" in page
    merchant_view = await client.get("/dashboard/admin/payouts")
    assert merchant_view.status == 403

    client.session.cookie_jar.clear()
    await add_user(world, "admin@platform.example", "admin", None)
    token = await csrf_of(client)
    signed_in = await client.post(
        "/dashboard/login",
        data={"csrf": token, "email": "admin@platform.example", "password": PASSWORD},
        allow_redirects=False,
    )
    assert signed_in.status == 303
    page = await page_of(client, "/dashboard/admin/payouts")
    assert '<a href="/dashboard/admin/payouts" aria-current="page">Payouts</a>' in page
    row = re.search(rf'<tr data-payout-id="{payout["id"]}">(.*?)</tr>', page, re.S)
    assert row and "mer_shop" in row.group(1) and "1500 USDT" in row.group(1)
    approved = await send(
        client,
        f"/dashboard/admin/payouts/{payout['id']}/approve",
        form_of(page, f"/dashboard/admin/payouts/{payout['id']}/approve"),
    )
    assert approved.headers["Location"] == "/dashboard/admin/payouts?notice=payout_approved"
    assert store(world).transfers[payout["id"]].stage is Stage.APPROVED
    page = await page_of(client, approved.headers["Location"])
    assert "No payout is waiting." in page and "Payout approved" in page
