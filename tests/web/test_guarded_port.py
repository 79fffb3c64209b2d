"""The daemon with a web configuration (TLS + basic auth, bcrypt cost 10) as a user runs it, with the real tools:

* a real Prometheus scrapes it over TLS with ``basic_auth`` and a CA file (``up == 1``), while its jobs with a
  wrong password, without credentials and over plain HTTP are refused (``up == 0``, and why);
* the UI in a real Chromium, with the credentials (and refused without them);
* write routes still need the bearer token; the ``healthcheck`` command speaks HTTPS to it;
* SIGHUP re-reads the file (a bad one is reported and the last good one stays);
* and no password, hash or token appears in the daemon's log (at DEBUG).

One daemon serves the whole module (tests run in file order; the reload test restores the file it changes).
Needs Debian's ``prometheus`` (``SDM_REQUIRE_ALERTING``) and ``chromium``/``chromium-driver``
(``SDM_REQUIRE_CHROMIUM``): without them those tests skip, unless the variable is set (CI), then they fail.
"""

from __future__ import annotations

import base64
import hashlib
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import config_data, require_tool
from tests.support.browser import PAGE_TIMEOUT_S, Browser, chromium, is_loopback
from tests.support.pki import Pair, issue, make_ca
from tests.support.process import Daemon, free_port, wait_for
from tests.support.prometheus import Process, prom_query
from tests.support.regions import Simulator

pytestmark = pytest.mark.slow

REGIONS = ("r1", "r2")
USER, PASSWORD = "prometheus", "scrape-pa55-4e1d9c"
API_TOKEN = "api-write-token-7b2e0f41"
SIM_TOKEN = "sim-token-for-guarded-port-55aa"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
OTHER_USER, OTHER_PASSWORD = "grafana", "dashboards-pa55-0c3a"
OTHER_HASH = bcrypt.hashpw(OTHER_PASSWORD.encode(), bcrypt.gensalt(10)).decode()


@dataclass
class Guarded:
    daemon: Daemon
    url: str
    ca: Path
    server: Pair
    config: Path
    web_config: Path
    folder: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=ssl.create_default_context(cafile=str(self.ca)), timeout=10,
                            **kwargs)  # fmt: skip

    def get(self, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            with self.client() as client:
                return client.get(path, **kwargs)
        except httpx.HTTPError:
            return None


def web_config(folder: Path, users: dict[str, str]) -> dict[str, Any]:
    return {
        "tls_server_config": {"cert_file": "server.pem", "key_file": "server.key"},
        "http_server_config": {"headers": {"Strict-Transport-Security": "max-age=300", "X-Frame-Options": "deny"}},
        "basic_auth_users": users,
    }


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    folder = tmp_path_factory.mktemp("guarded")
    ca = make_ca("guarded port CA")
    ca.write(folder, "ca")
    server = issue(ca, "127.0.0.1", server=True)
    server.write(folder, "server")
    (folder / "web.yml").write_text(yaml.safe_dump(web_config(folder, {USER: HASH})))
    port = free_port()
    with Simulator(REGIONS, token=SIM_TOKEN) as sim:
        data = config_data(sim, f"sqlite:///{folder / 'monitor.db'}", interval="3s", confirm_reads=1)
        data["clouds"][0].update(regions=list(REGIONS), schemas=["images"], auth={"type": "token", "token": SIM_TOKEN})
        data["http"] = {"listen": f"127.0.0.1:{port}", "web_config_file": str(folder / "web.yml")}
        data["api"] = {"token": API_TOKEN}
        (folder / "config.yaml").write_text(yaml.safe_dump(data))
        daemon = Daemon(folder / "config.yaml", port, folder / "daemon.log", log_level="DEBUG")
        guarded = Guarded(daemon, f"https://127.0.0.1:{port}", folder / "ca.pem", server, folder / "config.yaml",
                          folder / "web.yml", folder)  # fmt: skip
        try:
            wait_for(lambda: all_polled(guarded), 60, "every target polled once")
            yield guarded
        finally:
            assert daemon.stop() == 0, daemon.log()[-3000:]


def all_polled(guarded: Guarded) -> bool:
    response = guarded.get("/api/targets", auth=(USER, PASSWORD))
    if response is None or response.status_code != 200:
        return False
    targets = response.json()["targets"]
    return len(targets) == len(REGIONS) and all(t["snapshot_id"] is not None for t in targets)


# --- Prometheus -------------------------------------------------------------------------------------------------


def scrape_job(name: str, target: str, scheme: str, ca: Path, **auth: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"job_name": name, "scheme": scheme, "static_configs": [{"targets": [target]}]}
    if scheme == "https":
        job["tls_config"] = {"ca_file": str(ca)}
    return {**job, **auth}


@pytest.fixture(scope="module")
def prometheus(guarded: Guarded) -> Iterator[str]:
    binary = require_tool("prometheus", "SDM_REQUIRE_ALERTING", "prometheus")
    folder, port = guarded.folder, free_port()
    (folder / "password").write_text(PASSWORD)
    target = guarded.url.removeprefix("https://")
    jobs = [
        scrape_job("tls-basic-auth", target, "https", guarded.ca,
                   basic_auth={"username": USER, "password_file": str(folder / "password")}),
        scrape_job("wrong-password", target, "https", guarded.ca, basic_auth={"username": USER, "password": "nope"}),
        scrape_job("no-credentials", target, "https", guarded.ca),
        scrape_job("plain-http", target, "http", guarded.ca, basic_auth={"username": USER, "password": PASSWORD}),
    ]  # fmt: skip
    (folder / "prometheus.yml").write_text(
        yaml.safe_dump({"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": jobs})
    )
    process = Process(
        [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        folder / "prometheus.log",
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def up_by_job(prometheus: str) -> dict[str, float]:
    result = prom_query(prometheus, "up").get("data", {}).get("result", [])
    return {r["metric"]["job"]: float(r["value"][1]) for r in result}


def last_errors(prometheus: str) -> dict[str, str]:
    try:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    except (httpx.HTTPError, ValueError, KeyError):
        return {}
    return {t["labels"]["job"]: t["lastError"] for t in targets if t.get("lastScrape", "").startswith("2")}


def test_prometheus_scrapes_over_tls_with_basic_auth_and_the_refusals_hold(prometheus: str) -> None:
    wanted = {"tls-basic-auth": 1.0, "wrong-password": 0.0, "no-credentials": 0.0, "plain-http": 0.0}
    wait_for(lambda: up_by_job(prometheus) == wanted, 60, f"up per job {wanted}")
    series = prom_query(prometheus, 'schemadrift_poll_success{job="tls-basic-auth"} == 1')["data"]["result"]
    assert len(series) == len(REGIONS), "the scraped exposition is the monitor's"
    errors = wait_for(lambda: (e := last_errors(prometheus)) and len(e) == 4 and e, 30, "a scrape of every job")
    assert errors["tls-basic-auth"] == ""
    assert "401" in errors["wrong-password"] and "401" in errors["no-credentials"]
    assert errors["plain-http"] and "401" not in errors["plain-http"], "plain HTTP never reaches HTTP handling"


# --- requests by hand ------------------------------------------------------------------------------------------


def test_reads_need_a_user_and_writes_still_need_the_bearer_token(guarded: Guarded) -> None:
    approve = {"approve": True, "comment": "guarded port test"}
    path = "/api/targets/sim/r2/images/ack"
    with guarded.client() as client:
        assert client.get("/api/targets").status_code == 401
        assert client.get("/api/targets", auth=(USER, "wrong")).status_code == 401
        assert client.get("/api/targets", auth=(USER, PASSWORD)).status_code == 200
        as_user = client.post(path, json=approve, auth=(USER, PASSWORD))
        assert as_user.status_code == 401 and "bearer token is required" in as_user.json()["error"]
        as_writer = client.post(path, json=approve, headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert as_writer.status_code == 200 and as_writer.json()["approved_snapshot_id"] is not None
        assert client.get("/api/targets", headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200
    health = guarded.get("/healthz")
    assert health is not None and health.status_code == 200 and health.headers["x-frame-options"] == "deny"
    with pytest.raises(httpx.TransportError):
        httpx.get(guarded.url.replace("https://", "http://") + "/healthz", timeout=5)


def test_the_healthcheck_command_speaks_https_to_the_daemon(guarded: Guarded) -> None:
    done = subprocess.run([sys.executable, "-m", "monitor", "healthcheck", "--config", str(guarded.config)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, f"healthy: {guarded.url}/healthz answered 200\n"), done.stderr


# --- Chromium ---------------------------------------------------------------------------------------------------


def spki_pin(pair: Pair) -> str:
    """Chromium's ``--ignore-certificate-errors-spki-list`` entry: base64 of the SHA-256 of the public key."""
    der = pair.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture
def browser(guarded: Guarded, tmp_path: Path) -> Iterator[Browser]:
    # trust exactly the daemon's key (Chromium takes no CA file); needs its own --user-data-dir
    pin = f"--ignore-certificate-errors-spki-list={spki_pin(guarded.server)}"
    with chromium(guarded.url, tmp_path, [pin]) as session:
        yield session


def test_the_ui_in_chromium_with_credentials(guarded: Guarded, browser: Browser, tmp_path: Path) -> None:
    browser.open("/ui/")  # without credentials: refused (headless Chromium shows its error page, no prompt)
    assert any("status of 401" in message for _, message in browser.console_errors), browser.console_errors
    assert not browser.driver.find_elements("css selector", "li.tile")
    browser.console_errors.clear()
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    browser.driver.execute_cdp_cmd("Network.enable", {})
    browser.driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {credentials}"}}
    )
    browser.requested.clear()
    browser.open("/ui/")
    WebDriverWait(browser.driver, PAGE_TIMEOUT_S).until(
        lambda d: d.find_elements("css selector", 'li.tile[data-target="sim/r1/images"]')
    )
    assert browser.driver.current_url == f"{guarded.url}/ui/"
    browser.open("/ui/targets/sim/r1/images")
    assert browser.find("h1").text == "sim/r1/images"
    browser.screenshot(tmp_path / "ui-over-tls.png")
    browser.collect()
    assert f"{guarded.url}/ui/static/ui.css" in browser.requested
    assert [url for url in browser.requested if not is_loopback(url)] == []
    assert browser.console_errors == []  # a 401 on a style sheet or script would be one


# --- reload, and the log -----------------------------------------------------------------------------------------


def test_sighup_rereads_the_file_and_a_bad_one_keeps_the_last_good(guarded: Guarded) -> None:
    daemon = guarded.daemon
    original = guarded.web_config.read_text()

    def answers(user: str, password: str) -> int | None:
        response = guarded.get("/metrics", auth=(user, password))
        return None if response is None else response.status_code

    assert answers(OTHER_USER, OTHER_PASSWORD) == 401
    guarded.web_config.write_text(yaml.safe_dump(web_config(guarded.folder, {USER: HASH, OTHER_USER: OTHER_HASH})))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: answers(OTHER_USER, OTHER_PASSWORD) == 200, 20, "the second user after SIGHUP")
    wait_for(lambda: "reloaded (SIGHUP)" in daemon.log(), 20, "the reload logged")

    guarded.web_config.write_text(
        "tls_server_config:\n  cert_file: server.pem\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"
    )
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "the last good one stays in force" in daemon.log(), 20, "the bad file reported")
    assert "cipher_suites: Go cipher-suite names cannot be honoured" in daemon.log()
    assert answers(USER, PASSWORD) == 200 and answers(OTHER_USER, OTHER_PASSWORD) == 200
    assert daemon.process.poll() is None

    guarded.web_config.write_text(original)
    daemon.process.send_signal(signal.SIGHUP)
    wait_for(lambda: answers(OTHER_USER, OTHER_PASSWORD) == 401, 20, "the original users back")


def test_no_password_hash_or_token_in_the_daemons_log(guarded: Guarded) -> None:
    log = guarded.daemon.log()
    assert "reloaded (SIGHUP)" in log and "basic auth for 1 user(s)" in log, "the log is the daemon's, at DEBUG"
    for secret in (PASSWORD, OTHER_PASSWORD, HASH, OTHER_HASH, HASH[7:29], API_TOKEN, SIM_TOKEN, "nope"):
        assert secret not in log, f"a secret is in the log: {secret[:4]}…"
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in log
