"""A new merchant signs up in Chromium, receives the confirmation email on the local SMTP
server, follows its link, confirms, signs in and creates the first API key."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import PHONE, screenshot
from tests.integration.access.test_signup_email import received_by, text_of
from tests.support.platform import Platform, running_platform
from tests.support.processes import eventually

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("infrastructure")]

PASSWORD = "a sign-up password of some length"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("signup-browser"), workers=1, SIGNUP_MODE="open"
    ) as running:
        yield running


def test_sign_up_confirm_from_the_email_and_create_the_first_key(
    platform: Platform, new_browser: Callable[..., WebDriver]
) -> None:
    email = f"owner-{uuid.uuid4().hex[:8]}@mugs.example"
    phone = new_browser(PHONE)
    phone.get(f"{platform.url}/dashboard/login")
    phone.find_element(By.LINK_TEXT, "Create a merchant account").click()
    WebDriverWait(phone, 30).until(lambda w: w.find_element(By.ID, "business_name")).send_keys(
        "Mug & Co"
    )
    phone.find_element(By.ID, "email").send_keys(email)
    phone.find_element(By.ID, "password").send_keys(PASSWORD)
    assert phone.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
    screenshot(phone, "dashboard-signup-phone")
    phone.find_element(By.CSS_SELECTOR, "form button.primary").click()
    WebDriverWait(phone, 30).until(lambda w: "Check your email" in w.page_source)

    message = eventually(lambda: received_by(email), timeout=15, what=f"the email to {email}")
    link = re.search(r"http://\S+/dashboard/verify\?token=\S+", text_of(message))
    assert link
    # The link points at PUBLIC_URL; this test's worker listens on another port.
    parts = urlsplit(link.group(0))
    window = new_browser()
    window.get(f"{platform.url}{parts.path}?{parts.query}")
    window.find_element(By.ID, "confirm-email").click()
    WebDriverWait(window, 30).until(lambda w: "Your email address is confirmed" in w.page_source)

    window.find_element(By.ID, "email").send_keys(email)
    window.find_element(By.ID, "password").send_keys(PASSWORD)
    window.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(window, 30).until(lambda w: "/dashboard/login" not in w.current_url)
    window.get(f"{platform.url}/dashboard/keys")
    window.find_element(By.ID, "key-name").send_keys("shop backend")
    window.find_element(By.CSS_SELECTOR, "form[action='/dashboard/keys'] button.primary").click()
    shown = WebDriverWait(window, 30).until(
        lambda w: w.find_element(By.ID, "secret-value"), "the new key's secret"
    )
    assert shown.text.startswith("ck_")
