"""Money out in the dashboard, in Chromium on a phone-sized screen, against the whole platform
with the signer: an overpayment refunded from the invoice page and followed to its block, a
payout requested and paid, a payout schedule set; an underpaid invoice accepted on a desktop."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from tronpy.keys import to_base58check_address

from app.adapters.tron.settings import DEV_HOT_WALLET
from tests.browser.conftest import PHONE, screenshot
from tests.browser.test_dashboard import add_user, sign_in, wait
from tests.support.platform import Platform, running_platform
from tests.support.processes import REPO_ROOT, VENV_BIN, ManagedProcess, eventually

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("infrastructure")]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One worker, the signer in its own process, a funded hot wallet; payouts leave at once."""
    data = tmp_path_factory.mktemp("browser-money-out")
    overrides = {"PAYOUT_BATCH_SECONDS": "0", "MONEY_OUT_INTERVAL": "0.3"}
    with running_platform(data, workers=1, **overrides) as running:
        signer = ManagedProcess(
            "signer",
            [str(VENV_BIN / "checkout"), "signer"],
            {**running.env, "SIGNER_LOG_FILE": str(data / "signed.jsonl")},
            REPO_ROOT,
        )
        try:
            running.sim.post(
                "/sim/fund", {"address": DEV_HOT_WALLET, "trx": "10000", "usdt": "100000"}
            )
            yield running
        finally:
            signer.stop()


def api(platform: Platform, path: str) -> Any:
    response = httpx.get(f"{platform.url}{path}", headers=platform.headers(), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def follow(platform: Platform, path: str, timeout: float = 90) -> dict[str, Any]:
    """Mine blocks until the refund or payout at ``path`` is confirmed: one block while it is
    built or signed (the transaction lives 60 s from the head), 19 once in a block (solid)."""

    def probe() -> dict[str, Any] | None:
        body = dict(api(platform, path))
        if body["status"] == "confirmed":
            return body
        assert body["status"] != "failed", body
        platform.sim.mine(19 if body["block_number"] is not None else 1)
        return None

    return eventually(probe, timeout=timeout, what=f"{path} to be confirmed", every=0.3)


# What reaches past the screen's right edge: outside a horizontally scrolled table, or positioned
# (visually hidden text escapes the table's scrolling unless .scroll is positioned).
_TOO_WIDE = """
return Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > arguments[0] + 0.5
          && (!e.parentElement.closest('.scroll') || getComputedStyle(e).position === 'absolute'))
  .map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''));
"""


def fits_the_phone(window: WebDriver) -> None:
    width = window.execute_script("return document.documentElement.scrollWidth")
    too_wide = window.execute_script(_TOO_WIDE, PHONE[0])
    assert width <= PHONE[0], f"the page is {width} px wide on a {PHONE[0]} px screen: {too_wide}"


def submit(window: WebDriver, button_id: str, notice: str) -> None:
    window.find_element(By.ID, button_id).click()
    wait(window, lambda w: notice in w.find_element(By.CSS_SELECTOR, "main").text, notice)


def test_a_merchant_refunds_an_overpayment_and_pays_out_from_a_phone(
    platform: Platform, new_browser: Callable[..., WebDriver]
) -> None:
    owner = f"owner-{platform.namespace}@shop.example"
    add_user(platform, owner, "owner")
    invoice = platform.create_invoice("10", description="Teapot", order_id="T-1")
    platform.pay_and_confirm(invoice, "12")
    platform.wait_settlement(invoice["id"])

    phone = new_browser(PHONE)
    sign_in(phone, platform, owner)
    phone.get(f"{platform.url}/dashboard/invoices/{invoice['id']}")
    assert "the overpayment, 2 USDT" in phone.find_element(By.ID, "refund-help").text
    submit(phone, "refund-submit", "Refund requested")
    (refund,) = api(platform, f"/api/v1/invoices/{invoice['id']}/refunds")["data"]
    assert refund["amount"] == "2"  # pending, or broadcast already: the signer is quick
    row = phone.find_element(By.CSS_SELECTOR, f'tr[data-refund-id="{refund["id"]}"]')
    assert "2 USDT" in row.text and refund["address"] in row.text

    confirmed = follow(platform, f"/api/v1/refunds/{refund['id']}")
    phone.get(f"{platform.url}/dashboard/invoices/{invoice['id']}")
    row = phone.find_element(By.CSS_SELECTOR, f'tr[data-refund-id="{refund["id"]}"]')
    assert "confirmed" in row.find_element(By.CSS_SELECTOR, ".badge").text
    assert confirmed["tx_hash"] in row.text
    fits_the_phone(phone)
    screenshot(phone, "dashboard-refund-phone")

    # The balance page leads to Payouts; a payout below the threshold is approved at once.
    phone = new_browser(PHONE)  # a fresh window: its screenshot is as tall as its own page
    sign_in(phone, platform, owner)
    phone.get(f"{platform.url}/dashboard/balance")
    phone.find_element(By.ID, "to-payouts").click()
    wait(phone, lambda w: w.find_element(By.TAG_NAME, "h1").text == "Payouts", "Payouts")
    available = phone.find_element(By.ID, "available").text
    assert available.endswith(" USDT")
    payee = str(to_base58check_address(b"\x41" + os.urandom(20)))
    phone.find_element(By.ID, "payout-amount").send_keys("5")
    phone.find_element(By.ID, "payout-address").send_keys(payee)
    submit(phone, "payout-submit", "Payout requested")
    (payout,) = api(platform, "/api/v1/payouts")["data"]
    assert (payout["amount"], payout["address"], payout["approval"]) == ("5", payee, "automatic")
    row = phone.find_element(By.CSS_SELECTOR, f'tr[data-payout-id="{payout["id"]}"]')
    assert "5 USDT" in row.text
    paid = follow(platform, f"/api/v1/payouts/{payout['id']}")

    Select(phone.find_element(By.ID, "schedule-frequency")).select_by_value("weekly")
    Select(phone.find_element(By.ID, "schedule-weekday")).select_by_value("friday")
    Select(phone.find_element(By.ID, "schedule-hour")).select_by_value("17")
    phone.find_element(By.ID, "schedule-address").send_keys(payee)
    phone.find_element(By.ID, "schedule-keep").send_keys("50")
    phone.find_element(By.CSS_SELECTOR, "form[action='/dashboard/payout-schedule'] button").click()
    wait(phone, lambda w: "Payout schedule saved" in w.page_source, "the schedule to be saved")
    assert "Every Friday from 17:00 UTC" in phone.find_element(By.ID, "schedule-now").text
    row = phone.find_element(By.CSS_SELECTOR, f'tr[data-payout-id="{payout["id"]}"]')
    assert "confirmed" in row.text and paid["tx_hash"] in row.text
    fits_the_phone(phone)
    screenshot(phone, "dashboard-payouts-phone")


def test_an_underpaid_invoice_is_accepted_for_what_was_received(
    platform: Platform, new_browser: Callable[..., WebDriver]
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}-{platform.namespace}@shop.example"
    add_user(platform, owner, "owner")
    invoice = platform.create_invoice("10", description="Two mugs", order_id="U-1")
    platform.pay_and_confirm(invoice, "4")
    platform.wait_invoice(
        invoice["id"],
        lambda found: (found["payment_exception"], found["amount_confirmed"]) == ("underpaid", "4"),
        "the underpayment to be confirmed",
    )
    window = new_browser()
    sign_in(window, platform, owner)
    window.get(f"{platform.url}/dashboard/invoices/{invoice['id']}")
    assert "The customer sent 4 of 10 USDT" in window.find_element(By.ID, "resolve").text
    screenshot(window, "dashboard-resolve-desktop")
    window.find_element(By.ID, "resolve-accept").click()
    wait(window, lambda w: "Accepted: the invoice is paid" in w.page_source, "the acceptance")
    assert window.find_element(By.ID, "resolution").text == "accepted for what was received"
    found = platform.wait_invoice(invoice["id"], lambda i: i["status"] == "paid", "paid")
    assert found["resolution"] == "accept"
    assert not window.find_elements(By.ID, "resolve")
