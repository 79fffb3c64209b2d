"""The web UI in a real Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by selenium) against the
real daemon polling the simulator, with one region's schema changed and a webhook receiving the notification.

It opens every page and checks what an on-call engineer relies on: on the overview the changed region's tile
leads with "breaking" and says it is ahead of the fleet, while the regions that did not change claim no
rollout; the compare page marks the deviating region; the diff is aligned — the removed property's rows face
an empty counterpart, the added enum value alone is highlighted, the table links to the rows, the layout
switches to unified in place and keeps that in the URL; the permalink taken from the delivered notification
opens that change; the consumers page shows the consumer that change broke, its cell leading to the
requirement's evidence. Throughout, Chromium's performance log must show no request leaving loopback and its
console no error (a Content-Security-Policy violation would be one). The overview and the diff must not
scroll sideways at phone width. The overview, the diff and the permalink are screenshot in light, dark and
phone layouts, to ``$SDM_SCREENSHOTS_DIR`` when set (the docs' come from ``SDM_SCREENSHOTS_DIR=docs/screenshots``),
else to a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from monitor.app import run_daemon
from monitor.config import parse_config
from tests.conftest import config_data
from tests.support.browser import PAGE_TIMEOUT_S, PHONE, Browser, chromium, classes, is_loopback
from tests.support.live_api import MIN_DISK, UPLOADER
from tests.support.process import free_port, wait_for
from tests.support.receiver import Receiver
from tests.support.regions import Simulator

pytestmark = pytest.mark.slow

CHANGED = "/properties/images/items/properties/min_disk"  # what mutate_breaking removes (breaking)
ADDED_ENUM = "/properties/images/items/properties/disk_format/enum"  # and where it adds a value (warning)


class Daemon:
    """``run_daemon`` on a thread of its own, as ``schema-drift-monitor run`` would run it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        config = parse_config(data, "test")
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(run_daemon(config, self._stop),),
                                        name="daemon", daemon=True)  # fmt: skip
        self._thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        self.loop.close()


@dataclass
class Setup:
    base_url: str
    simulator: Simulator
    receiver: Receiver
    screenshots: Path


@pytest.fixture
def setup(simulator: Simulator, tmp_path: Path) -> Iterator[Setup]:
    """The daemon (SQLite, 10 s interval, one confirming read) polling every target once, then r1's images
    schema changed and the webhook notification for it delivered."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    receiver = Receiver()
    data = config_data(simulator, f"sqlite:///{tmp_path / 'monitor.db'}", interval="10s", confirm_reads=1)
    data["http"] = {"listen": f"127.0.0.1:{port}"}
    data["ui"] = {"base_url": base_url}
    channel = {"name": "ops", "type": "webhook", "url": receiver.url + "/hook"}
    data["notifications"] = {"grouping_window": "1s", "channels": [channel]}
    data["consumers"] = [UPLOADER]
    daemon = Daemon(data)
    try:
        wait_for(lambda: _all_polled(base_url), timeout=60)
        simulator.mutate("r1")
        wait_for(lambda: _notified_targets(receiver), timeout=60)
        shots = Path(os.environ.get("SDM_SCREENSHOTS_DIR") or tmp_path / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield Setup(base_url, simulator, receiver, shots)
    finally:
        daemon.close()
        receiver.close()


def _all_polled(base_url: str) -> bool:
    try:
        targets = httpx.get(f"{base_url}/api/targets", timeout=5).json()["targets"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return len(targets) == 12 and all(t["snapshot_id"] is not None for t in targets)


def _notified_targets(receiver: Receiver) -> list[dict[str, Any]]:
    return [t for report in receiver.delivered() for t in report["targets"] if t["region"] == "r1"]


@pytest.fixture
def browser(setup: Setup, tmp_path: Path) -> Iterator[Browser]:
    with chromium(setup.base_url, tmp_path) as session:
        yield session


def test_every_page_in_chromium(setup: Setup, browser: Browser) -> None:
    check_overview(setup, browser)
    check_compare(setup, browser)
    check_target(setup, browser)
    check_diffs(setup, browser)
    check_permalink(setup, browser)
    check_consumers(setup, browser)
    browser.collect()
    assert f"{setup.base_url}/ui/static/ui.css" in browser.requested, "the performance log missed the pages"
    assert [url for url in browser.requested if not is_loopback(url)] == []
    assert browser.console_errors == []


def shoot(setup: Setup, browser: Browser, path: str, name: str) -> None:
    """``path`` screenshot as ``<name>.png`` (light, as open now), ``<name>-dark.png`` and ``<name>-phone.png``;
    dark mode must change the colours, and the page must not scroll sideways at phone width."""
    browser.screenshot(setup.screenshots / f"{name}.png")
    light_background = browser.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    dark = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", dark)
    try:
        browser.open(path)
        background = browser.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background != light_background, "prefers-color-scheme: dark changes nothing"
        browser.screenshot(setup.screenshots / f"{name}-dark.png")
    finally:
        browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    phone = {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True}
    browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    try:
        browser.open(path)
        width = browser.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1] == PHONE[0], f"{path} scrolls sideways at phone width: {width}"
        browser.screenshot(setup.screenshots / f"{name}-phone.png")
    finally:
        browser.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def tile_lines(browser: Browser, target: str) -> list[str]:
    """The lines a tile says, in order (its region name first)."""
    tile = browser.find(f'li.tile[data-target="{target}"]')
    return [line.text for line in tile.find_elements(By.CSS_SELECTOR, ".region, .line")]


def check_overview(setup: Setup, browser: Browser) -> None:
    browser.open("/")  # redirects to /ui/
    assert browser.driver.current_url == f"{setup.base_url}/ui/"
    tile = browser.find('li.tile[data-target="sim/r1/images"]')
    # the worst unacknowledged severity leads the tile (unless a slow machine made the target look stale for a
    # moment: then "stale" comes first, after the severity and standing), then the region's standing
    assert "st-ok" not in classes(tile)
    region, lead, standing, *_ = tile_lines(browser, "sim/r1/images")
    assert (region, lead, standing) == ("r1", "‼ breaking", "≠ ahead of the fleet")
    assert "1 breaking, 1 warning unacknowledged" in tile.text
    assert tile.find_element(By.CSS_SELECTOR, ".line.lead").value_of_css_property("font-weight") == "700"
    for unchanged in ("sim/r2/images", "sim/r3/images"):  # r1 moved first: these did not change
        lines = tile_lines(browser, unchanged)
        assert "rollout" not in " ".join(lines).lower() and "= same as reference" in lines, lines
    counts = browser.find(".counts").text.replace("\n", " ")
    assert "targets 12" in counts and "rollout in progress 1" in counts and "breaking 1" in counts

    # The status filter submits itself (ui.js); the deviating target stays undimmed.
    Select(browser.find('select[name="status"]')).select_by_value("deviating")
    WebDriverWait(browser.driver, PAGE_TIMEOUT_S).until(lambda d: "status=deviating" in d.current_url)
    browser.collect()
    shown = browser.driver.find_elements(By.CSS_SELECTOR, "li.tile:not(.dim)")
    assert "sim/r1/images" in [tile.get_attribute("data-target") for tile in shown]
    browser.open("/ui/")
    shoot(setup, browser, "/ui/", "overview")


def check_compare(setup: Setup, browser: Browser) -> None:
    browser.open("/ui/compare/sim/images")
    row = browser.find('tr[data-region="r1"]')
    assert "deviating" in classes(row) and "deviates" in row.text
    assert "matches" in browser.find('tr[data-region="r2"]').text
    assert "★" in browser.find("th.reference").text
    deviation = browser.find("section.deviation")
    assert "r1" in deviation.text and CHANGED in deviation.text.replace("\n", "")
    browser.screenshot(setup.screenshots / "compare.png")


def check_target(setup: Setup, browser: Browser) -> None:
    browser.open("/ui/targets/sim/r1/images")
    assert browser.find("h1").text == "sim/r1/images"
    assert len(browser.driver.find_elements(By.CSS_SELECTOR, ".timeline li")) == 2
    assert CHANGED in browser.find("table.changes").text.replace("\n", "")
    assert "ok" in browser.find('section[aria-label="poll outcomes"]').text
    browser.screenshot(setup.screenshots / "target.png")


ALIGNMENT = """
const diff = document.querySelector('.diff');
const cell = document.getElementById(arguments[0]);
const row = cell.closest('.row');
const enumRows = [...diff.querySelectorAll('.row')].filter(r => r.querySelector('[id^="new-' + arguments[1] + '/"]'));
return {
  removed: [...row.classList],
  counterpart: [...row.querySelector('.code.n').classList],
  counterpartText: [...row.querySelector('.code.n').childNodes].filter(n => !n.classList || !n.classList.contains('sr'))
    .map(n => n.textContent).join(''),
  counterpartVisible: row.querySelector('.code.n').getBoundingClientRect().height > 0,
  sameTop: Math.abs(row.querySelector('.code.n').getBoundingClientRect().top - cell.getBoundingClientRect().top) < 1,
  marked: enumRows.filter(r => r.querySelector('mark')).map(r => r.innerText.trim()),
  enumRows: enumRows.length,
  scrollTop: diff.scrollTop,
};
"""


def check_diffs(setup: Setup, browser: Browser) -> None:
    browser.open("/ui/targets/sim/r1/images/diff")
    found = browser.driver.execute_script(ALIGNMENT, f"old-{CHANGED}", ADDED_ENUM)
    # the removed property's row faces an empty counterpart, on the same line, in the one scroll container
    assert {"row", "removed", "by-breaking"} <= set(found["removed"]), found
    assert "gap" in found["counterpart"] and found["counterpartText"] == "" and found["counterpartVisible"], found
    assert found["sameTop"], found
    # in the enum's block (a dozen rows) only the added value is highlighted
    assert found["enumRows"] > 5 and len(found["marked"]) == 1 and '"vhdx"' in found["marked"][0], found
    assert found["scrollTop"] > 0  # ui.js opens the diff at its first changed row
    table = browser.find("table.changes").text
    assert table.index("breaking") < table.index("warning")  # breaking first
    shoot(setup, browser, "/ui/targets/sim/r1/images/diff", "diff")
    browser.open("/ui/targets/sim/r1/images/diff")
    browser.find(f'table.changes a[href="#old-{CHANGED}"]').click()  # the table links to the row
    assert browser.driver.current_url.endswith(f"#old-{CHANGED}")
    assert browser.driver.execute_script("return document.querySelector(':target').id") == f"old-{CHANGED}"
    check_layout_switch(setup, browser)

    browser.open("/ui/targets/sim/r1/images/baseline")
    assert "removed" in classes(browser.find(f'[id="old-{CHANGED}"]').find_element(By.XPATH, ".."))
    browser.open("/ui/targets/sim/r1/images/against/sim/r2")
    assert "sim/r2/images → sim/r1/images" in browser.find("h1").text
    assert "removed" in classes(browser.find(f'[id="old-{CHANGED}"]').find_element(By.XPATH, ".."))


def check_layout_switch(setup: Setup, browser: Browser) -> None:
    """The switch works from the keyboard, in place (no reload), and puts the layout in the URL, fragment kept."""
    browser.driver.execute_script("window.stayed = true")
    link = browser.find('.view-switch a[data-view="unified"]')
    link.send_keys(Keys.ENTER)
    WebDriverWait(browser.driver, PAGE_TIMEOUT_S).until(lambda d: "view=unified" in d.current_url)
    assert browser.driver.execute_script("return window.stayed === true"), "the switch reloaded the page"
    assert "unified" in classes(browser.find(".diff")) and link.get_attribute("aria-current") == "true"
    assert browser.driver.current_url.endswith(f"#old-{CHANGED}")
    # unified: the removed line has no empty counterpart beside it, and the new side of a same row is not repeated
    widths = browser.driver.execute_script(
        "const row = document.getElementById(arguments[0]).closest('.row');"
        "return [row.querySelector('.code.n').getBoundingClientRect().width,"
        " document.querySelector('.row.same .code.n').getBoundingClientRect().width]", f"old-{CHANGED}")  # fmt: skip
    assert widths == [0, 0], widths
    browser.open(browser.driver.current_url.split("#")[0])  # a reload keeps the layout
    assert "unified" in classes(browser.find(".diff"))
    browser.screenshot(setup.screenshots / "diff-unified.png")


def check_permalink(setup: Setup, browser: Browser) -> None:
    (target,) = _notified_targets(setup.receiver)
    link = target["link"]
    assert link.startswith(f"{setup.base_url}/ui/changes/")
    change = httpx.get(setup.base_url + "/api/changes/" + link.rsplit("/", 1)[1], timeout=10).json()
    assert (change["cloud"], change["region"], change["schema"]) == ("sim", "r1", "images")
    assert change["severity"] == "breaking"  # the first change of the notification is the worst
    browser.open(link)
    assert browser.find("h1").text.startswith(f"Change {change['id']}: {change['severity']} {change['rule']}")
    assert change["path"] in browser.find("#change").text.replace("\n", "")
    focused = browser.driver.find_elements(By.CSS_SELECTOR, ".diff .row.focus .code[id]")
    assert focused and focused[0].get_attribute("id") in (f"old-{change['path']}", f"new-{change['path']}")
    shoot(setup, browser, link.removeprefix(setup.base_url), "change")


def check_consumers(setup: Setup, browser: Browser) -> None:
    browser.open("/ui/")
    browser.find('header a[href="./consumers"]').click()
    WebDriverWait(browser.driver, PAGE_TIMEOUT_S).until(lambda d: d.current_url.endswith("/ui/consumers"))
    browser.collect()
    broken = browser.find('tr[data-consumer="uploader"] td[data-region="r1"]')
    assert "st-broken" in classes(broken) and broken.text.startswith("✕ broken")
    assert browser.find('tr[data-consumer="uploader"] td[data-region="r2"]').text == "✓ compatible"
    browser.screenshot(setup.screenshots / "consumers.png")
    broken.find_element(By.CSS_SELECTOR, "a").click()
    WebDriverWait(browser.driver, PAGE_TIMEOUT_S).until(lambda d: d.current_url.endswith("/ui/consumers/uploader/r1"))
    browser.collect()
    row = browser.find("tr.st-broken")
    assert f"images: {MIN_DISK} exists" in row.text and "no min_disk in /properties/images/items/properties" in row.text
    assert "sim/r1/images" in row.text and "∅ nothing there" in row.text
    browser.screenshot(setup.screenshots / "consumer.png")
    row.find_element(By.CSS_SELECTOR, "td.ptr a").click()  # the evidence: the target's page
    WebDriverWait(browser.driver, PAGE_TIMEOUT_S).until(lambda d: d.current_url.endswith("/ui/targets/sim/r1/images"))
    browser.collect()
    assert "breaks uploader in r1" in browser.find("table.changes").text
