"""The API surface end to end: a Keystone catalog of 3 regions and 8 services, the services answering their real
version documents, the real daemon deriving its targets from the catalog; one region's compute maximum is
lowered → ``max-microversion-lowered`` (breaking), that region deviates, ``surface`` shows it, and the metric
and the alert (the shipped rule, in real promtool) agree."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import promtool
from tests.support.identity import IdentitySimulator
from tests.support.paths import ROOT
from tests.support.process import Daemon, free_port, wait_for
from tests.support.surface import SERVICES, SurfaceSimulator

pytestmark = pytest.mark.slow  # the real daemon as a process, and promtool

RUNBOOK = "https://github.com/schema-drift-monitor/schema-drift-monitor/blob/main/deploy/RUNBOOK.md"
REGIONS = ("r1", "r2", "r3")
CATALOG_TYPES = {"block-storage": "volumev3", "shared-file-system": "sharev2"}  # as real catalogs spell them
USER, PASSWORD, DOMAIN = "surveyor", "surface-Pa55-7d1e", "acme"


@pytest.fixture
def surface() -> Iterator[SurfaceSimulator]:
    with SurfaceSimulator(REGIONS) as simulator:
        yield simulator


@pytest.fixture
def identity(surface: SurfaceSimulator) -> Iterator[IdentitySimulator]:
    with IdentitySimulator() as service:
        service.add_user(USER, PASSWORD, domain=DOMAIN)
        service.add_project("demo", domain=DOMAIN)
        for official in SERVICES:
            service.set_catalog(surface.catalog(official), service_type=CATALOG_TYPES.get(official, official))
        yield service


def config(tmp_path: Path, identity: IdentitySimulator, port: int) -> Path:
    data = {
        "database": {"url": f"sqlite:///{tmp_path / 'surface.db'}"},
        "http": {"listen": f"127.0.0.1:{port}"},
        "defaults": {"interval": "2s", "timeout": "3s", "jitter": "0s", "retries": 0, "confirm_reads": 1},
        "clouds": [{
            "name": "os", "regions": "auto", "services": "all", "allow_http": True,
            "discovery": {"source": "catalog", "refresh": "10m"},
            "auth": {"type": "password", "auth_url": identity.auth_url, "username": USER, "password": PASSWORD,
                     "user_domain_name": DOMAIN, "project_name": "demo"},
        }],
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args, "--config", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def targets(daemon: Daemon) -> list[dict[str, Any]]:
    response = daemon.get("/api/targets")
    return response.json()["targets"] if response is not None and response.status_code == 200 else []


def lower_compute_maximum(surface: SurfaceSimulator, region: str) -> None:
    document = surface.document(region, "compute")
    for version in document["versions"]:
        if version["id"] == "v2.1":
            version["version"] = "2.90"  # nova 27.5.1 advertises 2.95: a rollback (pin_release_version)
    surface.set_document(region, "compute", document)


def test_config_check_lists_the_targets_derived_from_the_catalog(tmp_path: Path, identity: IdentitySimulator) -> None:
    path = config(tmp_path, identity, free_port())
    result = cli(path, "config", "check", "--discover")
    assert result.returncode == 0, result.stderr
    for region in REGIONS:
        for target in ("compute-versions", "block-storage-extensions", "network-extensions", "image-info-import",
                       "shared-file-system-versions", "identity-versions"):  # fmt: skip
            assert f"os/{region}/{target}" in result.stdout
    assert "/r1/block-storage/v3/" in result.stdout and "API surface of services all" in result.stdout


def test_a_lowered_compute_maximum_is_breaking_deviates_shows_in_surface_and_fires_the_alert(
    tmp_path: Path, identity: IdentitySimulator, surface: SurfaceSimulator
) -> None:
    port = free_port()
    path = config(tmp_path, identity, port)
    daemon = Daemon(path, port, tmp_path / "daemon.log")
    try:
        derived = wait_for(lambda: _all_polled(targets(daemon)), 60, "every derived target polled")
        lower_compute_maximum(surface, "r1")
        change = wait_for(lambda: _changes(daemon, "r1", "compute-versions"), 30, "the lowered maximum recorded")
        state = next(t for t in targets(daemon) if (t["region"], t["schema"]) == ("r1", "compute-versions"))
        exposition = _get(daemon, "/metrics")
        surface_text = cli(path, "surface", "--cloud", "os")
        surface_json = json.loads(cli(path, "surface", "--cloud", "os", "--json").stdout)
    finally:
        daemon.stop()
    assert {t["schema"] for t in derived} >= {"compute-versions", "network-extensions", "image-info-stores",
                                               "block-storage-versions", "placement-versions"}  # fmt: skip
    assert [(c["rule"], c["severity"], c["path"]) for c in change] == [
        ("max-microversion-lowered", "breaking", "/versions/v2.1/max_version")
    ]
    assert state["deviates"] is True and state["unacknowledged"]["breaking"] == 1
    row = next(r for r in surface_json["versions"] if (r["service"], r["version"]) == ("compute", "v2.1"))
    assert row["deviating"] == ["r1"] and row["regions"]["r1"]["max_version"] == "2.90"
    assert row["regions"]["r2"]["max_version"] == "2.95"
    assert "2.1-2.90*" in surface_text.stdout and "2.1-2.95" in surface_text.stdout
    maxima = _samples(exposition, "schemadrift_api_max_microversion", service="compute", version="v2.1")
    assert maxima == {"r1": 90.0, "r2": 95.0, "r3": 95.0}
    _assert_the_alert_fires_for(maxima, tmp_path)


def _all_polled(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets once 11 per region exist (8 versions, 2 extension lists, ... ) and all have a snapshot."""
    return found if len(found) >= 3 * 11 and all(t["snapshot_id"] for t in found) else []


def _get(daemon: Daemon, route: str) -> str:
    response = daemon.get(route)
    assert response is not None and response.status_code == 200
    return response.text


def _changes(daemon: Daemon, region: str, schema: str) -> list[dict[str, Any]]:
    response = httpx.get(f"http://127.0.0.1:{daemon.port}/api/changes", params={"region": region, "schema": schema},
                         timeout=5)  # fmt: skip
    return list(reversed(response.json()["changes"])) if response.status_code == 200 else []


def _samples(exposition: str, name: str, **wanted: str) -> dict[str, float]:
    """Region → value of the samples of ``name`` whose labels include ``wanted``."""
    found = {}
    for line in exposition.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, value = line.rsplit(" ", 1)
        labels = dict(part.split("=", 1) for part in series[len(name) + 1 : -1].split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if all(labels.get(k) == v for k, v in wanted.items()):
            found[labels["region"]] = float(value)
    return found


def _assert_the_alert_fires_for(maxima: dict[str, float], tmp_path: Path) -> None:
    """The shipped rules, fed the daemon's own samples for 40 minutes: r1 is behind, and only r1."""
    series = [
        {"series": f'schemadrift_api_max_microversion{{cloud="os",region="{region}",schema="compute-versions",'
                   f'service="compute",version="v2.1",major="2",instance="m:9478",job="schema-drift-monitor"}}',
         "values": f"{value:g}x40"}
        for region, value in maxima.items()
    ]  # fmt: skip
    test = {
        "rule_files": [str(ROOT / "deploy/prometheus/schemadrift.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [{
            "eval_time": "35m", "alertname": "SchemaDriftMicroversionBehind",
            "exp_alerts": [{
                "exp_labels": {"severity": "warning", "cloud": "os", "region": "r1", "schema": "compute-versions",
                               "service": "compute", "version": "v2.1", "major": "2"},
                "exp_annotations": {
                    "summary": "A region advertises a lower maximum microversion than the others.",
                    "description": "os/r1/compute-versions advertises compute v2.1 up to 2.90, below the other "
                                   "regions, for 30 minutes. See the matrix with: schema-drift-monitor surface "
                                   "--config CONFIG --cloud os",
                    "runbook_url": RUNBOOK + "#schemadriftmicroversionbehind",
                    "ui_url": "",
                },
            }],
        }]}],
    }  # fmt: skip
    path = tmp_path / "surface.test.yml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
