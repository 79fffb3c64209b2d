"""The fleet rules (``monitor.fleet.rules``): each definition at its edges, and the constants the alert rule and
the dashboard repeat in PromQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from monitor.domain import ABSENT, Change, IgnoreRules, Severity, TargetKey, fingerprint
from monitor.fleet import rules
from monitor.fleet.rules import MAJORITY, Documents, RolloutRole, RolloutStep
from monitor.judge.regions import Tally, compare_regions
from monitor.poll.scheduler import FLUSH_INTERVAL_S
from tests.support.paths import ROOT

A, B, C = "a" * 64, "b" * 64, "c" * 64
NOW = datetime(2026, 3, 17, 12, 0, tzinfo=UTC)
KEY = TargetKey("c", "r1", "images")


# --- reference, majority, deviation ---------------------------------------------------------------------


def test_the_configured_region_is_the_reference_while_it_has_a_document() -> None:
    assert rules.reference("r3", {"r1": A, "r3": B}) == "r3"
    assert rules.reference("r3", {"r1": A, "r2": B}) == MAJORITY
    assert rules.reference(MAJORITY, {"r1": A}) == MAJORITY
    assert rules.reference_document("r3", {"r1": A, "r2": A, "r3": B}, {A: {"r1", "r2"}, B: {"r3"}}) == B


@pytest.mark.parametrize(
    ("configured", "current"),
    [("r3", {"r1": A, "r2": A, "r3": B}), ("r3", {"r1": A, "r2": B}), (MAJORITY, {"r2": A, "r4": A, "r1": B, "r3": B}),
     (MAJORITY, {}), ("r1", {})],
)  # fmt: skip
def test_the_reference_from_counted_documents_is_the_reference_from_the_regions(
    configured: str, current: dict[str, str]
) -> None:
    """The read model's pages count each group's documents in the database instead of reading every region."""
    documents = Documents.of(current)
    tallies = {sha: Tally(len(regions), min(regions)) for sha, regions in documents.by_document.items()}
    expected = documents.reference(configured)
    assert rules.tallied_reference(configured, current.get(configured), tallies) == expected


def test_without_any_document_there_is_no_reference_and_nothing_deviates() -> None:
    assert Documents().reference(MAJORITY) is None
    assert Documents().deviating("r1") == set()
    assert not rules.deviates(A, None)
    assert not rules.deviates(None, A)


def test_a_tie_goes_to_the_document_whose_first_region_sorts_first() -> None:
    assert rules.majority({A: {"r2", "r4"}, B: {"r1", "r3"}}) == B
    assert rules.majority({A: {"r1"}, B: {"r2", "r3"}}) == B  # more regions first
    with pytest.raises(ValueError, match="no region"):
        rules.majority({})


@pytest.mark.parametrize("configured", [MAJORITY, "r2"])
def test_the_index_judges_as_a_full_comparison_does(configured: str) -> None:
    """Random groups, ties included: the index's reference and deviations are compare_regions'."""
    rng = random.Random(7)
    for _ in range(500):
        current = {f"r{i}": rng.choice((A, B, C)) for i in range(rng.randint(1, 6)) if rng.random() < 0.8}
        if not current:
            continue
        documents = Documents.of(current)
        comparison = compare_regions(current, rules.reference(configured, current))
        assert documents.reference(configured) == comparison.reference, current
        assert documents.deviating(configured) == set(comparison.deviating), current


def test_moving_a_region_keeps_the_index_both_ways() -> None:
    documents = Documents.of({"r1": A, "r2": A})
    documents.put("r1", B)
    documents.put("r2", B)
    assert documents.by_region == {"r1": B, "r2": B}
    assert documents.by_document == {B: {"r1", "r2"}}  # no empty entry left for A


# --- drift ---------------------------------------------------------------------------------------------


def _change(path: str, severity: Severity) -> Change:
    return Change(rule="property-removed", severity=severity, path=path, old={"type": "string"}, new=ABSENT)


def test_drift_leaves_ignored_changes_out_and_marks_the_acknowledged_ones() -> None:
    kept, acked = _change("/properties/a", Severity.BREAKING), _change("/properties/b", Severity.INFO)
    ignored = _change("/properties/skip", Severity.BREAKING)
    items = rules.drift_items(KEY, [kept, acked, ignored], IgnoreRules(paths=("/properties/skip",)),
                              {fingerprint(KEY, acked)})  # fmt: skip
    assert [(i.change, i.acknowledged) for i in items] == [(kept, False), (acked, True)]
    assert [i.fingerprint for i in items] == [fingerprint(KEY, kept), fingerprint(KEY, acked)]
    pending = rules.unacknowledged(items)
    assert [i.change for i in pending] == [kept]
    assert rules.by_severity(pending) == {Severity.BREAKING: 1, Severity.WARNING: 0, Severity.INFO: 0,
                                          Severity.COSMETIC: 0}  # fmt: skip


# --- flapping, staleness ---------------------------------------------------------------------------------


def test_a_change_at_the_start_of_the_flapping_window_counts_one_before_it_not() -> None:
    start = rules.flapping_since(NOW, 60)
    inside = [start, NOW - timedelta(seconds=10), NOW]
    assert rules.flapping(inside, NOW, 60, 3)
    assert not rules.flapping([start - timedelta(microseconds=1), *inside[1:]], NOW, 60, 3)
    assert not rules.flapping(inside[1:], NOW, 60, 3)


def test_stale_is_two_intervals_plus_the_grace_after_the_last_success_of_a_target_that_polls_fine() -> None:
    edge = NOW - timedelta(seconds=2 * 30 + rules.STALE_GRACE_S)
    assert not rules.stale(True, edge, 30, NOW)
    assert rules.stale(True, edge - timedelta(microseconds=1), 30, NOW)
    assert not rules.stale(False, edge - timedelta(hours=1), 30, NOW)  # failing: not stale
    assert not rules.stale(None, None, 30, NOW)  # never polled
    assert not rules.stale(True, NOW - timedelta(seconds=2 * 1 + FLUSH_INTERVAL_S), 1, NOW)  # one flush behind


def test_the_grace_covers_two_flushes_and_promql_adds_the_same_number() -> None:
    assert rules.STALE_GRACE_S >= 2 * FLUSH_INTERVAL_S
    grace = f"+ {rules.STALE_GRACE_S:g}"
    rules_file: dict[str, Any] = yaml.safe_load((ROOT / "deploy/prometheus/schemadrift.rules.yml").read_text())
    [stale] = [r for g in rules_file["groups"] for r in g["rules"] if r.get("alert") == "SchemaDriftTargetStale"]
    assert f"(schemadrift_poll_interval_seconds) {grace}\n" in stale["expr"]
    dashboard = (ROOT / "deploy/grafana/dashboards/schema-drift-monitor.json").read_text()
    assert f'schema=~\\"$schema\\"}}) {grace}\\n) or vector(0)' in dashboard  # the "Stale targets" panel


# --- rollouts -----------------------------------------------------------------------------------------------


def test_a_rollout_starts_when_every_region_agreed_and_one_moves() -> None:
    assert rules.rollout_step({"r1": A, "r2": A}, {"r1": B, "r2": A}, 2, None) == RolloutStep(start=(A, B))
    assert rules.rollout_step({"r1": A}, {"r1": B}, 2, None) == RolloutStep()  # r2 had no document: no rollout
    assert rules.rollout_step({"r1": A, "r2": C}, {"r1": B, "r2": C}, 2, None) == RolloutStep()  # a deviation


@pytest.mark.parametrize(
    ("after", "step"),
    [
        ({"r1": B, "r2": B, "r3": B}, RolloutStep(finish="converged")),
        ({"r1": A, "r2": A, "r3": A}, RolloutStep(finish="reverted")),
        ({"r1": B, "r2": C, "r3": A}, RolloutStep(finish="superseded", start=(B, C))),
        ({"r1": B, "r2": B, "r3": A}, RolloutStep()),
    ],
)
def test_a_rollout_in_progress_converges_reverts_or_is_superseded(after: dict[str, str], step: RolloutStep) -> None:
    before = {"r1": B, "r2": A, "r3": A}
    assert rules.rollout_step(before, after, 3, (A, B)) == step


def test_each_region_stands_updated_or_lagging_only_while_a_rollout_runs() -> None:
    assert rules.rollout_role(B, B, A) is RolloutRole.UPDATED
    assert rules.rollout_role(B, B, B) is RolloutRole.UPDATED
    assert rules.rollout_role(A, B, B) is RolloutRole.LAGGING  # the fleet moved on, this region did not
    assert rules.rollout_role(None, B, A) is None  # no document: not part of it
    assert rules.rollout_role(A, None, A) is None  # no rollout
    assert rules.rollout_regions({"r3": B, "r1": B, "r2": A}, B, B) == (("r1", "r3"), ("r2",))


def test_a_region_that_did_not_change_is_not_lagging_while_the_reference_has_not_moved() -> None:
    """One region of three moved: it is ahead of the fleet; the two on the reference are behind nothing."""
    assert rules.rollout_role(A, B, A) is None
    assert rules.rollout_regions({"r1": B, "r2": A, "r3": A}, B, A) == (("r1",), ())


@pytest.mark.parametrize(
    ("document", "reference", "new", "words"),
    [
        (A, A, None, "same as reference"),
        (B, A, None, "differs from the reference"),  # a deviation no rollout explains
        (B, A, B, "ahead of the fleet"),  # moved first, the reference not yet
        (A, A, B, "same as reference"),  # did not move: says nothing about the rollout
        (B, B, B, "same as reference"),  # the reference moved with it
        (A, B, B, "not yet on the new version"),  # the fleet moved on
        (None, A, B, None),  # no document yet
    ],
)
def test_a_regions_standing_in_words(document: str | None, reference: str, new: str | None, words: str | None) -> None:
    found = rules.standing(document, reference, new)
    assert (found.value if found else None) == words
