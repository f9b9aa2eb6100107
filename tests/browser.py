"""Headless Chromium for the inbox's browser tests, driven by Selenium.

Uses the system's browser and driver (Debian: `apt-get install chromium chromium-driver`;
`make test` installs them when it runs as root on Debian/Ubuntu); nothing is downloaded at
run time. Without them the browser tests are skipped with that hint, except under CI
(`CI` set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
HOW = "install Chromium and its driver: sudo apt-get install chromium chromium-driver"


def _find(names: tuple[str, ...], extra: tuple[str, ...] = ()) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return next((p for p in extra if os.access(p, os.X_OK)), None)


@pytest.fixture(scope="session")
def chrome() -> Iterator[Any]:
    """One headless Chromium per test process; each test starts on a blank page."""
    browser = _find(BROWSERS)
    driver_path = _find(DRIVERS, ("/usr/lib/chromium/chromedriver",))
    if browser is None or driver_path is None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests need Chromium: {HOW}")
        pytest.skip(f"no Chromium found: {HOW}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in containers has no user namespaces for Chromium's sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--no-first-run",
        "--no-proxy-server",  # loopback only, never a proxy from the environment
        "--disable-background-networking",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chrome: Any) -> Any:
    chrome.switch_to.default_content()
    yield chrome
    chrome.get("about:blank")
