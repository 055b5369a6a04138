"""The payment page in Chromium while the simulator mines the customer's transfer: live over
WebSocket, over SSE when WebSocket is unavailable, by polling when both are; the QR codes read
back from the screen; the receipt once paid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import PHONE, read_qr, screenshot
from tests.support.platform import Platform
from tests.support.processes import eventually

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("infrastructure")]

NO_WEBSOCKET = "window.WebSocket = undefined;"
NO_EVENTSOURCE = "window.EventSource = undefined;"


def open_invoice(platform: Platform, amount: str, **fields: Any) -> dict[str, Any]:
    invoice = platform.create_invoice(amount, **fields)
    eventually(
        lambda: platform.public(invoice["id"]).status_code == 200,
        timeout=30,
        what="the invoice's public view",
    )
    return invoice


def text_of(window: WebDriver, element_id: str) -> str:
    return str(window.find_element(By.ID, element_id).text)


def wait_text(window: WebDriver, element_id: str, expected: str, timeout: float = 60) -> None:
    WebDriverWait(window, timeout, poll_frequency=0.2).until(
        lambda w: expected in text_of(w, element_id),
        message=f"#{element_id} never showed {expected!r}",
    )


def test_the_page_goes_pending_confirming_paid_live_with_both_qr_codes(
    platform: Platform, new_browser: Callable[..., WebDriver]
) -> None:
    invoice = open_invoice(
        platform,
        "150",
        description="Espresso machine",
        order_id="A-1001",
        redirect_url="https://shop.example/orders/{order_id}/thanks",
    )
    address = invoice["deposit_address"]
    window = new_browser()
    window.get(f"{platform.url}/pay/{invoice['id']}")
    wait_text(window, "live-mode", "live")
    assert text_of(window, "status-title") == "Waiting for your payment"
    assert text_of(window, "amount-out") == "150"
    contract = window.execute_script(
        "return JSON.parse(document.getElementById('invoice-data').textContent).token_contract"
    )
    assert read_qr(window.find_element(By.ID, "qr-uri")) == (
        f"tron:{address}?amount=150&token={contract}"
    )
    screenshot(window, "payment-page-pending-desktop")
    window.find_element(By.ID, "qr-toggle").click()
    assert not window.find_element(By.ID, "qr-uri").is_displayed()
    assert not window.find_element(By.ID, "shop-link").is_displayed()  # not before it is final
    assert read_qr(window.find_element(By.ID, "qr-address")) == address
    window.find_element(By.ID, "qr-toggle").click()

    phone = new_browser(PHONE)
    phone.get(f"{platform.url}/pay/{invoice['id']}")
    wait_text(phone, "live-mode", "live")
    assert phone.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
    screenshot(phone, "payment-page-pending-phone")

    tx_hash = platform.sim.pay(address, "150")
    platform.sim.mine(1)
    wait_text(window, "status-title", "Confirming your payment")
    assert "of 12 confirmations" in text_of(window, "status-text")
    platform.sim.mine(12)
    wait_text(window, "status-title", "Paid")
    wait_text(phone, "status-title", "Paid")
    receipt = window.find_element(By.ID, "receipt")
    assert receipt.is_displayed()
    assert tx_hash in text_of(window, "receipt-txs")
    assert text_of(window, "receipt-amount") == "150 USDT"
    assert not window.find_element(By.ID, "pay-instructions").is_displayed()
    back = window.find_element(By.ID, "shop-link")
    assert back.is_displayed() and back.text == "Back to the shop"
    assert back.get_attribute("href") == "https://shop.example/orders/A-1001/thanks"
    # No fee anywhere on the customer's page; the random ids and hashes it shows may spell one.
    page = window.page_source
    for random_text in (invoice["id"], address, tx_hash, "coffee"):
        page = page.replace(random_text, "")
    assert "fee" not in page.lower()
    screenshot(window, "payment-page-paid-desktop")
    screenshot(phone, "payment-page-paid-phone")


@pytest.mark.parametrize(
    ("blocked", "mode"),
    [(NO_WEBSOCKET, "live (SSE)"), (NO_WEBSOCKET + NO_EVENTSOURCE, "checking every 5 s")],
    ids=["websocket-blocked-sse", "both-blocked-polling"],
)
def test_without_websocket_the_page_still_updates(
    platform: Platform, new_browser: Callable[..., WebDriver], blocked: str, mode: str
) -> None:
    invoice = open_invoice(platform, "7.5")
    window = new_browser(script=blocked)
    window.get(f"{platform.url}/pay/{invoice['id']}")
    wait_text(window, "live-mode", mode)
    platform.pay_and_confirm(invoice, "7.5")
    wait_text(window, "status-title", "Paid")
    assert "Thank you: 7.5 USDT received and confirmed." in text_of(window, "status-text")


def test_past_its_time_the_page_says_the_network_is_checked_until_the_chain_expires_it(
    platform: Platform, new_browser: Callable[..., WebDriver]
) -> None:
    # Expiry waits for the chain: no block is mined after the deadline, so the invoice stays
    # open and the customer is told the network is being checked, not that it expired.
    invoice = open_invoice(platform, "5", expires_in=10)
    window = new_browser()
    window.get(f"{platform.url}/pay/{invoice['id']}")
    wait_text(window, "live-mode", "live")
    wait_text(window, "status-title", "Time is up", timeout=30)
    assert "Checking the Tron network for a payment sent in time." in text_of(window, "status-text")
    # Nothing invites a payment after the deadline: no amount, no address, no QR code.
    assert not window.find_element(By.ID, "pay-instructions").is_displayed()
    assert platform.invoice(invoice["id"])["status"] == "pending"
    screenshot(window, "payment-page-checking-the-network")

    platform.wait_expired(invoice)  # a block past the deadline: now it expires
    wait_text(window, "status-title", "Expired")
