"""The dashboard's Notifications page in Chromium against the whole platform: a merchant user
ticks a notice, saves and finds it ticked after a reload (and in the API), then asks for a
Telegram link and gets the deep link and the /start command; the page fits a phone."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import PHONE, screenshot
from tests.browser.test_dashboard import PASSWORD, add_user, sign_in, wait
from tests.browser.test_dashboard_money_out import fits_the_phone
from tests.support.platform import Platform, running_platform

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("infrastructure")]

BOT = "checkout_test_bot"
SHOT_FOR_REVIEW = Path("/tmp/dashboard-notifications.png")  # where a reviewer looks at it


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One worker that knows its Telegram bot's name (no bot runs): links open Telegram."""
    data = tmp_path_factory.mktemp("browser-notifications")
    with running_platform(data, workers=1, TELEGRAM_BOT_USERNAME=BOT) as running:
        yield running


def preferences_by_api(platform: Platform, email: str) -> dict[str, object]:
    login = httpx.post(
        f"{platform.url}/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    answer = httpx.get(
        f"{platform.url}/api/v1/notification-preferences",
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_merchant_chooses_a_notice_and_links_telegram(
    platform: Platform, new_browser: Callable[..., WebDriver], tmp_path: Path
) -> None:
    owner = f"owner-{platform.namespace}@shop.example"
    add_user(platform, owner, "owner")
    window = new_browser()
    sign_in(window, platform, owner)
    window.find_element(By.LINK_TEXT, "Notifications").click()
    wait(window, lambda w: w.find_element(By.TAG_NAME, "h1").text == "Notifications",
         "the Notifications page")  # fmt: skip

    invoice_paid = window.find_element(By.ID, "email-invoice_paid")
    assert not invoice_paid.is_selected()  # not among the defaults
    assert window.find_element(By.ID, "email-payout_finished").is_selected()
    invoice_paid.click()
    window.find_element(By.ID, "save-notifications").click()
    wait(window, lambda w: "settings saved." in w.find_element(By.TAG_NAME, "main").text,
         "the settings to be saved")  # fmt: skip
    window.refresh()
    assert window.find_element(By.ID, "email-invoice_paid").is_selected()
    assert window.find_element(By.ID, "email-payout_finished").is_selected()
    assert "invoice_paid" in preferences_by_api(platform, owner)["email"]  # type: ignore[operator]

    window.find_element(By.ID, "link-telegram").click()
    wait(window, lambda w: w.find_element(By.ID, "telegram-command").text.startswith("/start "),
         "the /start command")  # fmt: skip
    token = window.find_element(By.ID, "telegram-command").text.removeprefix("/start ")
    deep_link = window.find_element(By.ID, "telegram-deep-link")
    assert deep_link.text == "Open in Telegram"
    assert deep_link.get_attribute("href") == f"https://t.me/{BOT}?start={token}"
    assert "It works once, for 30 minutes" in window.find_element(By.ID, "telegram-link").text
    shot = screenshot(window, "dashboard-notifications-desktop")
    shutil.copyfile(shot, tmp_path / "dashboard-notifications.png")
    shutil.copyfile(shot, SHOT_FOR_REVIEW)

    phone = new_browser(PHONE)
    sign_in(phone, platform, owner)
    phone.get(f"{platform.url}/dashboard/notifications")
    assert phone.find_element(By.ID, "email-invoice_paid").is_selected()
    fits_the_phone(phone)
