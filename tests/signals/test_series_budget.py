"""The series budget per target on the real daemon's ``/metrics`` (``schema-drift-monitor run`` in a subprocess,
polling the simulator's 3 regions of 4 schemas over loopback), under the default ``metrics.detail`` and ``full``
(docs/metrics-and-alerts.md#series-per-target)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from bench.series import OTHER, TOTAL, series_per_target
from tests.conftest import REGIONS, config_data, migrate
from tests.support.process import Daemon, free_port, wait_for
from tests.support.regions import Simulator, mutate_breaking

pytestmark = pytest.mark.slow  # the real daemon as a process

SCHEMAS = ("images", "image", "members", "member")
TARGETS = len(REGIONS) * len(SCHEMAS)
R1 = {"cloud": "sim", "region": "r1", "schema": "images"}
DETAIL_FAMILIES = {
    "schemadrift_polls_total",
    "schemadrift_last_poll_timestamp_seconds",
    "schemadrift_last_poll_duration_seconds",
    "schemadrift_schema_properties",
    "schemadrift_response_size_bytes",
}
Start = Callable[[str | None], Daemon]


@pytest.fixture
def start(simulator: Simulator, tmp_path: Path) -> Iterator[Start]:
    """Starts the daemon with the given ``metrics.detail`` (None: no metrics section) once every target polled."""
    running: list[Daemon] = []

    def run(detail: str | None) -> Daemon:
        port = free_port()
        data = config_data(simulator, migrate(f"sqlite:///{tmp_path / 'monitor.db'}"), interval="1s", jitter="0s")
        data["http"]["listen"] = f"127.0.0.1:{port}"
        if detail is not None:
            data["metrics"] = {"detail": detail}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
        daemon = Daemon(tmp_path / "config.yaml", port, tmp_path / "daemon.log")
        running.append(daemon)
        wait_for(lambda: scrape(daemon).count("schemadrift_poll_success{") == TARGETS and all_up(daemon), 30)
        return daemon

    yield run
    for daemon in running:
        daemon.stop()


def scrape(daemon: Daemon) -> str:
    response = daemon.get("/metrics")
    return response.text if response is not None and response.status_code == 200 else ""


def all_up(daemon: Daemon) -> bool:
    return all(daemon.metric("schemadrift_poll_success", cloud="sim", region=r, schema=s) == 1
               for r in REGIONS for s in SCHEMAS)  # fmt: skip


def test_the_default_exports_at_most_ten_series_per_target(start: Start) -> None:
    daemon = start(None)
    table = series_per_target(scrape(daemon), TARGETS)

    assert table[TOTAL] <= 10
    assert {family: n for family, n in table.items() if family != OTHER} == {
        "schemadrift_changes_total": 2.0,  # breaking and warning, at 0 before any change
        "schemadrift_flapping": 1.0,
        "schemadrift_last_change_timestamp_seconds": 1.0,
        "schemadrift_last_success_timestamp_seconds": 1.0,
        "schemadrift_poll_interval_seconds": 1.0,
        "schemadrift_poll_success": 1.0,
        "schemadrift_region_deviates": 1.0,
        "schemadrift_target_kind": 1.0,
        TOTAL: 9.0,
    }
    for region in REGIONS:
        for schema in SCHEMAS:
            labels = {"cloud": "sim", "region": region, "schema": schema}
            assert daemon.metric("schemadrift_changes_total", **labels, severity="breaking") == 0
            assert daemon.metric("schemadrift_changes_total", **labels, severity="warning") == 0
            assert daemon.metric("schemadrift_changes_total", **labels, severity="info") is None
    assert not DETAIL_FAMILIES & set(table)
    assert "schemadrift_drift_unacknowledged" not in table
    assert "# HELP schemadrift_polls_total" not in scrape(daemon)


def test_a_change_adds_the_series_of_what_occurred(start: Start, simulator: Simulator) -> None:
    daemon = start("basic")
    simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))

    wait_for(lambda: daemon.metric("schemadrift_changes_total", **R1, severity="breaking") == 1, 30)
    assert daemon.metric("schemadrift_changes_total", **R1, severity="warning") == 1
    wait_for(lambda: daemon.metric("schemadrift_drift_unacknowledged", **R1, severity="breaking") == 1, 30)
    assert daemon.metric("schemadrift_drift_unacknowledged", **R1, severity="info") is None
    assert daemon.metric("schemadrift_drift_unacknowledged", cloud="sim", region="r2", schema="images",
                         severity="breaking") is None  # fmt: skip
    table = series_per_target(scrape(daemon), TARGETS)
    assert table[TOTAL] <= 10  # one drift series among 12 targets


def test_full_exports_the_detail_families(start: Start) -> None:
    daemon = start("full")
    table = series_per_target(scrape(daemon), TARGETS)

    assert {family: table.get(family) for family in DETAIL_FAMILIES} == dict.fromkeys(DETAIL_FAMILIES, 1.0)
    assert table["schemadrift_changes_total"] == 4.0
    assert table["schemadrift_drift_unacknowledged"] == 4.0
    assert table[TOTAL] == 20.0
    assert (daemon.metric("schemadrift_polls_total", **R1) or 0) >= 1
    assert daemon.metric("schemadrift_changes_total", **R1, severity="cosmetic") == 0
