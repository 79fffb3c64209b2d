"""One tick end to end (simulator → fetch → store → metrics) on SQLite and PostgreSQL, with faults."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from sqlalchemy import text

from monitor.app import Components
from monitor.auth.credentials import Credentials
from monitor.config import parse_config
from monitor.domain import FailureReason, PollResult, Severity, TargetKey, TargetSpec
from monitor.poll import digest as digest_module
from monitor.poll.fetch import Fetched, Fetcher
from monitor.poll.service import PollService
from monitor.read.model import ReadModel
from monitor.store.repository import Repository
from monitor.store.tables import ChangeRow, Document, PollTransition, Snapshot
from tests.conftest import TOKEN, allow_inserts, config_data, fail_inserts, full_metrics, make_config
from tests.support.polling import IMAGES, every_row, poll, rows, run, sample, start, stop
from tests.support.regions import Simulator, mutate_breaking


@pytest.fixture
def parts(simulator: Simulator, migrated_db_url: str) -> Iterator[Components]:
    components = start(full_metrics(make_config(simulator, migrated_db_url)))  # the document and poll counts too
    yield components
    stop(components)


def test_the_first_poll_is_a_snapshot_not_a_change(parts: Components) -> None:
    result = poll(parts)
    assert result.ok and result.first_snapshot and result.changes == ()
    assert rows(parts, Snapshot) == 1 and rows(parts, ChangeRow) == 0
    assert sample(parts, "schemadrift_poll_success") == 1
    assert sample(parts, "schemadrift_schema_properties") == 33
    assert sample(parts, "schemadrift_changes_total", severity="breaking") == 0


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """From now on, the body of every document the service parses (normalises and hashes) is appended."""
    parsed: list[bytes] = []
    real_digest = digest_module.digest

    def counting_digest(raw: bytes, fetched: Fetched, spec: TargetSpec) -> Any:
        parsed.append(fetched.body)
        return real_digest(raw, fetched, spec)

    monkeypatch.setattr(digest_module, "digest", counting_digest)
    return parsed


def test_an_unchanged_poll_writes_no_row_and_parses_nothing(parts: Components, monkeypatch: pytest.MonkeyPatch) -> None:
    poll(parts)
    before = every_row(parts)
    parsed = count_parses(monkeypatch)

    results = [poll(parts) for _ in range(3)]
    run(parts, parts.service.flush())

    assert all(r.ok and not r.first_snapshot and r.changes == () for r in results)
    assert every_row(parts) == before and before["poll_transitions"] == 1
    assert parsed == []  # the same bytes as last time: only hashed
    [snapshot] = Repository(parts.database.engine).snapshots(parts.service._bases[IMAGES].target_id)
    assert snapshot.last_seen == results[-1].started_at  # moved by the batched write


def test_outcome_transitions_are_recorded_once_and_survive_a_restart(
    simulator: Simulator, migrated_db_url: str
) -> None:
    first = start(make_config(simulator, migrated_db_url))
    poll(first)
    simulator.set_fault("r1", "status", code=503)
    poll(first)
    poll(first)  # still failing for the same reason: no row
    simulator.set_fault("r1", "status", code=404)
    poll(first)  # another reason: a row
    stop(first)

    second = start(make_config(simulator, migrated_db_url))
    try:
        assert sample(second, "schemadrift_poll_success") == 0  # restored: the target is failing
        poll(second)  # still 404 after the restart: no new row
        simulator.set_fault("r1", None)
        assert poll(second).ok
        tid = second.service._bases[IMAGES].target_id
        transitions = Repository(second.database.engine).transitions(tid)
        assert [(t.ok, t.reason, t.http_status) for t in transitions] == [
            (True, None, 200), (False, FailureReason.HTTP_503, 503), (False, FailureReason.HTTP_404, 404),
            (True, None, 200),
        ]  # fmt: skip
        assert rows(second, PollTransition) == 4
    finally:
        stop(second)


def test_reordered_keys_and_enums_are_not_a_change(parts: Components, simulator: Simulator) -> None:
    poll(parts)
    simulator.set_fault("r1", "reordered")
    result = poll(parts)
    assert result.ok and result.changes == ()
    assert rows(parts, Snapshot) == 1


def test_a_schema_change_is_recorded_with_path_rule_and_severity(parts: Components, simulator: Simulator) -> None:
    poll(parts)
    simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
    result = poll(parts)
    found = {(c.path, c.rule, c.severity) for c in result.changes}
    assert found == {
        ("/properties/images/items/properties/min_disk", "property-removed", Severity.BREAKING),
        ("/properties/images/items/properties/disk_format/enum", "enum-value-added", Severity.WARNING),
    }
    assert rows(parts, Snapshot) == 2 and rows(parts, ChangeRow) == 2
    assert sample(parts, "schemadrift_changes_total", severity="breaking") == 1
    assert sample(parts, "schemadrift_changes_total", severity="warning") == 1
    assert (sample(parts, "schemadrift_last_change_timestamp_seconds") or 0) > 0


def test_two_regions_serving_the_same_document_share_one_row(parts: Components) -> None:
    poll(parts, IMAGES)
    poll(parts, TargetKey("sim", "r2", "images"))
    assert rows(parts, Document) == 1 and rows(parts, Snapshot) == 2


def test_regions_serving_the_same_bytes_have_them_parsed_once(
    parts: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = count_parses(monkeypatch)
    first, second = poll(parts, IMAGES), poll(parts, TargetKey("sim", "r2", "images"))
    other_schema = poll(parts, TargetKey("sim", "r2", "image"))

    assert first.first_snapshot and second.first_snapshot and first.document_sha == second.document_sha
    assert len(parsed) == 2 and other_schema.document_sha != first.document_sha  # images once, image once
    assert rows(parts, Snapshot) == 3 and rows(parts, Document) == 2


def poll_all(parts: Components) -> list[PollResult]:
    """Every target at once, as a first round does."""

    async def every() -> list[PollResult]:
        return await asyncio.gather(*(parts.service.poll(spec) for spec in parts.specs))

    return run(parts, every())


def test_first_snapshots_polled_together_are_written_in_batches(
    parts: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    real = Repository.record_firsts

    def counting(self: Repository, firsts: Any, fence: Any = None) -> Any:
        batches.append(len(firsts))
        return real(self, firsts, fence)

    monkeypatch.setattr(Repository, "record_firsts", counting)
    results = poll_all(parts)

    assert all(r.ok and r.first_snapshot for r in results) and sum(batches) == len(parts.specs)
    assert len(batches) < len(parts.specs)  # whatever waited while a batch was written went into the next one
    assert rows(parts, Snapshot) == len(parts.specs) and rows(parts, PollTransition) == len(parts.specs)
    assert all(sample(parts, "schemadrift_poll_success", spec.key) == 1 for spec in parts.specs)
    assert sample(parts, "schemadrift_schema_properties") == 33
    again = poll_all(parts)
    assert all(r.ok and not r.first_snapshot for r in again) and rows(parts, Snapshot) == len(parts.specs)


def test_cancelled_first_polls_let_their_queued_writes_land_and_be_counted(
    parts: Components, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real = Repository.record_firsts

    def held_up(self: Repository, firsts: Any, fence: Any = None) -> Any:
        entered.set()
        release.wait(10)
        return real(self, firsts, fence)

    monkeypatch.setattr(Repository, "record_firsts", held_up)

    async def cancel_midway() -> list[Any]:
        tasks = [asyncio.ensure_future(parts.service.poll(spec)) for spec in parts.specs]
        while not entered.is_set():
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = run(parts, cancel_midway())

    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    written = rows(parts, Snapshot)
    counted = sum(sample(parts, "schemadrift_polls_total", spec.key) or 0 for spec in parts.specs)
    assert written > 0 and counted == written  # what was queued landed, and every write was counted


def test_a_first_snapshot_another_writer_stored_first_is_compared_with_it(
    parts: Components, simulator: Simulator, migrated_db_url: str
) -> None:
    original = simulator.document("r1", "images")
    other = start(make_config(simulator, migrated_db_url))
    try:
        simulator.set_document("r1", "images", mutate_breaking(original))
        poll(other)  # another writer stored the changed document first
    finally:
        stop(other)
    simulator.set_document("r1", "images", original)

    result = poll(parts)  # its base is empty: the batch finds the other snapshot, the target is compared with it

    assert result.ok and not result.first_snapshot and {c.rule for c in result.changes} >= {"property-added"}
    assert rows(parts, Snapshot) == 2 and rows(parts, ChangeRow) == len(result.changes)


def test_a_batch_of_first_snapshots_that_cannot_be_stored_is_counted_as_db_and_stored_later(parts: Components) -> None:
    fail_inserts(parts.database.engine, "snapshots")
    failed = poll_all(parts)
    allow_inserts(parts.database.engine, "snapshots")
    stored_later = poll_all(parts)

    assert all(not r.ok and r.reason is FailureReason.DB for r in failed)
    assert all(r.ok and r.first_snapshot for r in stored_later) and rows(parts, Snapshot) == len(parts.specs)


FAULTS: list[tuple[str, dict[str, Any], FailureReason]] = [
    ("status", {"code": 503}, FailureReason.HTTP_503),
    ("status", {"code": 403}, FailureReason.HTTP_403),
    ("hang", {}, FailureReason.TIMEOUT),
    ("html", {}, FailureReason.INVALID_JSON),
    ("html_as_json", {}, FailureReason.INVALID_JSON),
    ("truncated", {}, FailureReason.INVALID_JSON),
    ("not_object", {}, FailureReason.INVALID_SCHEMA),
    ("not_schema", {}, FailureReason.INVALID_SCHEMA),
    ("deep", {}, FailureReason.INVALID_JSON),
    ("nan", {}, FailureReason.INVALID_JSON),
    ("duplicate_keys", {}, FailureReason.INVALID_JSON),
    ("oversized", {"size": 6 * 2**20, "mode": "chunked"}, FailureReason.TOO_LARGE),
    ("gzip_bomb", {"size": 64 * 2**20}, FailureReason.TOO_LARGE),
    ("redirect", {"location": "http://localhost:9/elsewhere"}, FailureReason.REDIRECT),
    ("redirect_loop", {}, FailureReason.REDIRECT),
]


@pytest.mark.parametrize(("fault", "options", "reason"), FAULTS, ids=[f[0] + str(i) for i, f in enumerate(FAULTS)])
def test_a_fault_is_counted_and_writes_no_snapshot_or_change(
    parts: Components, simulator: Simulator, fault: str, options: dict[str, Any], reason: FailureReason
) -> None:
    poll(parts)
    simulator.set_fault("r1", fault, **options)
    result = poll(parts)
    assert not result.ok and result.reason is reason
    assert sample(parts, "schemadrift_poll_success") == 0
    assert sample(parts, "schemadrift_poll_failures_total", reason=reason.value) == 1
    assert rows(parts, Snapshot) == 1 and rows(parts, ChangeRow) == 0
    # the fault never became the comparison base: recovery is not a change either
    simulator.set_fault("r1", None)
    recovered = poll(parts)
    assert recovered.ok and recovered.changes == () and rows(parts, Snapshot) == 1


@pytest.mark.slow
def test_a_database_failure_is_counted_and_the_change_is_caught_up(parts: Components, simulator: Simulator) -> None:
    poll(parts)
    simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
    fail_inserts(parts.database.engine, "snapshots")
    failed = poll(parts)
    assert not failed.ok and failed.reason is FailureReason.DB
    assert parts.metrics.registry.get_sample_value("schemadrift_db_up") == 0
    assert parts.metrics.registry.get_sample_value("schemadrift_db_errors_total", {"operation": "record_snapshot"}) == 1
    assert rows(parts, ChangeRow) == 0
    allow_inserts(parts.database.engine, "snapshots")
    caught_up = poll(parts)
    assert caught_up.ok and len(caught_up.changes) == 2
    assert parts.metrics.registry.get_sample_value("schemadrift_db_up") == 1
    assert rows(parts, ChangeRow) == 2


@pytest.mark.slow
def test_gauges_are_restored_from_the_database_after_a_restart(simulator: Simulator, migrated_db_url: str) -> None:
    first = start(make_config(simulator, migrated_db_url))
    poll(first)
    simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
    poll(first)
    last_change = sample(first, "schemadrift_last_change_timestamp_seconds")
    stop(first)

    second = start(full_metrics(make_config(simulator, migrated_db_url)))
    try:
        assert sample(second, "schemadrift_last_change_timestamp_seconds") == last_change
        assert sample(second, "schemadrift_poll_success") == 1
        assert sample(second, "schemadrift_schema_properties") == 32
        assert sample(second, "schemadrift_poll_success", TargetKey("sim", "r3", "member")) == 0
        again = poll(second)  # same document as before the restart: no change, no new snapshot
        assert again.ok and again.changes == () and not again.first_snapshot
    finally:
        stop(second)


def test_the_token_appears_in_no_row_metric_or_log(
    parts: Components, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    poll(parts)
    simulator.set_fault("r1", "status", code=401)
    poll(parts)
    simulator.set_fault("r1", "redirect", location="http://localhost:9/x")
    poll(parts)
    from prometheus_client import generate_latest

    assert TOKEN not in generate_latest(parts.metrics.registry).decode()
    assert TOKEN not in caplog.text
    with parts.database.engine.connect() as conn:
        for table in ("targets", "documents", "snapshots", "poll_transitions", "changes"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert TOKEN not in repr(tuple(row)), table


def test_label_values_come_only_from_the_config(parts: Components, simulator: Simulator) -> None:
    simulator.set_fault("r1", "status", code=599)
    poll(parts)
    labels = {
        (s.labels.get("cloud"), s.labels.get("region"), s.labels.get("schema"), s.labels.get("reason"))
        for metric in parts.metrics.registry.collect()
        for s in metric.samples
    }
    regions = {label[1] for label in labels if label[1] is not None}
    assert regions == {"r1", "r2", "r3"}
    reasons = {label[3] for label in labels if label[3] is not None}
    assert reasons == {"http_other"}  # 599 is no reason of its own; reasons appear as they occur


def _sqlite_parts(simulator: Simulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Components:
    monkeypatch.setattr("monitor.store.engine.SQLITE_BUSY_TIMEOUT_MS", 300)
    monkeypatch.setattr("monitor.store.base.RETRY_PAUSE", 0.05)
    return start(make_config(simulator, f"sqlite:///{tmp_path}/locked.db"))


def _lock_sqlite(path: str) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_sqlite_lock_shorter_than_the_retries_is_waited_out(
    simulator: Simulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _sqlite_parts(simulator, tmp_path, monkeypatch)
    try:
        holder = _lock_sqlite(f"{tmp_path}/locked.db")
        threading.Timer(0.1, holder.rollback).start()  # well inside the first 300 ms busy wait
        result = poll(parts)
        assert result.ok and result.first_snapshot
        assert rows(parts, Snapshot) == 1
    finally:
        stop(parts)


def test_a_sqlite_lock_past_every_retry_is_counted_as_db(
    simulator: Simulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _sqlite_parts(simulator, tmp_path, monkeypatch)
    try:
        holder = _lock_sqlite(f"{tmp_path}/locked.db")
        result = poll(parts)
        assert not result.ok and result.reason is FailureReason.DB
        assert parts.metrics.registry.get_sample_value("schemadrift_db_up") == 0
        holder.rollback()
        assert poll(parts).first_snapshot  # the daemon lives on and catches up
        assert rows(parts, Snapshot) == 1
    finally:
        stop(parts)


def test_retargeting_drops_a_departed_regions_series_and_restores_a_returning_one(parts: Components) -> None:
    everything = list(parts.specs)
    poll(parts, TargetKey("sim", "r2", "images"))
    without_r2 = [spec for spec in everything if spec.key.region != "r2"]
    parts.service.retarget(without_r2)
    r2 = TargetKey("sim", "r2", "images")
    assert sample(parts, "schemadrift_poll_success", r2) is None
    assert sample(parts, "schemadrift_poll_interval_seconds", r2) is None
    assert sample(parts, "schemadrift_poll_success") is not None  # r1 stays
    read = ReadModel(parts.config, parts.database)
    repository = Repository(parts.database.engine)
    assert {k.region for k in read.known()} == {"r1", "r3"}  # the read side (CLI, API, UI) leaves r2 out now
    assert repository.target_id(r2) is not None  # its history stays
    parts.service.retarget(everything)
    assert {k.region for k in read.known()} == {"r1", "r2", "r3"}
    assert sample(parts, "schemadrift_poll_success", r2) == 1  # restored from the database
    assert (sample(parts, "schemadrift_last_success_timestamp_seconds", r2) or 0) > 0
    assert poll(parts, r2).first_snapshot is False  # the comparison base came back too


def test_a_cloud_losing_every_region_loses_its_group_series(parts: Components) -> None:
    group = {"cloud": "sim", "schema": "images"}
    registry = parts.metrics.registry
    assert registry.get_sample_value("schemadrift_region_variants", group) is not None
    parts.service.retarget([])
    assert registry.get_sample_value("schemadrift_region_variants", group) is None
    assert registry.get_sample_value("schemadrift_rollout_in_progress", group) is None


def test_a_failing_target_logs_when_its_outcome_changes_while_the_metrics_count_every_failure(
    parts: Components, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    poll(parts)
    caplog.set_level(logging.INFO)
    simulator.set_fault("r1", "status", code=503)
    for _ in range(3):
        poll(parts)
    simulator.set_fault("r1", "status", code=404)
    poll(parts)
    poll(parts)
    simulator.set_fault("r1", None)
    poll(parts)
    poll(parts)

    told = [(r.levelname, r.getMessage()) for r in caplog.records if r.getMessage().startswith("sim/r1/images: ")]
    assert [level for level, _ in told] == ["WARNING", "WARNING", "INFO"], told
    assert told[0][1].startswith("sim/r1/images: poll failed (http_503): ")
    assert told[1][1].startswith("sim/r1/images: poll failed (http_404, was http_503): ")
    assert told[2][1].startswith("sim/r1/images: recovered: polls succeed again after 5 failed poll(s) since ")
    assert sample(parts, "schemadrift_poll_failures_total", reason="http_503") == 3
    assert sample(parts, "schemadrift_poll_failures_total", reason="http_404") == 2
    assert sample(parts, "schemadrift_poll_success") == 1


class GatedFetcher(Fetcher):
    """The real fetcher, held at a gate: counts the fetches in flight (waiting at the gate or fetching)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most = 0

    async def fetch(
        self, spec: TargetSpec, credentials: Credentials | None = None, conditional: Mapping[str, str] | None = None
    ) -> Fetched:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.gate.wait()
            return await super().fetch(spec, credentials, conditional)
        finally:
            self.in_flight -= 1


def test_max_concurrency_is_one_limit_the_services(simulator: Simulator, migrated_db_url: str) -> None:
    config = parse_config({**config_data(simulator, migrated_db_url), "polling": {"max_concurrency": 3}}, "test")
    parts = start(config)
    fetcher = GatedFetcher()
    service = PollService(parts.database.repository, fetcher, parts.metrics, max_concurrency=3)
    service.prepare(parts.specs)

    async def every_target() -> list[PollResult]:
        polls = asyncio.gather(*(service.poll(spec) for spec in parts.specs))
        while fetcher.in_flight < 3:
            await asyncio.sleep(0.01)
        for _ in range(20):  # the other nine stay queued, however long the loop turns
            await asyncio.sleep(0)
        queued_at_most = fetcher.most
        fetcher.gate.set()
        results = await polls
        assert queued_at_most == 3
        return results

    try:
        results = run(parts, every_target())
        assert len(results) == 12 and all(r.ok for r in results) and fetcher.most == 3
        # the fetcher has no limit of its own that could queue a poll inside its deadline
        assert not any(isinstance(value, asyncio.Semaphore) for value in vars(parts.fetcher).values())
    finally:
        run(parts, fetcher.aclose())
        service.close()
        stop(parts)
