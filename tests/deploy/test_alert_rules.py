"""The shipped alert rules: promtool check and unit tests, runbook links, test coverage and metric names."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.domain import FailureReason, PollResult, Severity, TargetKey
from monitor.judge.kinds import Microversion, VersionEntry
from monitor.signals.metrics import Metrics
from tests.conftest import promtool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "schemadrift.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "schemadrift.rules.test.yml"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
RUNBOOK_URL = "https://github.com/schema-drift-monitor/schema-drift-monitor/blob/main/deploy/RUNBOOK.md#"
SEVERITIES = {"critical", "warning", "info"}
# Series Prometheus itself adds to every scrape, which rules may use besides the daemon's own.
SCRAPE_SERIES = {"up"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset"}
PROMQL_KEYWORDS |= {"bool", "inf", "nan"}


def run_promtool(*args: str) -> None:
    result = subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alert_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test case of the unit test file (YAML anchors resolved)."""
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    return [case for test in tests for case in test.get("alert_rule_test", [])]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_headings() -> list[str]:
    """Heading texts of the runbook, skipping fenced code blocks (their ``#`` lines are shell comments)."""
    headings, in_fence = [], False
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (match := re.match(r"#{1,6}\s+(.+)", line)):
            headings.append(match.group(1))
    return headings


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside strings, matchers, ranges and label lists."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {name for name in names if name.lower() not in PROMQL_KEYWORDS}


def exported_names() -> set[str]:
    """Sample names the daemon exposes under the default metrics.detail (basic) once its targets, channels and
    change intelligence are registered."""
    metrics = Metrics(CollectorRegistry(), "t")
    key = TargetKey("c", "r", "s")
    metrics.register_targets([key])  # also flapping and region_deviates
    metrics.set_drift(key, {Severity.BREAKING: 1})  # a severity's drift series appears with its first drift
    metrics.set_interval(key, 300)
    metrics.register_channels(["x"])
    metrics.register_identity("c", "r")  # clouds with password / application_credential auth
    metrics.register_groups([("c", "s")])  # what monitor.fleet.live.Fleet creates for every (cloud, schema)
    metrics.set_kind(key, "versions", "compute")
    metrics.set_surface(key, "compute", [VersionEntry("v2.1", "CURRENT", Microversion(2, 1), Microversion(2, 95))])
    metrics.set_catalog("c", {"r": {"compute"}, "other": {"compute", "network"}})
    metrics.set_replica("a", owned=1, live=1, leader=True, expected=1, unowned=0)
    metrics.set_consumer("tf", "r", False, {"815d30ea": False})  # what monitor.fleet.consumers exports (leader)
    # a failure reason's series appears with the first failure of that reason
    metrics.observe_poll(PollResult(key, datetime(2026, 1, 1, tzinfo=UTC), 1.0, ok=False, reason=FailureReason.TLS))
    return {sample.name for family in metrics.registry.collect() for sample in family.samples}


@pytest.mark.promtool
def test_promtool_accepts_the_rules() -> None:
    run_promtool("check", "rules", str(RULES.relative_to(ROOT)))


@pytest.mark.slow
@pytest.mark.promtool
def test_promtool_unit_tests_pass() -> None:
    run_promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))


def test_the_unit_tests_load_the_shipped_rules_and_run_on_promtool_2_42() -> None:
    data = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert data["rule_files"] == [RULES.name]
    assert data["evaluation_interval"] == "1m"
    # Debian's prometheus 2.42 rejects these fields; they appeared in later releases.
    assert "fuzzy_compare" not in data
    assert not any("start_timestamp" in test for test in data["tests"])


def test_alerts_follow_the_mixin_conventions() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        name, annotations = rule["alert"], rule.get("annotations", {})
        assert re.fullmatch(r"SchemaDrift(?:[A-Z][a-z]+)+", name), name
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        assert annotations.get("summary") and "{{" not in annotations["summary"], f"{name}: summary must be static"
        assert "{{" in annotations.get("description", ""), f"{name}: description must be templated"
        assert annotations.get("runbook_url", "").startswith(RUNBOOK_URL), name


def test_target_alerts_link_the_web_ui_through_an_external_label() -> None:
    page = "{{ . }}/ui/targets/{{ $labels.cloud }}/{{ $labels.region }}/{{ $labels.schema }}"
    for rule in alert_rules():
        labels = described_labels(rule)
        ui_url = rule["annotations"].get("ui_url")
        if {"cloud", "region", "schema"} <= labels:
            assert ui_url == "{{ with $externalLabels.schemadrift_ui }}" + page + "{{ end }}", rule["alert"]
        elif rule["alert"] == "SchemaDriftRolloutStuck":
            assert ui_url is not None and "/ui/compare/{{ $labels.cloud }}/{{ $labels.schema }}" in ui_url
        elif labels == {"consumer", "region"}:  # the consumer's page in the region: its requirements' evidence
            assert ui_url is not None and "/ui/consumers/{{ $labels.consumer }}/{{ $labels.region }}" in ui_url
        else:
            assert ui_url is None, f"{rule['alert']} has no target page to link"


def described_labels(rule: dict[str, Any]) -> set[str]:
    """The target labels an alert's description names (``$labels.x``): what its alerts carry."""
    return set(re.findall(r"\$labels\.(\w+)", rule["annotations"]["description"]))


def test_every_runbook_url_points_at_a_runbook_heading() -> None:
    anchors = {github_anchor(heading) for heading in runbook_headings()}
    for rule in alert_rules():
        anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_URL)
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor} in {RUNBOOK.name}"


def test_the_runbook_has_a_section_for_exactly_the_shipped_alerts() -> None:
    sections = {heading for heading in runbook_headings() if heading.startswith("SchemaDrift")}
    assert sections == {rule["alert"] for rule in alert_rules()}


def test_every_alert_has_a_firing_and_a_silent_unit_case() -> None:
    cases = alert_cases()
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a firing case"
    assert names - silent == set(), "alerts without a non-firing case"
    assert {case["alertname"] for case in cases} <= names, "cases for alerts that do not exist"


def test_rules_only_use_metrics_the_daemon_exports() -> None:
    known = exported_names() | SCRAPE_SERIES
    for rule in alert_rules():
        used = metric_names(rule["expr"])
        assert used, f"{rule['alert']}: no metric found in its expr"
        assert used <= known, f"{rule['alert']}: unknown metrics {sorted(used - known)}"


def test_every_series_a_rule_takes_the_increase_of_exists_at_zero_before_the_first_event() -> None:
    """increase() cannot see a counter's first step when its series appears with it: under the default
    metrics.detail every (counter, severity/outcome) a rule takes the increase() of exists from the start."""
    metrics = Metrics(CollectorRegistry(), "t")
    key = TargetKey("c", "r", "s")
    metrics.register_targets([key])
    metrics.register_channels(["x"])
    metrics.register_identity("c", "r")
    identity = {"cloud": "c", "region": "r"}
    base = {
        "schemadrift_changes_total": {**identity, "schema": "s"},
        "schemadrift_auth_failures_total": identity,
        "schemadrift_auth_requests_total": identity,
        "schemadrift_notifications_total": {"channel": "x"},
    }
    selectors = {(name, matchers) for rule in alert_rules()
                 for name, matchers in re.findall(r"increase\((\w+)(?:\{([^}]*)\})?\[", rule["expr"])}  # fmt: skip
    assert ("schemadrift_changes_total", 'severity="warning"') in selectors
    for name, matchers in selectors:
        labels = {**base[name], **dict(re.findall(r'(\w+)="([^"]*)"', matchers))}
        assert metrics.registry.get_sample_value(name, labels) == 0, (name, labels)


def test_metric_name_extraction_ignores_labels_functions_and_keywords() -> None:
    expr = (
        'sum by (cloud, region) (increase(a_total{severity="breaking", x=~"y|z"}[1h])) > 0 '
        'unless on (cloud) b == 0 or absent(up{job="j"}) and time() - c > 2 * d offset 5m'
    )
    assert metric_names(expr) == {"a_total", "b", "up", "c", "d"}


def test_flapping_and_rollouts_hold_back_the_alerts_they_explain() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    # A flapping target pages once, as SchemaDriftFlapping, not per flip.
    for name in ("SchemaDriftBreakingChange", "SchemaDriftWarningChange", "SchemaDriftUnacknowledgedDrift"):
        assert "unless on (cloud, region, schema)" in exprs[name], name
        assert "schemadrift_flapping" in exprs[name], name
    # Regions differing during a rollout is expected; a rollout that never ends is SchemaDriftRolloutStuck.
    assert "unless on (cloud, schema)" in exprs["SchemaDriftRegionDeviation"]
    assert "schemadrift_rollout_in_progress" in exprs["SchemaDriftRegionDeviation"]
    assert "schemadrift_rollout_in_progress" in exprs["SchemaDriftRolloutStuck"]
