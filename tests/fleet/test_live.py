"""Change intelligence end to end: confirmation, ignore rules, acknowledgement, cross-region deviation,
rollouts, expected windows and flapping — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from monitor.app import Components, build
from monitor.cli import main
from monitor.config import parse_config
from monitor.domain import FailureReason, PollResult, TargetKey
from monitor.fleet.live import Fleet, Intelligence
from monitor.judge.kinds.schema.rules import classify
from monitor.judge.regions import compare_regions
from monitor.poll.fetch import Fetched, FetchError
from monitor.poll.service import PollService
from monitor.read.model import ReadModel
from monitor.signals.metrics import Metrics
from monitor.store.drift import DriftStore
from monitor.store.engine import make_engine
from monitor.store.records import HistoryFilter
from monitor.store.repository import Repository
from monitor.store.tables import ChangeRow, Rollout, Snapshot
from tests.conftest import REGIONS, config_data
from tests.support.paths import DATA
from tests.support.regions import Simulator, default_document, mutate_breaking

CASES = json.loads((DATA / "confirm_cases.json").read_text())["cases"]
IMAGES = TargetKey("sim", "r1", "images")
DOC_A = default_document("images")
DOC_B = mutate_breaking(DOC_A)
BODIES: dict[str, bytes | FetchError] = {
    "A": json.dumps(DOC_A).encode(),
    "B": json.dumps(DOC_B).encode(),
    "HTML": b"<html><body>Service maintenance</body></html>",
    "TRUNC": json.dumps(DOC_A).encode()[:500],
    "E503": FetchError(FailureReason.HTTP_503, "HTTP 503", status=503, transient=True),
}


class ScriptedFetcher:
    """A fake fetcher (unit level) answering each read from a script of bodies and errors."""

    def __init__(self) -> None:
        self.script: list[bytes | FetchError] = []

    async def fetch(self, spec: Any, credentials: Any = None, conditional: Any = None) -> Fetched:
        item = self.script.pop(0)
        if isinstance(item, FetchError):
            raise item
        return Fetched(item, 200, {"content-type": "application/json"})

    async def aclose(self) -> None:
        pass


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rows(engine: Any, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _config(simulator: Simulator, db_url: str, **extra: Any) -> Any:
    data = config_data(simulator, db_url, confirm_reads=1)
    for key, value in extra.items():
        if key == "cloud":
            data["clouds"][0].update(value)
        else:
            data[key] = value
    return parse_config(data, "test")


@pytest.mark.parametrize("name", sorted(CASES))
def test_confirmation(name: str, simulator: Simulator, migrated_db_url: str) -> None:
    case = CASES[name]
    config = parse_config(config_data(simulator, migrated_db_url, confirm_reads=case["confirm_reads"],
                                      confirm_delay="0s"), "test")  # fmt: skip
    engine = make_engine(migrated_db_url)
    metrics = Metrics(CollectorRegistry(), "t")
    fetcher = ScriptedFetcher()
    specs = [s for s in config.targets() if s.key == IMAGES]
    intelligence = Intelligence(specs, config, metrics, DriftStore(engine))
    service = PollService(Repository(engine), fetcher, metrics, intelligence=intelligence)  # type: ignore[arg-type]
    service.prepare(specs)
    loop = asyncio.new_event_loop()
    results: list[PollResult] = []
    try:
        for reads in case["polls"]:
            fetcher.script = [BODIES[r] for r in reads]
            results.append(loop.run_until_complete(service.poll(specs[0])))
            assert fetcher.script == [], "every scripted read was made"
    finally:
        loop.close()
        service.close()
    expected_changes = 0
    if case["changes"]:
        docs = {"A": DOC_A, "B": DOC_B}
        for step in case["changes"].split(","):
            old, new = step.split("->")
            expected_changes += len(classify(docs[old], docs[new]))
    assert rows(engine, Snapshot) == case["snapshots"]
    assert rows(engine, ChangeRow) == expected_changes
    last = results[-1]
    outcome = "unconfirmed" if last.unconfirmed else ("changed" if last.changes else "unchanged")
    assert outcome == case["last"]
    if name == "every_real_flip_is_recorded":
        labels = {"cloud": "sim", "region": "r1", "schema": "images"}
        assert metrics.registry.get_sample_value("schemadrift_flapping", labels) == 1
    engine.dispose()


# --- the real pipeline against the simulator ---------------------------------------------------------


class Pipeline:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.parts: Components = build(config)
        self.loop = asyncio.new_event_loop()

    def poll_all(self, regions: tuple[str, ...] = REGIONS, schema: str = "images") -> list[PollResult]:
        specs = [s for s in self.parts.specs if s.key.region in regions and s.key.schema == schema]
        return [self.loop.run_until_complete(self.parts.service.poll(s)) for s in specs]

    def refresh(self) -> None:
        self.loop.run_until_complete(self.parts.service.refresh_intelligence())

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.parts.metrics.registry.get_sample_value(name, labels)

    def close(self) -> None:
        self.loop.run_until_complete(self.parts.aclose())
        self.loop.close()


@pytest.fixture
def pipeline_factory(migrated_db_url: str, simulator: Simulator) -> Iterator[Any]:
    made: list[Pipeline] = []

    def make(**extra: Any) -> Pipeline:
        made.append(Pipeline(_config(simulator, migrated_db_url, **extra)))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.close()


def cli(config: Any, tmp_path: Path, *args: str) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    if not path.exists():
        data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["database"]["url"] = config.database.url.get_secret_value()
        data["clouds"][0]["auth"]["token"] = config.clouds[0].auth.token.get_secret_value()
        path.write_text(yaml.safe_dump(data))
    out = io.StringIO()
    code = main([*args[:1], "--config", str(path), *args[1:]], out=out)
    return code, out.getvalue()


def test_ignored_paths_are_stored_flagged_and_not_counted(pipeline_factory: Any, simulator: Simulator) -> None:
    p = pipeline_factory(cloud={"ignore": {"paths": ["/properties/images/items/properties/min_disk"]}})
    p.poll_all()
    simulator.set_document("r1", "images", DOC_B)
    [changed, *_] = p.poll_all()
    flags = {c.rule: c.ignored for c in changed.changes}
    assert flags == {"property-removed": True, "enum-value-added": False}
    history = Repository(p.parts.database.engine).history(HistoryFilter())
    assert {(r.rule, r.ignored) for r in history} == {("property-removed", True), ("enum-value-added", False)}
    assert p.gauge("schemadrift_changes_total", cloud="sim", region="r1", schema="images", severity="breaking") == 0
    assert p.gauge("schemadrift_changes_total", cloud="sim", region="r1", schema="images", severity="warning") == 1
    # an ignored change is never drift: no breaking drift series (it appears with a target's first breaking drift)
    assert p.gauge("schemadrift_drift_unacknowledged", cloud="sim", region="r1", schema="images",
                   severity="breaking") is None  # fmt: skip


@pytest.mark.slow
def test_acknowledging_a_fingerprint_clears_it_and_a_new_change_raises_it_again(
    pipeline_factory: Any, simulator: Simulator, tmp_path: Path
) -> None:
    p = pipeline_factory()
    labels = {"cloud": "sim", "region": "r1", "schema": "images"}
    p.poll_all()
    simulator.set_document("r1", "images", DOC_B)
    p.poll_all()
    assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity="breaking") == 1
    assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity="warning") == 1

    code, out = cli(p.config, tmp_path, "drift", "--cloud", "sim", "--region", "r1", "--schema", "images", "--json")
    assert code == 0
    drift = {d["rule"]: d["fingerprint"] for d in json.loads(out)}
    target = ("--cloud", "sim", "--region", "r1", "--schema", "images")
    prefix = drift["property-removed"][:12]
    code, out = cli(
        p.config, tmp_path, "ack", *target, "--fingerprint", prefix, "--comment", "bye min_disk", "--by", "al"
    )
    assert code == 0 and "acknowledged 1 change(s)" in out
    p.refresh()
    assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity="breaking") == 0
    assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity="warning") == 1

    third = json.loads(json.dumps(DOC_B))
    del third["properties"]["images"]["items"]["properties"]["min_ram"]
    simulator.set_document("r1", "images", third)
    p.poll_all()
    assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity="breaking") == 1  # the new removal

    code, out = cli(p.config, tmp_path, "ack", "--cloud", "sim", "--region", "r1", "--schema", "images",
                    "--approve", "--comment", "rolled out on purpose")  # fmt: skip
    assert code == 0 and "approved baseline" in out
    p.refresh()
    for severity in ("breaking", "warning"):  # their series stay, at 0
        assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity=severity) == 0
    assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity="info") is None  # never drifted


def test_one_region_changing_deviates_then_the_rollout_completes(
    pipeline_factory: Any, simulator: Simulator, tmp_path: Path
) -> None:
    p = pipeline_factory()
    group = {"cloud": "sim", "schema": "images"}
    p.poll_all()
    assert p.gauge("schemadrift_region_variants", **group) == 1
    simulator.set_document("r1", "images", DOC_B)
    p.poll_all()
    assert p.gauge("schemadrift_region_variants", **group) == 2
    assert p.gauge("schemadrift_region_deviates", cloud="sim", region="r1", schema="images") == 1
    assert p.gauge("schemadrift_region_deviates", cloud="sim", region="r2", schema="images") == 0
    assert p.gauge("schemadrift_rollout_in_progress", **group) == 1
    rollout = p.parts.intelligence.fleet.rollout("sim", "images")
    assert rollout["updated"] == ["r1"] and rollout["lagging"] == []  # the reference has not moved: none behind

    code, out = cli(p.config, tmp_path, "compare", "--cloud", "sim", "--schema", "images", "--json")
    assert code == 0
    report = json.loads(out)
    [deviation] = report["deviations"]
    assert "r1" in deviation["title"]
    assert {c["rule"] for c in deviation["changes"]} == {"property-removed", "enum-value-added"}
    code, text = cli(p.config, tmp_path, "compare", "--cloud", "sim", "--schema", "images")
    assert "deviates" in text and "property-removed" in text

    simulator.set_document("r2", "images", DOC_B)
    p.poll_all()
    rollout = p.parts.intelligence.fleet.rollout("sim", "images")  # the majority (the reference) moved: r3 lags
    assert rollout["updated"] == ["r1", "r2"] and rollout["lagging"] == ["r3"]
    simulator.set_document("r3", "images", DOC_B)
    p.poll_all()
    assert p.gauge("schemadrift_region_variants", **group) == 1
    assert p.gauge("schemadrift_rollout_in_progress", **group) == 0
    assert (p.gauge("schemadrift_rollout_last_completed_timestamp_seconds", **group) or 0) > 0
    with p.parts.database.engine.connect() as conn:
        [(outcome, started, completed)] = conn.execute(
            select(Rollout.outcome, Rollout.started_at, Rollout.completed_at)
        ).all()
    assert outcome == "converged" and completed is not None
    duration = (completed - started).total_seconds()
    assert duration > 0  # two polls apart
    assert p.gauge("schemadrift_rollout_last_duration_seconds", **group) == pytest.approx(duration)


def test_changes_in_an_expected_window_are_recorded_but_do_not_page(
    pipeline_factory: Any, simulator: Simulator, tmp_path: Path
) -> None:
    p = pipeline_factory()
    labels = {"cloud": "sim", "region": "r1", "schema": "images"}
    p.poll_all()
    code, out = cli(p.config, tmp_path, "expect", "--cloud", "sim", "--schema", "images", "--for", "1h",
                    "--comment", "CHG-1234 image API upgrade")  # fmt: skip
    assert code == 0 and "expected" in out
    p.refresh()
    simulator.set_document("r1", "images", DOC_B)
    [changed, *_] = p.poll_all()
    assert changed.changes and all(c.expected for c in changed.changes)
    assert p.gauge("schemadrift_changes_total", **labels, severity="breaking") == 0
    assert p.gauge("schemadrift_drift_unacknowledged", **labels, severity="breaking") is None  # never drift
    with p.parts.database.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ChangeRow).where(ChangeRow.expected)).scalar_one() == 2
        assert conn.execute(select(Rollout.expected)).scalar_one() is True


def test_diff_against_the_baseline_and_against_another_region(
    pipeline_factory: Any, simulator: Simulator, tmp_path: Path
) -> None:
    p = pipeline_factory()
    p.poll_all()
    simulator.set_document("r1", "images", DOC_B)
    p.poll_all()
    target = ("--cloud", "sim", "--region", "r1", "--schema", "images")
    code, out = cli(p.config, tmp_path, "diff", *target, "--baseline", "--format", "json")
    [baseline] = json.loads(out)
    assert code == 0 and "baseline" in baseline["title"]
    assert {c["rule"] for c in baseline["changes"]} == {"property-removed", "enum-value-added"}
    code, out = cli(p.config, tmp_path, "diff", *target, "--against-region", "r2", "--format", "jsonpatch")
    patch = json.loads(out)
    assert code == 0 and {op["op"] for op in patch} == {"remove", "add"}
    code, out = cli(p.config, tmp_path, "diff", *target, "--against-region", "r2", "--format", "markdown")
    assert code == 0 and "| breaking | property-removed |" in out


def test_compare_across_clouds_when_asked(migrated_db_url: str, simulator: Simulator, tmp_path: Path) -> None:
    data = config_data(simulator, migrated_db_url, confirm_reads=1)
    upstream = dict(data["clouds"][0], name="glance", regions=["r3"])
    data["clouds"] = [dict(data["clouds"][0], regions=["r1", "r2"]), upstream]
    simulator.set_document("r3", "images", DOC_B)
    p = Pipeline(parse_config(data, "test"))
    try:
        for spec in p.parts.specs:
            if spec.key.schema == "images":
                p.loop.run_until_complete(p.parts.service.poll(spec))
        code, out = cli(p.config, tmp_path, "compare", "--cloud", "sim", "--schema", "images", "--with-cloud", "glance",
                        "--json")  # fmt: skip
    finally:
        p.close()
    report = json.loads(out)
    assert code == 0
    assert report["deviating"] == ["glance/r3"]
    assert {r["region"] for r in report["regions"]} == {"sim/r1", "sim/r2", "glance/r3"}
    [deviation] = report["deviations"]
    assert "glance/r3" in deviation["title"] and deviation["changes"]


def test_an_expected_window_from_the_config_marks_changes_expected(migrated_db_url: str, simulator: Simulator) -> None:
    data = config_data(simulator, migrated_db_url, confirm_reads=1)
    data["changes"] = {"expected": [{"cloud": "sim", "schema": "images", "start": "2000-01-01T00:00:00Z",
                                     "end": "2100-01-01T00:00:00Z", "comment": "always"}]}  # fmt: skip
    p = Pipeline(parse_config(data, "test"))
    try:
        p.poll_all()
        simulator.set_document("r1", "images", DOC_B)
        [changed, *_] = p.poll_all()
    finally:
        p.close()
    assert changed.changes and all(c.expected for c in changed.changes)


def test_a_region_that_always_differed_is_a_deviation_not_a_rollout(
    pipeline_factory: Any, simulator: Simulator
) -> None:
    simulator.set_document("r3", "images", DOC_B)  # before the monitor ever saw it
    p = pipeline_factory()
    p.poll_all()
    group = {"cloud": "sim", "schema": "images"}
    assert p.gauge("schemadrift_rollout_in_progress", **group) == 0
    assert p.gauge("schemadrift_region_deviates", cloud="sim", region="r3", schema="images") == 1
    with p.parts.database.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Rollout)).scalar_one() == 0


def test_a_rollout_superseded_by_a_third_document_tracks_the_new_one(
    pipeline_factory: Any, simulator: Simulator
) -> None:
    p = pipeline_factory()
    p.poll_all()
    simulator.set_document("r1", "images", DOC_B)
    p.poll_all()
    third = json.loads(json.dumps(DOC_B))
    del third["properties"]["images"]["items"]["properties"]["min_ram"]
    simulator.set_document("r2", "images", third)
    p.poll_all()
    assert p.gauge("schemadrift_rollout_in_progress", cloud="sim", schema="images") == 1
    with p.parts.database.engine.connect() as conn:
        outcomes = [o for (o,) in conn.execute(select(Rollout.outcome).order_by(Rollout.id))]
    assert outcomes == ["superseded", None]


class _RecordingMetrics:
    """The three Fleet calls, recorded (unit level: the Fleet's bookkeeping, not the exposition)."""

    def __init__(self) -> None:
        self.deviates: dict[TargetKey, bool] = {}
        self.variants: int | None = None

    def register_groups(self, groups: Any) -> None:
        pass

    def set_deviates(self, key: TargetKey, deviates: bool) -> None:
        self.deviates[key] = deviates

    def set_group(self, cloud: str, schema: str, *, rollout: bool, variants: int | None = None) -> None:
        if variants is not None:
            self.variants = variants


@pytest.mark.parametrize("reference", ["majority", "r03"])
def test_the_fleet_exports_after_every_document_what_a_full_comparison_says(reference: str) -> None:
    """One region at a time (as polls arrive), the cheap per-target export agrees with compare_regions over
    every region — ties, a reference region without a document yet, and majorities that move included."""
    regions = [f"r{i:02d}" for i in range(9)]
    config = parse_config({"clouds": [{"name": "c", "endpoint": "https://{region}.example.org", "regions": regions,
                                       "schemas": ["images"], "reference": reference}]}, "test")  # fmt: skip
    metrics = _RecordingMetrics()
    fleet = Fleet(config.targets(), config.clouds, metrics)  # type: ignore[arg-type]
    rng = random.Random(13)
    shas = ["a" * 64, "b" * 64, "c" * 64]
    current: dict[str, str] = {}
    for _ in range(400):
        region, sha = rng.choice(regions), rng.choice(shas)
        fleet.observe(TargetKey("c", region, "images"), sha, T0, None, expected=False)
        current[region] = sha
        chosen = reference if reference in current else "majority"
        want = compare_regions(current, chosen)
        got = {key.region for key, deviates in metrics.deviates.items() if deviates}
        assert got == set(want.deviating), (current, reference)
        assert metrics.variants == len(want.variants)


def test_flapping_has_one_definition_that_survives_a_restart(pipeline_factory: Any, simulator: Simulator) -> None:
    first = pipeline_factory(changes={"flapping_threshold": 3})
    labels = {"cloud": "sim", "region": "r1", "schema": "images"}
    first.poll_all(("r1",))
    for document in (DOC_B, DOC_A, DOC_B):  # three changes within the window
        simulator.set_document("r1", "images", document)
        first.poll_all(("r1",))
    assert first.gauge("schemadrift_flapping", **labels) == 1

    again = pipeline_factory(changes={"flapping_threshold": 3})  # a new process on the same database (own metrics)

    assert again.gauge("schemadrift_flapping", **labels) == 1  # the metric, restored from the stored changes
    views = {view.key: view for view in ReadModel(again.config, again.parts.database).targets()}
    assert views[IMAGES].flapping and not views[TargetKey("sim", "r2", "images")].flapping  # the read model agrees
