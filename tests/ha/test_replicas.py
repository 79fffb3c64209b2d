"""Several real daemon processes on one real PostgreSQL behind a real PgBouncer (transaction pooling).

The simulator's request log is the truth about who polled what and when; the database about what was
recorded. Scenarios of issue 10 and shared/FAULTS.md 25, 34-38: steady sharing (each target polled once
per interval, each replica its third), kill -9 (the others take over within the lease TTL plus one
interval; a change made right after is recorded and notified exactly once), SIGTERM (the handover leaves
no gap longer than one interval), PostgreSQL restarted mid-run (every replica recovers, nothing twice),
SIGSTOP past the lease (the paused replica writes nothing for what it lost and gives it up), and a replica
cut off from the database (it stops polling once its leases are gone, and comes back with its share).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, text

from monitor.store.engine import make_engine, upgrade
from tests.conftest import PG_URL_BASE, TOKEN, config_data, create_pg_database, drop_pg_database, require_tool
from tests.support import pgbouncer as bouncers
from tests.support.pgbouncer import PgBouncer
from tests.support.process import Daemon, free_port, wait_for
from tests.support.receiver import Receiver
from tests.support.regions import Simulator, mutate_breaking

start_pgbouncer = bouncers.start_pgbouncer  # the fixture, used by this module
pytestmark = [pytest.mark.slow, pytest.mark.postgres]

INTERVAL = 2.0
TTL = 6.0


class Cluster:
    """Replica processes of one configuration (through one PgBouncer), started and stopped by name."""

    def __init__(self, tmp: Path, sim: Simulator, regions: list[str], schemas: list[str], bouncer: PgBouncer,
                 database: str, receiver: Receiver | None = None) -> None:  # fmt: skip
        self.tmp, self.sim, self.regions, self.schemas = tmp, sim, regions, schemas
        self.url = bouncer.url(database)
        self.receiver = receiver
        self.daemons: dict[str, Daemon] = {}

    def config(self, name: str, port: int) -> Path:
        data = config_data(self.sim, self.url, interval=f"{INTERVAL:g}s", timeout="3s", jitter="0s", confirm_reads=1)
        data["clouds"][0].update(regions=self.regions, schemas=self.schemas)
        data["http"]["listen"] = f"127.0.0.1:{port}"
        data["ha"] = {"replica": name, "lease_ttl": f"{TTL:g}s", "heartbeat": "1s", "expected_replicas": 3}
        data["changes"] = {"drift_refresh": "2s"}
        if self.receiver is not None:
            hook = {"name": "hook", "type": "webhook", "url": self.receiver.url}
            data["notifications"] = {"grouping_window": "1s", "retry_backoff": "1s", "channels": [hook]}
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def start(self, *names: str) -> None:
        for name in names:
            port = free_port()
            self.daemons[name] = Daemon(self.config(name, port), port, self.tmp / f"{name}.log")

    def owned(self, name: str) -> float | None:
        return self.daemons[name].metric("schemadrift_replica_owned_targets", replica=name)

    def settled(self, names: list[str], total: int) -> bool:
        counts = [self.owned(name) for name in names]
        ready = all((r := self.daemons[n].get("/readyz")) is not None and r.status_code == 200 for n in names)
        return ready and None not in counts and sum(c or 0 for c in counts) == total

    def stop_all(self) -> None:
        for daemon in self.daemons.values():
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait(10)


@pytest.fixture
def database(pg_server: str) -> Iterator[tuple[str, Engine]]:
    """A migrated PostgreSQL database (direct URL for the test's own reads), dropped afterwards."""
    name = create_pg_database()
    engine = make_engine(PG_URL_BASE + name)
    upgrade(engine)
    try:
        yield name, engine
    finally:
        engine.dispose()
        drop_pg_database(name)


def make_cluster(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine], regions: int,
    schemas: list[str], receiver: Receiver | None = None,
) -> tuple[Cluster, Simulator]:  # fmt: skip
    names = [f"r{i:03d}" for i in range(regions)]
    sim = Simulator(names, token=TOKEN)
    sim.start()
    return Cluster(tmp_path, sim, names, schemas, start_pgbouncer(), database[0], receiver), sim


def per_interval(sim: Simulator, region: str, schema: str, since: float, until: float) -> float:
    times = [t for t in sim.request_times(region, schema) if since <= t < until]
    return len(times) / ((until - since) / INTERVAL)


def owner_of(engine: Engine, region: str, schema: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text(
            "SELECT l.owner FROM target_leases l JOIN targets t ON t.id = l.target_id "
            "WHERE t.region = :r AND t.schema = :s"), {"r": region, "s": schema}).scalar_one())  # fmt: skip


def recorded(engine: Engine, region: str, schema: str) -> tuple[int, int]:
    """(snapshots, changes) stored for one target."""
    with engine.connect() as conn:
        target = {"r": region, "s": schema}
        snapshots = conn.execute(text("SELECT count(*) FROM snapshots s JOIN targets t ON t.id = s.target_id "
                                      "WHERE t.region = :r AND t.schema = :s"), target).scalar_one()  # fmt: skip
        changes = conn.execute(text("SELECT count(*) FROM changes c JOIN targets t ON t.id = c.target_id "
                                    "WHERE t.region = :r AND t.schema = :s"), target).scalar_one()  # fmt: skip
    return int(snapshots), int(changes)


def notified(receiver: Receiver, region: str) -> list[dict[str, Any]]:
    """The delivered notifications' targets of ``region``."""
    return [t for report in receiver.delivered() for t in report["targets"] if t["region"] == region]


def test_three_replicas_share_300_targets_and_poll_each_once_per_interval(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine]
) -> None:
    cluster, sim = make_cluster(tmp_path, start_pgbouncer, database, 75, ["images", "image", "members", "member"])
    names = ["a", "b", "c"]
    try:
        cluster.start(*names)
        wait_for(lambda: cluster.settled(names, 300), 60, "three replicas holding every target")
        time.sleep(INTERVAL * 2)  # the handover polls of the start-up are behind us
        since = time.monotonic()
        time.sleep(60)
        until = time.monotonic()
        rates = [per_interval(sim, region, schema, since, until) for region in cluster.regions
                 for schema in cluster.schemas]  # fmt: skip
        owned = {name: cluster.owned(name) for name in names}
    finally:
        cluster.stop_all()
        sim.stop()
    assert 0.9 <= statistics.mean(rates) <= 1.1, statistics.mean(rates)
    assert max(rates) <= 1.5, max(rates)  # no target is polled by two replicas
    assert all(80 <= (count or 0) <= 120 for count in owned.values()), owned


def test_a_killed_replicas_targets_are_taken_over_and_a_change_is_recorded_and_notified_once(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine]
) -> None:
    receiver = Receiver()
    cluster, sim = make_cluster(tmp_path, start_pgbouncer, database, 12, ["images"], receiver)
    engine = database[1]
    try:
        cluster.start("a", "b", "c")
        wait_for(lambda: cluster.settled(["a", "b", "c"], 12), 60, "three replicas holding every target")
        region = next(r for r in cluster.regions if owner_of(engine, r, "images") == "c")
        cluster.daemons["c"].process.kill()  # SIGKILL: no handover, the leases have to run out
        killed = time.monotonic()
        sim.set_document(region, "images", mutate_breaking(sim.document(region, "images")))
        wait_for(lambda: recorded(engine, region, "images") == (2, 2), TTL + INTERVAL + 15, "the change recorded")
        taken_over = next(t for t in sim.request_times(region, "images") if t > killed)
        wait_for(lambda: notified(receiver, region), 30, "the change notified")
        time.sleep(INTERVAL * 3 + 2)  # room for a duplicate to show up
        final, notes = recorded(engine, region, "images"), notified(receiver, region)
    finally:
        cluster.stop_all()
        sim.stop()
    assert taken_over - killed <= TTL + INTERVAL + 3  # lease TTL plus one interval (plus the heartbeat)
    assert final == (2, 2)  # one new snapshot with its two changes: recorded once
    assert len(notes) == 1 and {c["rule"] for c in notes[0]["changes"]} == {"property-removed", "enum-value-added"}


def test_sigterm_hands_the_targets_over_without_a_gap_longer_than_one_interval(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine]
) -> None:
    cluster, sim = make_cluster(tmp_path, start_pgbouncer, database, 12, ["images"])
    engine = database[1]
    try:
        cluster.start("a", "b")
        wait_for(lambda: cluster.settled(["a", "b"], 12), 60, "two replicas holding every target")
        moving = [r for r in cluster.regions if owner_of(engine, r, "images") == "b"]
        stopped = time.monotonic()
        assert cluster.daemons["b"].stop(signal.SIGTERM) == 0
        wait_for(lambda: cluster.owned("a") == 12, 20, "the survivor holding every target")
        time.sleep(INTERVAL * 3)
        gaps = {region: _largest_gap(sim.request_times(region, "images"), stopped - INTERVAL) for region in moving}
    finally:
        cluster.stop_all()
        sim.stop()
    assert moving and all(gap <= INTERVAL * 1.5 for gap in gaps.values()), gaps  # one interval, plus jitter


def _largest_gap(times: list[float], since: float) -> float:
    recent = [t for t in times if t >= since]
    return max((b - a for a, b in itertools.pairwise(recent)), default=float("inf"))


def _restart_postgresql() -> None:
    """The real server: ``pg_ctlcluster`` (Debian), fast shutdown, then wait until it accepts again."""
    ctl = require_tool("pg_ctlcluster", "SDM_REQUIRE_POSTGRES", "postgresql-common")
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run([ctl, "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"], check=True,
                   timeout=60, capture_output=True)  # fmt: skip
    isready = shutil.which("pg_isready") or "pg_isready"
    wait_for(lambda: subprocess.run([isready, "-q", "-h", "127.0.0.1"], check=False).returncode == 0, 60,
             "PostgreSQL back")  # fmt: skip


def test_every_replica_recovers_from_a_postgresql_restart_and_records_nothing_twice(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine]
) -> None:
    cluster, sim = make_cluster(tmp_path, start_pgbouncer, database, 12, ["images"])
    engine = database[1]
    try:
        cluster.start("a", "b")
        wait_for(lambda: cluster.settled(["a", "b"], 12), 60, "two replicas holding every target")
        _restart_postgresql()
        region = cluster.regions[0]
        sim.set_document(region, "images", mutate_breaking(sim.document(region, "images")))
        wait_for(lambda: recorded(engine, region, "images") == (2, 2), 60, "the change recorded after the restart")
        wait_for(lambda: cluster.settled(["a", "b"], 12), 60, "both replicas holding every target again")
        wait_for(lambda: all(cluster.daemons[n].metric("schemadrift_db_up") == 1 for n in ("a", "b")), 30,
                 "both replicas reporting the database up")  # fmt: skip
        time.sleep(INTERVAL * 3)
        totals = {r: recorded(engine, r, "images") for r in cluster.regions}
        logs = {name: daemon.log() for name, daemon in cluster.daemons.items()}
    finally:
        cluster.stop_all()
        sim.stop()
    assert totals[region] == (2, 2)
    assert all(totals[r] == (1, 0) for r in cluster.regions[1:]), totals  # one first snapshot each, never two
    assert all("Traceback" not in log for log in logs.values())


def test_a_replica_paused_past_its_lease_writes_nothing_it_lost_and_gives_it_up(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine]
) -> None:
    cluster, sim = make_cluster(tmp_path, start_pgbouncer, database, 12, ["images"])
    engine = database[1]
    try:
        cluster.start("a", "b")
        wait_for(lambda: cluster.settled(["a", "b"], 12), 60, "two replicas holding every target")
        region = next(r for r in cluster.regions if owner_of(engine, r, "images") == "b")
        paused = cluster.daemons["b"].process
        paused.send_signal(signal.SIGSTOP)
        sim.set_document(region, "images", mutate_breaking(sim.document(region, "images")))
        wait_for(lambda: owner_of(engine, region, "images") == "a", TTL + 10, "the survivor taking the target")
        wait_for(lambda: recorded(engine, region, "images") == (2, 2), 20, "the survivor recording the change")
        time.sleep(2)
        paused.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        wait_for(lambda: cluster.settled(["a", "b"], 12), 30, "the shares rebalanced after the pause")
        time.sleep(INTERVAL * 4)
        rates = [per_interval(sim, r, "images", resumed + INTERVAL * 2, time.monotonic()) for r in cluster.regions]
        totals = {r: recorded(engine, r, "images") for r in cluster.regions}
        owned_b = cluster.owned("b")
    finally:
        cluster.stop_all()
        sim.stop()
    assert totals[region] == (2, 2)  # recorded once, by the survivor: the paused replica was fenced
    assert all(totals[r] == (1, 0) for r in cluster.regions if r != region), totals
    assert owned_b is not None and 4 <= owned_b <= 8  # it gave the lost targets up and took its share back
    assert max(rates) <= 1.5, rates  # and nobody polls a target twice after the pause


def test_a_replica_cut_off_from_the_database_stops_polling_once_its_leases_are_gone(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine]
) -> None:
    cluster, sim = make_cluster(tmp_path, start_pgbouncer, database, 12, ["images"])
    cut = start_pgbouncer()  # b's own way to the database, to be cut
    try:
        cluster.start("a")
        cluster.url = cut.url(database[0])
        cluster.start("b")
        wait_for(lambda: cluster.settled(["a", "b"], 12), 60, "two replicas holding every target")
        cut.stop()
        wait_for(lambda: cluster.owned("a") == 12, TTL * 4, "the connected replica holding every target")
        wait_for(lambda: cluster.owned("b") == 0, TTL * 2, "the cut-off replica holding none")
        time.sleep(INTERVAL * 2)  # polls already running when b gave up have ended
        since = time.monotonic()
        time.sleep(INTERVAL * 5)
        until = time.monotonic()
        rates = [per_interval(sim, region, "images", since, until) for region in cluster.regions]
        cut_off = cluster.daemons["b"].get("/metrics")
        cut.start()
        wait_for(lambda: cluster.settled(["a", "b"], 12) and (cluster.owned("b") or 0) > 0, 60,
                 "the replica back with its share")  # fmt: skip
        log = cluster.daemons["b"].log()
    finally:
        cluster.stop_all()
        sim.stop()
    assert max(rates) <= 1.5, rates  # polled by one replica, not by both
    assert min(rates) >= 0.5, rates  # and still polled
    assert cut_off is not None and "schemadrift_poll_success{" not in cut_off.text  # b exports none of them
    assert "belong to the others now" in log


def test_the_replica_metrics_name_each_replica_and_one_leader(
    tmp_path: Path, start_pgbouncer: Callable[..., PgBouncer], database: tuple[str, Engine]
) -> None:
    cluster, sim = make_cluster(tmp_path, start_pgbouncer, database, 6, ["images"])

    def view() -> dict[str, list[float | None]]:
        replicas = [(cluster.daemons[n], n) for n in ("a", "b")]
        return {
            "leader": [d.metric("schemadrift_replica_leader", replica=n) for d, n in replicas],
            "info": [d.metric("schemadrift_replica_info", replica=n) for d, n in replicas],
            "live": [d.metric("schemadrift_replicas_live") for d, _ in replicas],
            "unowned": [d.metric("schemadrift_targets_unowned") for d, _ in replicas],
            "expected": [d.metric("schemadrift_replicas_expected") for d, _ in replicas],
        }

    expected = {"info": [1.0, 1.0], "live": [2.0, 2.0], "unowned": [0.0, 0.0], "expected": [3.0, 3.0]}
    try:
        cluster.start("a", "b")
        wait_for(lambda: cluster.settled(["a", "b"], 6), 60, "two replicas holding every target")
        seen: list[dict[str, list[float | None]]] = []

        def settled_view() -> bool:
            seen.append(view())
            values = seen[-1]
            return sorted(v or 0.0 for v in values["leader"]) == [0.0, 1.0] and all(
                values[name] == want for name, want in expected.items()
            )

        wait_for(settled_view, 20, f"one leader, both live, nothing unowned (last: {seen[-1:]})")
    finally:
        cluster.stop_all()
        sim.stop()


def test_a_second_process_on_one_sqlite_file_is_refused_naming_the_first(tmp_path: Path, simulator: Simulator) -> None:
    data = config_data(simulator, f"sqlite:///{tmp_path / 'one.db'}")
    first_port, second_port = free_port(), free_port()
    paths = []
    for port in (first_port, second_port):
        data["http"]["listen"] = f"127.0.0.1:{port}"
        paths.append(tmp_path / f"{port}.yaml")
        paths[-1].write_text(yaml.safe_dump(data))
    first = Daemon(paths[0], first_port, tmp_path / "first.log")
    try:
        wait_for(lambda: (r := first.get("/readyz")) is not None and r.status_code == 200, 30, "the first daemon")
        refused = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(paths[1])],
                                 capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    finally:
        first.stop()
    assert refused.returncode == 1
    assert f"pid {first.process.pid}" in refused.stderr and "use PostgreSQL for several replicas" in refused.stderr
    assert "Traceback" not in refused.stderr
