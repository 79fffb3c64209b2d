"""The real daemon (`schema-drift-monitor run` in a subprocess) against the simulator over loopback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.store.engine import head_revision
from tests.conftest import TOKEN, config_data
from tests.support.process import Daemon, cli, free_port, wait_for
from tests.support.regions import Simulator, mutate_breaking

pytestmark = pytest.mark.slow  # the real daemon and CLI as processes


@pytest.fixture
def daemon_config(simulator: Simulator, migrated_db_url: str, tmp_path: Path) -> tuple[Path, int]:
    port = free_port()
    data = config_data(simulator, migrated_db_url, interval="1s", timeout="2s", jitter="0s")
    data["http"]["listen"] = f"127.0.0.1:{port}"
    data["polling"] = {"shutdown_grace": "8s"}  # room for a slow read plus its confirming read
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, port


@pytest.fixture
def daemon(daemon_config: tuple[Path, int], tmp_path: Path) -> Iterator[Daemon]:
    path, port = daemon_config
    running = Daemon(path, port, tmp_path / "daemon.log")
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


R1 = {"cloud": "sim", "region": "r1", "schema": "images"}


def test_daemon_detects_a_change_in_history_and_metrics(
    daemon: Daemon, daemon_config: tuple[Path, int], simulator: Simulator
) -> None:
    config_path, _ = daemon_config
    wait_for(lambda: daemon.metric("schemadrift_poll_success", **R1) == 1)
    assert daemon.get("/healthz").status_code == 200  # type: ignore[union-attr]
    ready = wait_for(lambda: daemon.get("/readyz"))
    assert ready.status_code == 200 and ready.json() == {"scheduler": True, "share": True, "database": True}

    simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
    wait_for(lambda: daemon.metric("schemadrift_changes_total", **R1, severity="breaking") == 1)
    assert daemon.metric("schemadrift_changes_total", **R1, severity="warning") == 1
    assert (
        daemon.metric("schemadrift_changes_total", cloud="sim", region="r2", schema="images", severity="breaking") == 0
    )

    history = cli("history", "--config", str(config_path), "--json")
    assert history.returncode == 0, history.stderr
    changes = json.loads(history.stdout)
    assert {(c["cloud"], c["region"], c["schema"], c["path"], c["rule"], c["severity"]) for c in changes} == {
        ("sim", "r1", "images", "/properties/images/items/properties/min_disk", "property-removed", "breaking"),
        ("sim", "r1", "images", "/properties/images/items/properties/disk_format/enum", "enum-value-added", "warning"),
    }
    for change in changes:
        assert {"detected_at", "old", "new"} <= change.keys()
    removed = next(c for c in changes if c["rule"] == "property-removed")
    assert removed["old"] == {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."}

    diff = cli("diff", "--config", str(config_path), "--cloud", "sim", "--region", "r1", "--schema", "images")
    assert diff.returncode == 0 and "property-removed" in diff.stdout and "\033[" not in diff.stdout

    assert daemon.stop() == 0
    assert "stopped" in daemon.log()
    assert TOKEN not in daemon.log()


def test_a_hanging_region_delays_no_other_and_never_overlaps(daemon: Daemon, simulator: Simulator) -> None:
    wait_for(lambda: daemon.metric("schemadrift_poll_success", **R1) == 1)
    simulator.set_fault("r1", "hang")
    before_r1 = simulator.requests("r1")
    start_r2 = len(simulator.request_times("r2", "images"))
    time.sleep(4.5)
    # r2 keeps its 1 s rhythm while every r1 poll hangs for its 2 s deadline
    assert len(simulator.request_times("r2", "images")) - start_r2 >= 2
    # each r1 target has at most one poll in flight: 4 schemas x at most 3 sequential 2 s polls in 4.5 s
    assert simulator.requests("r1") - before_r1 <= 4 * 3
    wait_for(lambda: (daemon.metric("schemadrift_poll_failures_total", **R1, reason="timeout") or 0) >= 2)
    assert daemon.metric("schemadrift_poll_success", **R1) == 0
    # the log tells that r1/images started failing once, not at every poll; the metric counts each
    assert daemon.log().count("sim/r1/images: poll failed (timeout)") == 1
    # /metrics answers from memory promptly even now
    started = time.monotonic()
    assert daemon.get("/metrics") is not None and time.monotonic() - started < 1.0


def test_sigterm_lets_a_running_poll_finish_and_records_its_change(
    daemon: Daemon, daemon_config: tuple[Path, int], simulator: Simulator
) -> None:
    config_path, _ = daemon_config
    wait_for(lambda: daemon.metric("schemadrift_poll_success", **R1) == 1)
    simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
    simulator.set_fault("r1", "slow", delay=1.5)  # read + 2 s pause + confirming read: within the 8 s grace
    before = simulator.requests("r1")
    wait_for(lambda: simulator.requests("r1") > before, step=0.05)
    assert daemon.stop() == 0
    changes = json.loads(cli("history", "--config", str(config_path), "--json").stdout)
    assert {c["rule"] for c in changes if c["region"] == "r1"} == {"property-removed", "enum-value-added"}
    assert "schema changed" in daemon.log()


def test_a_stop_that_cancels_hanging_polls_exits_0_with_no_error_or_traceback(
    simulator: Simulator, migrated_db_url: str, tmp_path: Path
) -> None:
    port = free_port()
    data = config_data(simulator, migrated_db_url, interval="1s", timeout="30s", jitter="0s")
    data["http"]["listen"] = f"127.0.0.1:{port}"
    data["polling"] = {"shutdown_grace": "1s"}
    path = tmp_path / "hang.yaml"
    path.write_text(yaml.safe_dump(data))
    daemon = Daemon(path, port, tmp_path / "hang.log")
    try:
        wait_for(lambda: daemon.metric("schemadrift_poll_success", cloud="sim", region="r2", schema="images") == 1)
        simulator.set_fault("r1", "hang")  # longer than the grace: these polls get cancelled
        before = simulator.requests("r1")
        wait_for(lambda: simulator.requests("r1") >= before + 4)
        time.sleep(1.5)  # a few flushes and skipped runs of the hanging polls meanwhile
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
    log = daemon.log()
    assert "Traceback" not in log and " ERROR " not in log, log
    cancelled = "INFO    monitor.poll.scheduler: cancelled 4 job(s) still running after the 1s grace period: "
    assert cancelled + "poll sim/r1/image, poll sim/r1/images, poll sim/r1/member, poll sim/r1/members" in log
    assert "skipped: maximum number of running instances" not in log  # the hanging polls' skipped runs: DEBUG
    assert log.rstrip().endswith("stopped")


def test_a_kill_during_a_poll_records_nothing_twice_after_the_restart(
    daemon_config: tuple[Path, int], simulator: Simulator, tmp_path: Path
) -> None:
    config_path, port = daemon_config
    data = yaml.safe_load(config_path.read_text())
    data["ha"] = {"lease_ttl": "3s", "heartbeat": "1s"}  # PostgreSQL: the killed replica's leases run out soon
    config_path.write_text(yaml.safe_dump(data))
    first = Daemon(config_path, port, tmp_path / "first.log")
    try:
        wait_for(lambda: first.metric("schemadrift_poll_success", **R1) == 1)
        simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
        simulator.set_fault("r1", "slow", delay=1.5)
        before = simulator.requests("r1")
        wait_for(lambda: simulator.requests("r1") > before, step=0.05)  # a poll of the new document is running
    finally:
        first.process.kill()
        first.process.wait()
    simulator.set_fault("r1", None)
    second = Daemon(config_path, port, tmp_path / "second.log")
    try:
        wait_for(lambda: second.metric("schemadrift_changes_total", **R1, severity="breaking") == 1, timeout=30)
        polls = len(simulator.request_times("r1", "images"))
        wait_for(lambda: len(simulator.request_times("r1", "images")) >= polls + 2)  # and polls on
        assert second.stop() == 0
    finally:
        if second.process.poll() is None:
            second.process.kill()
            second.process.wait()
    changes = json.loads(cli("history", "--config", str(config_path), "--json").stdout)
    assert sorted(c["rule"] for c in changes) == ["enum-value-added", "property-removed"]  # once each
    snapshots = cli("snapshots", "--config", str(config_path), "--cloud", "sim", "--region", "r1", "--schema",
                    "images", "--json")  # fmt: skip
    assert len(json.loads(snapshots.stdout)) == 2


def test_a_second_signal_exits_at_once(simulator: Simulator, migrated_db_url: str, tmp_path: Path) -> None:
    port = free_port()
    data = config_data(simulator, migrated_db_url, interval="1s", timeout="20s", jitter="0s")
    data["http"]["listen"] = f"127.0.0.1:{port}"
    data["polling"] = {"shutdown_grace": "20s"}
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(data))
    simulator.set_fault("r1", "hang")
    daemon = Daemon(path, port, tmp_path / "slow.log")
    try:
        before = simulator.requests("r1")
        wait_for(lambda: simulator.requests("r1") >= before + 4)  # every r1 poll is hanging now
        daemon.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert daemon.process.poll() is None  # waiting for the hanging polls, as it should
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(timeout=5) != 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


def test_metrics_answer_from_memory_while_the_database_is_locked(simulator: Simulator, tmp_path: Path) -> None:
    port = free_port()
    db_path = tmp_path / "locked.db"
    data = config_data(simulator, f"sqlite:///{db_path}", interval="1s", timeout="2s", jitter="0s")
    data["http"]["listen"] = f"127.0.0.1:{port}"
    path = tmp_path / "locked.yaml"
    path.write_text(yaml.safe_dump(data))
    daemon = Daemon(path, port, tmp_path / "locked.log")
    try:
        wait_for(lambda: daemon.metric("schemadrift_poll_success", **R1) == 1)
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # every write now waits on the busy timeout
        try:
            time.sleep(1.5)
            for _ in range(3):
                started = time.monotonic()
                response = daemon.get("/metrics")
                assert response is not None and response.status_code == 200
                assert time.monotonic() - started < 1.0
                time.sleep(0.5)
        finally:
            holder.rollback()
            holder.close()
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


def test_check_exit_codes_and_json(simulator: Simulator, migrated_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config_data(simulator, migrated_db_url)))
    first = cli("check", "--config", str(path), "--json")
    assert first.returncode == 0, first.stderr
    results = json.loads(first.stdout)
    assert len(results) == 12 and all(r["ok"] and r["first_snapshot"] for r in results)

    simulator.set_document("r2", "images", mutate_breaking(simulator.document("r2", "images")))
    changed = cli("check", "--config", str(path), "--fail-on", "breaking")
    assert changed.returncode == 3, changed.stdout + changed.stderr
    assert "CHANGED sim/r2/images" in changed.stdout
    target = ("--cloud", "sim", "--region", "r2", "--schema", "images")
    colored = cli("diff", "--config", str(path), *target, "--color", "always")
    assert "\033[1;31mbreaking" in colored.stdout and "property-removed" in colored.stdout
    [as_json] = json.loads(cli("diff", "--config", str(path), *target, "--json").stdout)
    assert {c["rule"] for c in as_json["changes"]} == {"property-removed", "enum-value-added"}
    snapshots = json.loads(cli("snapshots", "--config", str(path), *target, "--json").stdout)
    assert len(snapshots) == 2
    only_first = cli("diff", "--config", str(path), *target, "--to", str(snapshots[0]["id"]))
    assert only_first.returncode == 2 and "first" in only_first.stderr

    simulator.set_fault("r3", "status", code=503)
    failed = cli("check", "--config", str(path), "--json")
    assert failed.returncode == 1
    reasons = {r["region"]: r["reason"] for r in json.loads(failed.stdout)}
    assert reasons["r3"] == "http_503" and reasons["r1"] is None


def test_run_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("clouds: [{name: c, endpoint: 'http://127.0.0.1:1/{region}', regions: [r], auth: {type: x}}]\n")
    result = cli("run", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: clouds[0] (c).auth: unknown type 'x'" in result.stderr


def test_every_command_has_help_and_version() -> None:
    for command in (["run"], ["check"], ["history"], ["diff"], ["snapshots"], ["db", "upgrade"], ["config", "check"],
                    ["demo"]):  # fmt: skip
        result = cli(*command, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, command
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("schema-drift-monitor ")


def test_db_upgrade_command_migrates_an_empty_database(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("postgresql"):  # trust auth ignores the password: it only has to stay hidden
        db_url = db_url.replace("postgres@", "postgres:pw-never-shown-42@")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": db_url}, "clouds": [
        {"name": "c", "endpoint": "https://x/{region}", "regions": ["r"]}]}))  # fmt: skip
    result = cli("db", "upgrade", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"(empty) → {head_revision()}" in result.stdout
    assert "pw-never-shown-42" not in result.stdout + result.stderr
    if db_url.startswith("postgresql"):
        assert "postgres:***@" in result.stdout


def test_demo_shows_polls_a_change_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--listen", f"127.0.0.1:{port}", "--interval", "1s",
         "--change-after", "3s", "--duration", "7s", "--database", f"sqlite:///{tmp_path}/demo.db"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and " ERROR " not in result.stderr  # a normal stop is no error
    assert "first snapshot" in result.stderr
    assert "schema changed: 2 change(s), worst breaking" in result.stderr
    history = cli("history", "--config", str(tmp_path / "data" / "demo-config.yaml"), "--json")
    assert history.returncode == 0, history.stderr
    assert {c["rule"] for c in json.loads(history.stdout)} == {"property-removed", "enum-value-added"}
