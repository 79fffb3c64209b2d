"""The metric set: names, zero-initialised label sets, the series budget of each ``detail``, and ``promtool check
metrics`` on the exposition."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bench.series import TOTAL, series_per_target
from monitor.domain import ABSENT, Change, FailureReason, MetricsDetail, PollResult, Severity, TargetKey
from monitor.judge.kinds.microversion import Microversion
from monitor.judge.kinds.versions import VersionEntry
from monitor.signals.metrics import Metrics
from tests.conftest import promtool

KEY = TargetKey("huawei", "cn-north-4", "images")
LABELS = {"cloud": "huawei", "region": "cn-north-4", "schema": "images"}
BASIC_NAMES = {
    "schemadrift_poll_success",
    "schemadrift_poll_duration_seconds_bucket",
    "schemadrift_last_success_timestamp_seconds",
    "schemadrift_last_change_timestamp_seconds",
    "schemadrift_changes_total",
    "schemadrift_poll_interval_seconds",
    "schemadrift_region_deviates",
    "schemadrift_flapping",
    "schemadrift_db_up",
    "schemadrift_db_errors_total",
    "schemadrift_build_info",
}
# The detail families: exported under metrics.detail "full" only (docs/metrics-and-alerts.md#series-per-target).
FULL_ONLY_NAMES = {
    "schemadrift_polls_total",
    "schemadrift_last_poll_duration_seconds",
    "schemadrift_last_poll_timestamp_seconds",
    "schemadrift_schema_properties",
    "schemadrift_response_size_bytes",
    "schemadrift_api_min_microversion",
    "schemadrift_api_version_info",
}
COMPUTE = [VersionEntry("v2.0", "SUPPORTED", None, None),
           VersionEntry("v2.1", "CURRENT", Microversion(2, 1), Microversion(2, 95))]  # fmt: skip


def registered(detail: MetricsDetail) -> Metrics:
    m = Metrics(CollectorRegistry(), "1.2.3", detail)
    m.register_targets([KEY])
    return m


@pytest.fixture
def metrics() -> Metrics:
    return registered("basic")


@pytest.fixture(params=["basic", "full"])
def any_detail(request: pytest.FixtureRequest) -> Metrics:
    return registered(request.param)


def names(metrics: Metrics) -> set[str]:
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def test_every_documented_metric_is_exported(metrics: Metrics) -> None:
    full = registered("full")
    for m in (metrics, full):
        m.set_surface(KEY, "compute", COMPUTE)
    assert names(metrics) >= BASIC_NAMES
    assert not names(metrics) & FULL_ONLY_NAMES
    assert names(full) >= BASIC_NAMES | FULL_ONLY_NAMES
    assert not any(n.endswith("_created") for n in names(metrics) | names(full))


def test_known_label_sets_start_at_zero(metrics: Metrics) -> None:
    get = metrics.registry.get_sample_value
    assert get("schemadrift_poll_success", LABELS) == 0
    for severity in ("breaking", "warning"):  # the alerts take their increase(): they exist before any change
        assert get("schemadrift_changes_total", {**LABELS, "severity": severity}) == 0
    for severity in ("info", "cosmetic"):  # appear with their first change
        assert get("schemadrift_changes_total", {**LABELS, "severity": severity}) is None
    assert all(get("schemadrift_drift_unacknowledged", {**LABELS, "severity": s.value}) is None for s in Severity)
    assert get("schemadrift_db_errors_total", {"operation": "record_snapshot"}) == 0
    assert get("schemadrift_build_info", {"version": "1.2.3"}) == 1


def test_under_full_every_severity_and_detail_series_starts_at_zero() -> None:
    get = registered("full").registry.get_sample_value
    assert get("schemadrift_polls_total", LABELS) == 0
    for severity in Severity:
        assert get("schemadrift_changes_total", {**LABELS, "severity": severity.value}) == 0
        assert get("schemadrift_drift_unacknowledged", {**LABELS, "severity": severity.value}) == 0


@pytest.mark.parametrize(("detail", "budget"), [("basic", 9), ("full", 20)])
def test_a_registered_target_costs_its_detail_budget(detail: MetricsDetail, budget: int) -> None:
    m = registered(detail)
    other = TargetKey("huawei", "cn-north-4", "member")
    m.register_targets([other])
    for key in (KEY, other):
        m.set_kind(key, "schema", None)
    assert series_per_target(m.exposition().decode(), 2)[TOTAL] == budget


def test_a_severity_appears_with_its_first_occurrence_and_stays(metrics: Metrics) -> None:
    get = metrics.registry.get_sample_value
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics.observe_poll(PollResult(KEY, at, 0.3, ok=True, changes=(Change("/d", "x", Severity.INFO, 1, 2),)))
    assert get("schemadrift_changes_total", {**LABELS, "severity": "info"}) == 1
    assert get("schemadrift_changes_total", {**LABELS, "severity": "cosmetic"}) is None

    metrics.set_drift(KEY, {Severity.BREAKING: 2})
    assert get("schemadrift_drift_unacknowledged", {**LABELS, "severity": "breaking"}) == 2
    assert get("schemadrift_drift_unacknowledged", {**LABELS, "severity": "warning"}) is None
    metrics.set_drift(KEY, {})  # acknowledged: the series stays, at 0
    assert get("schemadrift_drift_unacknowledged", {**LABELS, "severity": "breaking"}) == 0
    assert get("schemadrift_drift_unacknowledged", {**LABELS, "severity": "warning"}) is None


def test_the_api_surface_is_the_maximum_microversion_only_under_basic(any_detail: Metrics) -> None:
    get = any_detail.registry.get_sample_value
    any_detail.set_surface(KEY, "compute", COMPUTE)
    surface = {**LABELS, "service": "compute", "version": "v2.1"}
    assert get("schemadrift_api_max_microversion", {**surface, "major": "2"}) == 95
    full = any_detail.detail == "full"
    assert (get("schemadrift_api_min_microversion", {**surface, "major": "2"}) == 1) is full
    assert (get("schemadrift_api_version_info", {**surface, "status": "CURRENT"}) == 1) is full
    any_detail.set_surface(KEY, "compute", [])
    assert "schemadrift_api_max_microversion{" not in any_detail.exposition().decode()


def test_a_failure_reason_series_appears_with_its_first_failure(metrics: Metrics) -> None:
    get = metrics.registry.get_sample_value
    assert all(get("schemadrift_poll_failures_total", {**LABELS, "reason": r.value}) is None for r in FailureReason)

    metrics.observe_poll(PollResult(KEY, datetime(2026, 1, 1, tzinfo=UTC), 0.3, ok=False, reason=FailureReason.TLS))

    assert get("schemadrift_poll_failures_total", {**LABELS, "reason": "tls"}) == 1
    assert get("schemadrift_poll_failures_total", {**LABELS, "reason": "timeout"}) is None


def test_a_failed_poll_counts_its_reason_and_clears_success(any_detail: Metrics) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    any_detail.observe_poll(PollResult(KEY, at, 0.3, ok=True))
    any_detail.observe_poll(PollResult(KEY, at, 0.3, ok=False, reason=FailureReason.HTTP_503))
    get = any_detail.registry.get_sample_value
    assert get("schemadrift_poll_success", LABELS) == 0
    assert get("schemadrift_polls_total", LABELS) == (2 if any_detail.detail == "full" else None)
    assert get("schemadrift_poll_failures_total", {**LABELS, "reason": "http_503"}) == 1
    assert get("schemadrift_last_success_timestamp_seconds", LABELS) == at.timestamp()


def test_changes_are_counted_by_severity(metrics: Metrics) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    changes = (
        Change("/a", "property-removed", Severity.BREAKING, 1, ABSENT),
        Change("/b", "description-changed", Severity.COSMETIC, "x", "y"),
        Change("/c", "property-removed", Severity.BREAKING, 1, ABSENT),
    )
    metrics.observe_poll(PollResult(KEY, at, 0.3, ok=True, changes=changes))
    get = metrics.registry.get_sample_value
    assert get("schemadrift_changes_total", {**LABELS, "severity": "breaking"}) == 2
    assert get("schemadrift_changes_total", {**LABELS, "severity": "cosmetic"}) == 1
    assert get("schemadrift_last_change_timestamp_seconds", LABELS) == at.timestamp()


def test_exposition_passes_promtool_check_metrics(any_detail: Metrics, tmp_path: object) -> None:
    metrics = any_detail
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics.observe_poll(PollResult(KEY, at, 0.3, ok=False, reason=FailureReason.TIMEOUT))
    metrics.observe_poll(
        PollResult(KEY, at, 0.2, ok=True, changes=(Change("/a", "value-changed", Severity.WARNING, 1, 2),))
    )
    metrics.set_document(KEY, 8945, 33)
    metrics.db_result(False, "record_poll")
    metrics.set_consumer("terraform-openstack", "cn-north-4", False, {"815d30ea": False, "a1bd707f": True})
    exposition = metrics.exposition()
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=exposition, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == ""


def test_the_fast_exposition_is_what_prometheus_client_writes(any_detail: Metrics) -> None:
    metrics = any_detail
    other = TargetKey("glance", 'we"ird\\region', "member")
    metrics.register_targets([other, TargetKey("glance", "r2", "images")])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics.observe_poll(PollResult(KEY, at, 0.3, ok=False, reason=FailureReason.HTTP_503))
    metrics.observe_poll(PollResult(other, at, 1.7, ok=True, changes=(Change("/a", "x", Severity.INFO, 1, 2),)))
    metrics.set_drift(other, {Severity.BREAKING: 2})
    metrics.set_deviates(KEY, True)
    metrics.register_groups([("huawei", "images")])

    fast = metrics.exposition().decode()

    assert sorted(fast.splitlines()) == sorted(generate_latest(metrics.registry).decode().splitlines())
    assert 'schemadrift_drift_unacknowledged{cloud="glance",region="we\\"ird\\\\region",schema="member",' in fast


def test_the_rarely_changed_families_rendered_once_still_show_every_change(metrics: Metrics) -> None:
    metrics.set_kind(KEY, "schema", None)
    assert 'schemadrift_target_kind{cloud="huawei",kind="schema",region="cn-north-4"' in metrics.exposition().decode()

    metrics.set_kind(KEY, "versions", "image")
    metrics.set_catalog("huawei", {"cn-north-4": ["image"]})
    again = metrics.exposition().decode()
    assert 'kind="versions"' in again and 'kind="schema"' not in again
    assert 'schemadrift_catalog_service{cloud="huawei",region="cn-north-4",service="image"} 1.0' in again

    metrics.remove_targets([KEY])
    assert "schemadrift_target_kind{" not in metrics.exposition().decode()


def test_a_removed_target_loses_every_series_and_unknown_targets_are_ignored(metrics: Metrics) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics.observe_poll(PollResult(KEY, at, 0.3, ok=False, reason=FailureReason.TIMEOUT))

    metrics.remove_targets([KEY])
    metrics.observe_poll(PollResult(KEY, at, 0.3, ok=True))  # a poll that outlived its target
    metrics.set_deviates(KEY, True)

    assert "cn-north-4" not in metrics.exposition().decode()


def test_a_consumer_pair_has_series_while_known_and_none_while_unknown(metrics: Metrics) -> None:
    get = metrics.registry.get_sample_value
    pair = {"consumer": "tf", "region": "r1"}
    metrics.set_consumer("tf", "r1", False, {"aaaaaaaa": False, "bbbbbbbb": True})
    assert get("schemadrift_consumer_compatible", pair) == 0
    assert get("schemadrift_consumer_requirement_met", {**pair, "requirement": "aaaaaaaa"}) == 0
    assert get("schemadrift_consumer_requirement_met", {**pair, "requirement": "bbbbbbbb"}) == 1
    metrics.set_consumer("tf", "r1", None, {"aaaaaaaa": None, "bbbbbbbb": True})
    assert get("schemadrift_consumer_compatible", pair) is None
    assert get("schemadrift_consumer_requirement_met", {**pair, "requirement": "aaaaaaaa"}) is None
    metrics.remove_consumer("tf", "r1", ["aaaaaaaa", "bbbbbbbb"])
    metrics.remove_consumer("tf", "r9", ["aaaaaaaa"])  # never exported: nothing to do
    assert "schemadrift_consumer_requirement_met{" not in metrics.exposition().decode()
