"""``/metrics`` and ``/api`` agree: a seeded random fleet, driven through the real pipeline, on both backends.

One monitor process at a time is the real one (``app.build``: PollService, the live state, Metrics; ``/metrics``
and the read API on a real socket, through ``app.build_api`` as the daemon wires them), polling the region
simulator. The test plays the scheduler on a virtual clock (``time_machine``, not ticking: every time the
monitor reads is the one the test set), as the daemon's would: every target when its interval is due, the
batched poll times every ``FLUSH_INTERVAL_S``, the drift refresh every ``changes.drift_refresh``. Between
ticks, a seeded random sequence changes documents in some regions, rolls them back, acknowledges drift through
the store (as ``ack`` does; then a refresh, as the API's acknowledgement asks for one), makes regions fail and
recover, holds targets back (a stuck scheduler), lets short and long times pass, and restarts the process on
the same database. Cloud ``fast`` polls every second (the flush lag is five of its intervals), cloud ``slow``
every hour, with a configured reference region.

After every step the gauges on ``/metrics`` and the answers of ``/api/targets`` and ``/api/compare`` must agree
per target and per (cloud, schema): deviation, the reference's variants, unacknowledged drift per severity,
rollout in progress, flapping and staleness (the metrics' side of staleness: the alert's rule over the
scraped gauges). Where the rules' contract (``monitor.fleet.rules``) allows a lag, the test checks that the
difference is exactly that lag: the flapping gauge as judged at the last poll or refresh, within
``drift_refresh``; "stale" on the read side only for a stall that ended after the last flush.

``SDM_AGREEMENT_SEED`` picks another sequence (the seed is printed), ``SDM_AGREEMENT_STEPS`` its length.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import Components, build, build_api
from monitor.config import Config, parse_config
from monitor.domain import PollResult, Severity, TargetKey, TargetSpec
from monitor.fleet import rules
from monitor.poll.scheduler import FLUSH_INTERVAL_S
from monitor.web.app import create_app
from monitor.web.server import WebServer
from tests.conftest import TOKEN, config_data
from tests.support.regions import Simulator, default_document, mutate_breaking

T = TypeVar("T")
SEED = int(os.environ.get("SDM_AGREEMENT_SEED", "7"))  # 7: stalls end between flushes, ties, recoveries
STEPS = int(os.environ.get("SDM_AGREEMENT_STEPS", "40"))
START = datetime(2026, 3, 17, 9, 0, tzinfo=UTC)
REGIONS = ("r1", "r2", "r3", "r4")  # four: two regions against two is a tie the majority must break
SCHEMAS = {"fast": ("images", "member"), "slow": ("image", "members")}
INTERVALS = {"fast": 1.0, "slow": 3600.0}
FLAPPING_WINDOW, FLAPPING_THRESHOLD, DRIFT_REFRESH = 120.0, 3, 15.0
STEP, FINE = 1.0, FLUSH_INTERVAL_S + 1.0  # the scheduler's resolution (the fast interval); how long it is played
FAULTS: tuple[tuple[str, dict[str, Any]], ...] = (("status", {"code": 503}), ("html", {}), ("truncated", {}))


def fleet_config(sim: Simulator, db_url: str) -> Config:
    """Cloud ``fast`` (interval 1 s, majority) and ``slow`` (1 h, reference region r3) on the simulator."""
    data = config_data(sim, db_url, confirm_reads=1, jitter="0s")
    base = {**data["clouds"][0], "regions": list(REGIONS)}
    data["clouds"] = [
        {**base, "name": "fast", "schemas": list(SCHEMAS["fast"]), "interval": "1s"},
        {**base, "name": "slow", "schemas": list(SCHEMAS["slow"]), "interval": "1h", "reference": "r3"},
    ]
    data["changes"] = {"flapping_window": f"{FLAPPING_WINDOW:g}s", "flapping_threshold": FLAPPING_THRESHOLD,
                       "drift_refresh": f"{DRIFT_REFRESH:g}s"}  # fmt: skip
    return parse_config(data, "test")


def variants(schema: str) -> list[dict[str, Any]]:
    """Documents a region may serve: the packaged one, two with an added property, one with a property removed
    (breaking), and (``images``) the demo's breaking change."""
    base = default_document(schema)
    first = next(iter(base["properties"]))
    added = [{**base, "properties": {**base["properties"], f"zz_{n}": {"type": "string"}}} for n in (1, 2)]
    removed = {**base, "properties": {k: v for k, v in base["properties"].items() if k != first}}
    return [base, *added, removed, *([mutate_breaking(base)] if schema == "images" else [])]


# --- one monitor process ----------------------------------------------------------------------------------


class Process:
    """The real pipeline with its event loop in a thread, and ``/metrics`` plus the read API on a free port."""

    def __init__(self, config: Config) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="agreement-loop", daemon=True)
        self._thread.start()
        try:
            self.parts: Components = build(config)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        api = build_api(self.parts, self.loop)
        assert api is not None
        self.read = api.read
        self.server = WebServer(create_app(self.parts.metrics, lambda: {"scheduler": True}, api), "127.0.0.1", 0)
        self.server.start()
        # A connection per request: on a kept-alive one each answer waits ~40 ms for the client's delayed ACK
        # (the server's accepted sockets lack TCP_NODELAY), which would make this test three times slower.
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.server.port}", timeout=30,
                                 limits=httpx.Limits(max_keepalive_connections=0))  # fmt: skip

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def poll(self, specs: Sequence[TargetSpec]) -> list[PollResult]:
        async def concurrently() -> list[PollResult]:
            return list(await asyncio.gather(*(self.parts.service.poll(spec) for spec in specs)))

        return self.run(concurrently())

    def get(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params or None)
        assert response.status_code == 200, response.text
        return response.json() if path.startswith("/api") else response.text

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.run(self.parts.aclose())  # writes the batched poll times, as a stopping daemon does
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# --- the scheduler, played on the virtual clock -------------------------------------------------------------


@dataclass
class Fleet:
    """The run: the process, the clock, and what the test knows happened (poll times, flushes, refreshes)."""

    config: Config
    sim: Simulator
    clock: Any  # time_machine.Coordinates
    rng: random.Random
    process: Process
    last_poll: dict[TargetKey, datetime] = field(default_factory=dict)
    polls: dict[TargetKey, list[tuple[datetime, bool]]] = field(default_factory=dict)  # (started, ok), in order
    judged: dict[TargetKey, datetime] = field(default_factory=dict)  # the live flapping gauge's last judgement
    stalled: set[TargetKey] = field(default_factory=set)
    last_flush: datetime = START  # every poll before it is written (those at it or later maybe not)
    last_refresh: datetime = START
    served: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lags: dict[str, int] = field(default_factory=lambda: {"flapping": 0, "stale": 0})

    @property
    def now(self) -> datetime:
        return datetime.now(UTC)

    @property
    def specs(self) -> list[TargetSpec]:
        return self.process.parts.specs

    def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass as the daemon's scheduler would: its last :data:`FINE` seconds step by step
        (every due poll, the flush and the refresh when their time comes), the time before them at once — what
        happened then is all written by the end (it lies more than a flush back), so it needs no steps."""
        fine = min(seconds, FINE)
        self.clock.shift(timedelta(seconds=seconds - fine))
        while fine > 0:
            step = min(STEP, fine)
            fine -= step
            self.clock.shift(timedelta(seconds=step))
            self._run_due(self.now)

    def _run_due(self, now: datetime) -> None:
        if (now - self.last_flush).total_seconds() >= FLUSH_INTERVAL_S:
            self.process.run(self.process.parts.service.flush())
            self.last_flush = now  # the polls below come after it
        if (now - self.last_refresh).total_seconds() >= DRIFT_REFRESH:
            self.refresh()
        due = [s for s in self.specs if s.key not in self.stalled and self._due(s, now)]
        for result in self.process.poll(due) if due else []:
            self._polled(result, now)

    def _due(self, spec: TargetSpec, now: datetime) -> bool:
        last = self.last_poll.get(spec.key)
        return last is None or (now - last).total_seconds() >= spec.interval

    def _polled(self, result: PollResult, now: datetime) -> None:
        self.last_poll[result.target] = now
        self.polls.setdefault(result.target, []).append((now, result.ok))
        if result.ok and not result.unconfirmed and (result.first_snapshot or result.changes):
            self.judged[result.target] = now  # a stored snapshot goes through the live state: flapping re-judged

    def refresh(self) -> None:
        """The drift refresh (acknowledgements, baselines, flapping of every target), as its job runs it."""
        self.process.run(self.process.parts.service.refresh_intelligence())
        self.last_refresh = self.now
        self.judged = dict.fromkeys((s.key for s in self.specs), self.now)

    def restart(self, downtime: float) -> None:
        """Stop the process (its last poll times written), stay down ``downtime`` s, start again: the daemon
        polls every target at once (no jitter) and restores everything else from the database."""
        self.process.close()
        self.last_flush = self.now + timedelta(microseconds=1)  # after this instant's polls
        self.clock.shift(timedelta(seconds=downtime))
        self.process = Process(self.config)
        self.last_poll, self.stalled = {}, set()
        self.last_refresh = self.now
        self.judged = dict.fromkeys((s.key for s in self.specs), self.now)


# --- the random steps -------------------------------------------------------------------------------------


def change(fleet: Fleet) -> str:
    """Some regions of one schema move to another document."""
    schema = fleet.rng.choice([s for schemas in SCHEMAS.values() for s in schemas])
    document = fleet.rng.choice(variants(schema)[1:])
    regions = fleet.rng.sample(REGIONS, fleet.rng.randint(1, len(REGIONS)))
    for region in regions:
        fleet.served[(region, schema)] = fleet.sim.document(region, schema)
        fleet.sim.set_document(region, schema, document)
    return f"change {schema} in {','.join(sorted(regions))}"


def rollback(fleet: Fleet) -> str:
    """A region goes back to the document it served before its last change (or the packaged one)."""
    region, schema = fleet.rng.choice(sorted(fleet.served)) if fleet.served else ("r1", "images")
    fleet.sim.set_document(region, schema, fleet.served.pop((region, schema), default_document(schema)))
    return f"rollback {schema} in {region}"


def acknowledge(fleet: Fleet) -> str:
    """Acknowledge one unacknowledged drift change, or approve a target's current document, through the store
    (as ``ack`` does), then refresh (as an acknowledgement through the API asks for)."""
    store, read, now = fleet.process.parts.database.drift, fleet.process.read, fleet.now
    drifting = [t for t in read.targets(now) if any(t.unacknowledged.values())]
    if not drifting:
        return "ack: nothing to acknowledge"
    view = fleet.rng.choice(drifting)
    target_id = read.row(view.key).id
    if fleet.rng.random() < 0.3:
        store.approve_current(target_id, comment="rolled out", actor="agreement", now=now)
        what = "approve"
    else:
        pending = [item for item in read.drift(view.key, now) if not item.acknowledged]
        store.acknowledge(target_id, [fleet.rng.choice(pending).fingerprint], comment="ok", actor="agreement", now=now)
        what = "ack"
    fleet.refresh()
    return f"{what} {view.key}"


def fail(fleet: Fleet) -> str:
    """A region starts failing (every schema of it), or recovers."""
    region = fleet.rng.choice(REGIONS)
    if fleet.sim.fault(region) is not None:
        fleet.sim.set_fault(region, None)
        return f"recover {region}"
    fault, options = fleet.rng.choice(FAULTS)
    fleet.sim.set_fault(region, fault, **options)
    return f"fail {region} ({fault})"


def stall(fleet: Fleet) -> str:
    """The scheduler stops polling some targets (a hung job), or starts again."""
    if fleet.stalled and fleet.rng.random() < 0.5:
        fleet.stalled.clear()
        return "unstall"
    keys = fleet.rng.sample([s.key for s in fleet.specs], 3)
    fleet.stalled.update(keys)
    return f"stall {', '.join(map(str, keys))}"


def restart(fleet: Fleet) -> str:
    downtime = fleet.rng.choice([0.5, 3.0, 30.0, 7300.0])
    fleet.restart(downtime)
    return f"restart after {downtime:g}s down"


ACTIONS: tuple[tuple[Callable[[Fleet], str], int], ...] = (
    (change, 6), (rollback, 3), (acknowledge, 3), (fail, 3), (stall, 2), (restart, 1),
)  # fmt: skip
WAITS = (0.5, 1.0, 2.0, 4.0, 6.0, 30.0, 130.0, 7300.0)  # short (the flush lag matters) to past the slow interval


# --- the agreement --------------------------------------------------------------------------------------


COMPARED = (
    "schemadrift_region_deviates", "schemadrift_drift_unacknowledged", "schemadrift_rollout_in_progress",
    "schemadrift_flapping", "schemadrift_last_success_timestamp_seconds", "schemadrift_poll_success",
    "schemadrift_poll_interval_seconds", "schemadrift_region_variants",
)  # fmt: skip


@dataclass(frozen=True)
class Scrape:
    """The scraped samples of the families compared: name -> labels (sorted items) -> value."""

    samples: dict[str, dict[tuple[tuple[str, str], ...], float]]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        """Parsed by prometheus_client's parser, only the families compared (the rest is most of the text)."""
        wanted = "".join(line + "\n" for line in text.splitlines() if line.split("{")[0].split(" ")[0] in COMPARED)
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(wanted):
            for sample in family.samples:
                samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name][tuple(sorted(labels.items()))]

    def count(self, name: str, **labels: str) -> float:
        """A series that appears with its first occurrence (metrics.detail basic): absent is 0."""
        return self.samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def check(fleet: Fleet) -> None:
    """Every target and every (cloud, schema): what ``/metrics`` says is what ``/api`` says."""
    scrape = Scrape.parse(fleet.process.get("/metrics"))
    targets = {TargetKey(t["cloud"], t["region"], t["schema"]): t for t in fleet.process.get("/api/targets")["targets"]}
    assert set(targets) == {spec.key for spec in fleet.specs}
    times = fleet.process.parts.database.drift.change_times(START)
    ids = {key: row.id for key, row in fleet.process.read.known().items()}
    for key, target in targets.items():
        labels = {"cloud": key.cloud, "region": key.region, "schema": key.schema}
        assert bool(scrape.value("schemadrift_region_deviates", **labels)) == target["deviates"], key
        # the words of the tile agree with the gauge: only a deviating region stands anywhere but at the reference
        assert target["standing"] in (None, "same as reference") or target["deviates"], key
        assert target["standing"] != "same as reference" or not target["deviates"], key
        drift = {s.value: int(scrape.count("schemadrift_drift_unacknowledged", **labels, severity=s.value))
                 for s in Severity}  # fmt: skip
        assert drift == target["unacknowledged"], key
        in_progress = scrape.value("schemadrift_rollout_in_progress", cloud=key.cloud, schema=key.schema)
        assert bool(in_progress) == target["rollout_in_progress"], key
        flips = times.get(ids[key], [])
        check_flapping(fleet, key, bool(scrape.value("schemadrift_flapping", **labels)), target["flapping"], flips)
        check_stale(fleet, key, scrape, target)
    for cloud, schemas in SCHEMAS.items():
        for schema in schemas:
            check_group(fleet, scrape, targets, cloud, schema)


def check_group(fleet: Fleet, scrape: Scrape, targets: dict[TargetKey, Any], cloud: str, schema: str) -> None:
    response = fleet.process.http.get("/api/compare", params={"cloud": cloud, "schema": schema})
    variants_gauge = scrape.value("schemadrift_region_variants", cloud=cloud, schema=schema)
    in_progress = bool(scrape.value("schemadrift_rollout_in_progress", cloud=cloud, schema=schema))
    if response.status_code == 409:  # no region has a document yet
        assert variants_gauge == 0 and not in_progress
        return
    assert response.status_code == 200, response.text
    compare = response.json()
    assert variants_gauge == len(compare["comparison"]["variants"]), (cloud, schema)
    gauged = {k.region for k, t in targets.items() if (k.cloud, k.schema) == (cloud, schema) and t["deviates"]}
    assert set(compare["comparison"]["deviating"]) == gauged, (cloud, schema)
    assert in_progress == bool(compare["rollouts"]), (cloud, schema)
    for rollout in compare["rollouts"]:
        current = {r["region"]: r["sha256"] for r in compare["comparison"]["regions"] if r["sha256"]}
        roles = rules.rollout_regions(current, rollout["to_sha256"], compare["comparison"]["reference"]["sha256"])
        assert (tuple(rollout["updated"]), tuple(rollout["lagging"])) == roles, (cloud, schema)
    members = {k.region: t for k, t in targets.items() if (k.cloud, k.schema) == (cloud, schema)}
    for role in ("updated", "lagging"):  # the targets' roles are the compare page's lists
        listed = [r for rollout in compare["rollouts"] for r in rollout[role]]
        assert sorted(region for region, t in members.items() if t["rollout_role"] == role) == listed, (cloud, role)


def check_flapping(fleet: Fleet, key: TargetKey, gauge: bool, answer: bool, flips: Sequence[datetime]) -> None:
    """Equal — or the gauge is the rule as of its last judgement (a poll storing a snapshot, or a refresh),
    less than ``drift_refresh`` ago, and a change left the window since."""
    assert answer == rules.flapping(flips, fleet.now, FLAPPING_WINDOW, FLAPPING_THRESHOLD), key
    if gauge == answer:
        return
    judged = fleet.judged[key]
    assert (fleet.now - judged).total_seconds() < DRIFT_REFRESH, (key, judged)
    assert gauge == rules.flapping(flips, judged, FLAPPING_WINDOW, FLAPPING_THRESHOLD), key
    fleet.lags["flapping"] += 1


def check_stale(fleet: Fleet, key: TargetKey, scrape: Scrape, target: dict[str, Any]) -> None:
    """The alert's rule over the gauges equals the API's "stale" — or the API still says stale for a target
    whose stall ended after the last flush: no poll at all for longer than the threshold (a stuck scheduler, a
    stopped monitor), then a success the database has not been told of yet."""
    labels = {"cloud": key.cloud, "region": key.region, "schema": key.schema}
    last = scrape.value("schemadrift_last_success_timestamp_seconds", **labels)
    ok = scrape.value("schemadrift_poll_success", **labels) == 1
    interval = scrape.value("schemadrift_poll_interval_seconds", **labels)
    gauged = rules.stale(ok, datetime.fromtimestamp(last, UTC) if last else None, interval, fleet.now)
    if gauged == target["stale"]:
        return
    assert target["stale"] and not gauged, (key, target)
    known = database_last_success(target)
    assert known is not None, key
    after = [(at, success) for at, success in fleet.polls.get(key, []) if at > known]
    threshold = timedelta(seconds=2 * interval + rules.STALE_GRACE_S)
    assert after and after[0][1], (key, known, after[:1])  # the first poll after it succeeded (no failure between)
    ended = after[0][0]
    assert ended >= fleet.last_flush and ended - known > threshold, (key, known, ended, fleet.last_flush)
    fleet.lags["stale"] += 1


def database_last_success(target: dict[str, Any]) -> datetime | None:
    """The last success the database knows of, as the read model takes it (the last poll after a recovery)."""
    success, polled = _time(target["last_success_at"]), _time(target["last_poll_at"])
    if target["poll_ok"] is True and polled is not None and (success is None or polled > success):
        return polled
    return success


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- the test -----------------------------------------------------------------------------------------------


@pytest.fixture
def traveller() -> Iterator[Any]:
    with time_machine.travel(START, tick=False) as coordinates:
        yield coordinates


@pytest.mark.slow  # about 10 s per backend
def test_metrics_and_the_api_agree_after_every_step(
    traveller: Any, migrated_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    with capsys.disabled():
        print(f"\nfleet agreement: SDM_AGREEMENT_SEED={SEED} SDM_AGREEMENT_STEPS={STEPS}")
    with Simulator(REGIONS, token=TOKEN) as sim:
        config = fleet_config(sim, migrated_db_url)
        fleet = Fleet(config, sim, traveller, rng, Process(config))
        try:
            fleet.tick(STEP)
            check(fleet)
            actions, weights = zip(*ACTIONS, strict=True)
            for step in range(STEPS):
                done = rng.choices(actions, weights)[0](fleet)
                fleet.tick(rng.choice(WAITS))
                try:
                    check(fleet)
                except AssertionError:
                    print(f"step {step} ({done}) at {fleet.now.isoformat()}: /metrics and /api disagree (seed {SEED})")
                    raise
        finally:
            fleet.process.close()
    print(f"lags within the rules' contract: {fleet.lags}")


def test_a_changed_document_keeps_its_poll_time_in_the_database_through_the_next_flush(
    traveller: Any, migrated_db_url: str
) -> None:
    """An unchanged poll's time waits for the batch flush; a changed document's is written with its snapshot.
    The flush after both must not put the older time back (the read side would judge from it)."""
    key = TargetKey("fast", "r1", "images")
    with Simulator(REGIONS, token=TOKEN) as sim:
        process = Process(fleet_config(sim, migrated_db_url))
        try:
            [spec] = [s for s in process.parts.specs if s.key == key]
            process.poll([spec])  # the first snapshot
            traveller.shift(1)
            process.poll([spec])  # unchanged: marked for the flush
            sim.set_document("r1", "images", variants("images")[1])
            traveller.shift(1)
            [changed] = process.poll([spec])
            process.run(process.parts.service.flush())
            view = process.read.target(key)
        finally:
            process.close()
    assert changed.changes and changed.started_at == START + timedelta(seconds=2)
    assert (view.state.last_poll_at, view.state.last_success_at) == (changed.started_at, changed.started_at)
