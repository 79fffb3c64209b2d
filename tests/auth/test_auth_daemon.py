"""The real daemon (a subprocess) with Keystone/IAM credentials against the fake identity service.

* a soak: password auth with tokens living a few seconds, several regions, two minutes of polling —
  no auth failure, and about one token request per region per token lifetime;
* discovery: a region that appears in the catalog is polled, one that leaves it loses its series;
* the secret grep: at DEBUG log level (every library's debug log included), through token renewals,
  a revoked token, an identity outage and a notified change, no credential appears in the log,
  /metrics, the database or a notification — with text logs and with ``--log-format json`` (where every
  line must also be one JSON object with the documented fields).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.auth.credentials import renew_margin
from tests.auth.conftest import AK, APP_SECRET, DOMAIN, PASSWORD, REGIONS, SK, password_auth
from tests.support.identity import IdentitySimulator, RegionAuthorizer, region_authorizer
from tests.support.process import Daemon, cli, free_port, wait_for
from tests.support.receiver import Receiver
from tests.support.regions import Simulator

pytestmark = pytest.mark.slow  # the real daemon as a process, a minute of token renewals

SOAK_SECONDS = 60.0
LIFETIME = 5.0


@pytest.fixture
def identity(identity: IdentitySimulator) -> IdentitySimulator:
    """The shared identity service, issuing tokens that live only ``LIFETIME`` seconds."""
    identity.token_lifetime = LIFETIME
    return identity


def start_daemon(
    tmp_path: Path, clouds: list[dict[str, Any]], log_level: str = "INFO", log_format: str = "text", **extra: Any
) -> Daemon:
    port = free_port()
    data = {
        "database": {"url": f"sqlite:///{tmp_path / 'monitor.db'}"},
        "http": {"listen": f"127.0.0.1:{port}"},
        "defaults": {"interval": "1s", "timeout": "2s", "jitter": "0s", "retries": 0, "confirm_reads": 1},
        "clouds": clouds,
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return Daemon(path, port, tmp_path / "daemon.log", log_level, log_format)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


def labels(region: str, cloud: str = "hw", schema: str = "images") -> dict[str, str]:
    return {"cloud": cloud, "region": region, "schema": schema}


@pytest.mark.timeout(SOAK_SECONDS + 90)
def test_password_auth_with_short_tokens_polls_for_a_minute_without_an_auth_failure(
    identity: IdentitySimulator, regions: Simulator, authorizer: RegionAuthorizer, tmp_path: Path,
    daemons: list[Daemon],
) -> None:  # fmt: skip
    cloud = {"name": "hw", "endpoint": regions.endpoint_template(), "regions": list(REGIONS), "schemas": ["images"],
             "auth": password_auth(identity), "allow_http": True}  # fmt: skip
    daemon = start_daemon(tmp_path, [cloud])
    daemons.append(daemon)
    for region in REGIONS:
        wait_for(lambda r=region: daemon.metric("schemadrift_poll_success", **labels(r)) == 1)  # type: ignore[misc]
    before = {region: identity.token_requests(region) for region in REGIONS}
    polls_before = {r: len(regions.request_times(r, "images")) for r in REGIONS}  # a poll is one request here
    time.sleep(SOAK_SECONDS)
    renewal_period = LIFETIME - renew_margin(LIFETIME)
    for region in REGIONS:
        requests = identity.token_requests(region) - before[region]
        assert SOAK_SECONDS / LIFETIME - 1 <= requests <= SOAK_SECONDS / renewal_period + 2, (region, requests)
        assert daemon.metric("schemadrift_auth_failures_total", cloud="hw", region=region) == 0
        polls = len(regions.request_times(region, "images")) - polls_before[region]
        assert polls >= SOAK_SECONDS * 0.8
        for reason in ("auth", "http_401", "timeout", "connect"):
            # a reason's series appears with its first failure of that reason: none may exist
            assert daemon.metric("schemadrift_poll_failures_total", **labels(region), reason=reason) is None
        expiry = daemon.metric("schemadrift_auth_token_expiry_timestamp_seconds", cloud="hw", region=region)
        assert expiry is not None and time.time() < expiry <= time.time() + LIFETIME
    assert authorizer.rejected() == 0  # no request ever carried an expired or foreign token
    assert daemon.stop() == 0


def test_discovered_regions_are_polled_and_departed_ones_lose_their_series(
    identity: IdentitySimulator, tmp_path: Path, daemons: list[Daemon]
) -> None:
    identity.token_lifetime = 3600
    cloud = {"name": "hw", "regions": "auto", "discovery": {"refresh": "1s"}, "schemas": ["images"],
             "auth": password_auth(identity, project_name="r1"), "allow_http": True}  # fmt: skip
    with Simulator(REGIONS, authorizer=region_authorizer(identity, per_region_projects=False)) as shared:
        identity.set_catalog({r: f"{shared.base_url}/{r}" for r in ("r1", "r2")})
        daemon = start_daemon(tmp_path, [cloud])
        daemons.append(daemon)
        for region in ("r1", "r2"):
            wait_for(lambda r=region: daemon.metric("schemadrift_poll_success", **labels(r)) == 1)  # type: ignore[misc]
        assert daemon.metric("schemadrift_poll_success", **labels("r3")) is None
        identity.set_catalog({r: f"{shared.base_url}/{r}" for r in ("r1", "r3")})
        wait_for(lambda: daemon.metric("schemadrift_poll_success", **labels("r3")) == 1)
        wait_for(lambda: daemon.metric("schemadrift_poll_success", **labels("r2")) is None)
        assert daemon.metric("schemadrift_poll_interval_seconds", **labels("r2")) is None
        targets = daemon.get("/api/targets")
        assert targets is not None and targets.status_code == 200
        assert sorted(t["region"] for t in targets.json()["targets"]) == ["r1", "r3"]
        assert "r2" in daemon.log() and "gone: r2" in daemon.log()
        assert daemon.stop() == 0


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_credential_appears_anywhere_at_debug_log_level(
    identity: IdentitySimulator, regions: Simulator, tmp_path: Path, daemons: list[Daemon], log_format: str
) -> None:
    identity.token_lifetime = 3.0
    app_user = identity.add_user("svc", "svc-unused-password-77", domain=DOMAIN)
    cred = identity.add_application_credential(app_user, APP_SECRET, project_id=identity.add_project("shared"))
    receiver = Receiver()
    try:
        with Simulator(REGIONS, authorizer=region_authorizer(identity, per_region_projects=False)) as open_regions:
            clouds = [
                {"name": "hw", "endpoint": regions.endpoint_template(), "regions": list(REGIONS),
                 "schemas": ["images"], "auth": password_auth(identity), "allow_http": True},
                {"name": "app", "endpoint": open_regions.endpoint_template(), "regions": ["r1"], "schemas": ["images"],
                 "auth": {"type": "application_credential", "auth_url": identity.auth_url,
                          "application_credential_id": cred, "application_credential_secret": APP_SECRET},
                 "allow_http": True},
                {"name": "ak", "endpoint": open_regions.endpoint_template(), "regions": ["r2"], "schemas": ["images"],
                 "auth": {"type": "aksk", "access_key": AK, "secret_key": SK}, "allow_http": True},
            ]  # fmt: skip
            notifications = {"grouping_window": "0s", "channels": [{"name": "hook", "type": "webhook",
                                                                    "url": receiver.url + "/hook"}]}  # fmt: skip
            daemon = start_daemon(tmp_path, clouds, "DEBUG", log_format, notifications=notifications)
            daemons.append(daemon)
            _provoke_everything(daemon, identity, regions, receiver)
            metrics = daemon.get("/metrics")
            api = daemon.get("/api/changes")
            assert metrics is not None and metrics.status_code == 200, metrics
            assert "schemadrift_poll_success" in metrics.text  # a real exposition, not an error page
            assert api is not None and api.status_code == 200, api
            assert api.json()["changes"], "the provoked change is listed"
            change = api.json()["changes"][0]
            target = f"{change['cloud']}/{change['region']}/{change['schema']}"
            pages = [daemon.get(path) for path in ("/ui/", f"/ui/targets/{target}", f"/ui/changes/{change['id']}")]
            assert all(page is not None and page.status_code == 200 for page in pages), pages
            assert daemon.stop() == 0
    finally:
        receiver.close()
    log = daemon.log()
    if log_format == "json":
        records = _json_records(log)
        assert any(r["level"] == "DEBUG" for r in records)
        loggers = {r["logger"].split(".")[0] for r in records}
        assert {"keystoneauth", "httpcore"} <= loggers  # library debug logs were on
        messages = "\n".join(r["message"] + "\n" + r.get("exc_info", "") for r in records)
    else:
        assert " DEBUG " in log and "keystoneauth" in log and "httpcore" in log  # library debug logs were on
        messages = log
    assert "refused (HTTP 401)" in messages and "identity service answered HTTP 503" in messages
    outputs = {
        "log": log,
        "log messages": messages,  # JSON escaping must not hide a secret from the grep
        "metrics": metrics.text,
        "api": api.text,
        "ui": "\n".join(page.text for page in pages if page is not None),
        "database": _dump_sqlite(tmp_path / "monitor.db"),
        "notifications": "\n".join(body.decode() for _, _, body, _ in receiver.requests),
    }
    assert receiver.requests, "the change was notified"
    secrets = {"password": PASSWORD, "app secret": APP_SECRET, "access key": AK, "secret key": SK}
    secrets |= {f"token {i}": token for i, token in enumerate(identity.issued_tokens())}
    assert len(secrets) > 8
    leaks = [(what, where) for what, secret in secrets.items() for where, text in outputs.items() if secret in text]
    assert leaks == []


def _provoke_everything(daemon: Daemon, identity: IdentitySimulator, regions: Simulator, receiver: Receiver) -> None:
    """Polls, renewals, a revoked token (401 → new token), an identity outage, and a notified change."""
    for cloud, region in (("hw", "r1"), ("hw", "r2"), ("app", "r1"), ("ak", "r2")):
        wait_for(lambda c=cloud, r=region: daemon.metric("schemadrift_poll_success", **labels(r, c)) == 1)  # type: ignore[misc]
    time.sleep(3.5)  # at least one renewal per region
    for _ in range(10):  # a token renewed just before its poll never meets the 401: revoke again
        identity.revoke_all()
        if wait_for(lambda: "refused (HTTP 401)" in daemon.log(), timeout=3.0, fail=False):
            break
    assert "refused (HTTP 401)" in daemon.log()
    identity.set_fault("down")
    identity.revoke_all()
    wait_for(lambda: (daemon.metric("schemadrift_auth_failures_total", cloud="hw", region="r1") or 0) >= 1)
    identity.set_fault(None)
    regions.mutate("r3")
    wait_for(lambda: receiver.requests, timeout=30)
    wait_for(lambda: daemon.metric("schemadrift_poll_success", **labels("r1")) == 1, timeout=30)


def _json_records(log: str) -> list[dict[str, Any]]:
    """Every line of a ``--log-format json`` log as an object; fails on a line that is not one."""
    records = []
    for number, line in enumerate(log.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"log line {number} is not JSON: {line[:200]}")
        assert isinstance(record, dict), (number, line)
        assert {"time", "level", "logger", "message"} <= set(record), (number, line)
        assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0), (number, line)
        assert set(record) <= {"time", "level", "logger", "message", "cloud", "region", "schema", "exc_info",
                               "stack_info"}, (number, line)  # fmt: skip
        records.append(record)
    assert records
    return records


def _dump_sqlite(path: Path) -> str:
    """Every row of every table, as text."""
    with sqlite3.connect(path) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"'))


def test_check_polls_the_discovered_regions_and_fails_when_discovery_does(
    identity: IdentitySimulator, tmp_path: Path
) -> None:
    identity.token_lifetime = 3600
    with Simulator(REGIONS, authorizer=region_authorizer(identity, per_region_projects=False)) as shared:
        identity.set_catalog({r: f"{shared.base_url}/{r}" for r in ("r1", "r2")})
        cloud = {"name": "hw", "regions": "auto", "schemas": ["images"], "allow_http": True,
                 "auth": password_auth(identity, project_name="r1")}  # fmt: skip
        path = tmp_path / "check.yaml"
        path.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'c.db'}"}, "clouds": [cloud]}))
        done = cli("check", "--config", str(path), "--json")
        assert done.returncode == 0, done.stderr
        assert sorted(r["region"] for r in json.loads(done.stdout)) == ["r1", "r2"]
        identity.set_fault("down")
        failed = cli("check", "--config", str(path))
        assert failed.returncode == 1
        assert "region discovery failed for cloud(s) hw" in failed.stderr
        assert PASSWORD not in failed.stderr + failed.stdout
