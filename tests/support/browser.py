"""Real Chromium driven by selenium: the session the browser tests share, and what they check of every page.

:func:`chromium` starts Debian's ``chromium`` through ``chromium-driver`` (skipping, or failing under
``SDM_REQUIRE_CHROMIUM=1``, when either is missing) with flags that keep it off the network, and yields a
:class:`Browser` that records every request URL and console error, page by page.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import require_tool

DESKTOP = (1366, 900)
PHONE = (390, 844)
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions", "--no-default-browser-check", "--hide-scrollbars", "--force-color-profile=srgb",
    f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
)  # fmt: skip
PAGE_TIMEOUT_S = 30
BROWSER_SCHEMES = ("data", "blob", "about", "chrome", "chrome-untrusted")  # answered inside the browser


@dataclass
class Browser:
    """A Chromium session that records, page by page, every request URL and every console error."""

    driver: webdriver.Chrome
    base_url: str
    requested: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)

    def open(self, path_or_url: str) -> None:
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        self.driver.get(url)
        WebDriverWait(self.driver, PAGE_TIMEOUT_S).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        self.collect()

    def collect(self) -> None:
        """Drain the performance and browser logs into ``requested`` and ``console_errors``."""
        performance: list[dict[str, Any]] = self.driver.get_log("performance")  # type: ignore[no-untyped-call]
        for entry in performance:
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
        console: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        for entry in console:
            if entry["level"] == "SEVERE":
                self.console_errors.append((self.driver.current_url, entry["message"]))

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def screenshot(self, path: Path) -> None:
        assert self.driver.save_screenshot(str(path)), path
        assert 0 < path.stat().st_size < 300_000, f"{path.name}: {path.stat().st_size} bytes"


@contextlib.contextmanager
def chromium(base_url: str, profile: Path, extra_flags: Sequence[str] = ()) -> Iterator[Browser]:
    """A headless Chromium session on ``base_url`` with its profile under ``profile``; quit on exit."""
    driver_path = require_tool("chromedriver", "SDM_REQUIRE_CHROMIUM", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = require_tool("chromium", "SDM_REQUIRE_CHROMIUM", "chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile / 'chromium'}", *extra_flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield Browser(driver, base_url)
    finally:
        driver.quit()


def is_loopback(url: str) -> bool:
    """Whether a request for ``url`` stays on this machine: a network URL (http, https, ws, wss) to a loopback
    address, or a URL the browser answers itself (``data:``, and ``chrome://`` for its own start page)."""
    parts = urlsplit(url)
    if parts.scheme in BROWSER_SCHEMES:
        return True
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return False
    try:
        return parts.hostname is not None and ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def classes(element: WebElement) -> set[str]:
    return set((element.get_attribute("class") or "").split())
