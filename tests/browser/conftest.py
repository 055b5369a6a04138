"""The browser tier: Debian's Chromium, headless, driven by Selenium 4 through chromedriver,
against the whole platform (tests/support/platform.py). `make test-browser` installs Chromium.

Screenshots are written to ``.local/screenshots/``; with ``UPDATE_SCREENSHOTS=1`` to
``docs/screenshots/`` as well, where the README and the docs show them.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.support.platform import Platform, running_platform
from tests.support.processes import REPO_ROOT

DESKTOP = (1280, 900)
PHONE = (360, 780)
SHOTS = REPO_ROOT / ".local" / "screenshots"
DOCS_SHOTS = REPO_ROOT / "docs" / "screenshots"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            "Chromium or chromedriver is missing: run `scripts/infra.sh up browser` "
            "(make test-browser does this)",
            pytrace=False,
        )
    return browser, driver


@pytest.fixture(scope="session")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture
def new_browser(downloads: Path) -> Iterator[Callable[..., WebDriver]]:
    """Opens headless Chromium windows (desktop size unless told); all closed after the test."""
    browser, driver = _chromium()
    opened: list[WebDriver] = []

    def open_window(size: tuple[int, int] = DESKTOP, *, script: str | None = None) -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for argument in (
            "--headless=new",
            "--no-sandbox",  # root in CI: Chromium's sandbox refuses to run as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--window-size={size[0]},{size[1]}",
        ):
            options.add_argument(argument)
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
        window = webdriver.Chrome(service=Service(driver), options=options)
        opened.append(window)
        window.set_page_load_timeout(30)
        window.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        if size[0] < 500:
            # Headless Chromium's windows are at least 500 px wide: a phone is emulated.
            _emulate(window, size[0], size[1])
        if script:
            # Runs before the page's own scripts on every document (CSP does not apply to it).
            window.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
        return window

    yield open_window
    for window in opened:
        window.quit()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("browser"), workers=1) as running:
        yield running


def _emulate(window: WebDriver, width: int, height: int) -> None:
    window.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
    )
    window.emulated_width = width  # type: ignore[attr-defined]


def screenshot(window: WebDriver, name: str) -> Path:
    """A full-page screenshot as ``name``.png (the page's whole height at the window's width)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = max(int(window.execute_script("return document.documentElement.scrollHeight")), 400)
    emulated = getattr(window, "emulated_width", None)
    if emulated:
        _emulate(window, emulated, height)
    else:
        window.set_window_size(window.get_window_size()["width"], height + 120)
    path = SHOTS / f"{name}.png"
    window.save_screenshot(str(path))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / path.name)
    return path


def read_qr(element: WebElement) -> str:
    """The text of the QR code shown in ``element``, read back from its pixels."""
    image = Image.open(io.BytesIO(element.screenshot_as_png)).convert("L")
    found = zxingcpp.read_barcodes(image)
    assert found, "no QR code could be read from the screenshot"
    return str(found[0].text)
