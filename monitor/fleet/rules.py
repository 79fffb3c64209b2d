"""The fleet's rules: one definition of each fact that follows from the targets' current state; pure functions.

Two sides state these facts. The live state behind ``/metrics`` (:mod:`monitor.fleet.live`) applies them after
every poll, incrementally; the read model behind the API, the CLI and the UI (:mod:`monitor.read.model`)
applies them per request, to what the database holds. Both call the functions here, so a rule cannot read one
way on a gauge and another on a page. Plain data in, plain data out: this module imports ``domain`` and
``judge`` only — no store, no fetching, no metrics, no scheduler (import-linter holds it); the callers bring
the documents, times and acknowledgements, and classify the changes through the target's kind.

What can still differ is the input, never the rule: each rule says below what the database learns later than
the live state ("lag"). ``tests/fleet/test_agreement.py`` drives both sides through a randomised fleet and
asserts after every step that ``/metrics`` and ``/api`` agree.

* **Reference** (:func:`reference`, :func:`reference_document`): per (cloud, schema), its configured
  ``reference`` region while that region has a document, else the majority (``"majority"``). When clouds are
  compared, labels are ``cloud/region`` and the first cloud's configured region is the one asked for.
* **Majority** (:func:`majority`, :func:`majority_order`): the document most regions serve; a tie goes to the
  document whose alphabetically first region sorts first. Defined in :mod:`monitor.judge.regions`, because
  ``compare_regions`` (below this package in the layers) is built from it; re-exported here.
* **Deviation** (:func:`deviates`): a region deviates when it has a document and that document is not the
  reference's (also from :mod:`monitor.judge.regions`, for the same reason). A region without a document
  deviates from nothing.
* **Who serves what** (:class:`Documents`): one (cloud, schema)'s documents indexed both ways, region → sha256
  and sha256 → regions. The live state keeps one per group and updates it in O(1) per poll, so re-judging the
  reference after a poll costs O(number of documents), not O(number of regions) (but for a tie for the
  majority); the read model builds the same index from the database and asks it the same questions.
* **Drift items** (:func:`drift_items`, :func:`unacknowledged`, :func:`by_severity`): the changes from a
  target's approved baseline to its current document, as its kind classifies them, without those its ignore
  rules match; each with its fingerprint and whether an unexpired acknowledgement names it. Lag: the live
  state re-reads acknowledgements at each ``changes.drift_refresh`` (at once after an acknowledgement through
  the API, which asks for a refresh; within ``drift_refresh`` after one from the CLI, another process).
* **Flapping** (:func:`flapping`): a target whose document changed ``changes.flapping_threshold`` times or
  more within ``changes.flapping_window`` ending now (a change at exactly the window's start counts). A change
  is a stored snapshot other than the target's first (``store.repository.change_times``), timed at the poll
  that saw it. Lag: the live gauge is re-judged at each snapshot of the target and each refresh, so it can
  say "flapping" for up to ``drift_refresh`` after a change left the window.
* **Staleness** (:func:`stale`): a target whose last poll succeeded but whose last success is more than two
  poll intervals plus :data:`STALE_GRACE_S` old: polls are not happening. A failing target is not stale (it is
  failing), nor one never polled. The grace exists for the read side: an unchanged successful poll writes no
  row, its time reaches the database with the next batch flush (``poll.scheduler.FLUSH_INTERVAL_S``, every
  5 s), so without it every healthy target polled every 2 s would read as stale between flushes. A poll that
  ends a failure is written at once (an outcome transition), and the read model takes the last poll of a
  target whose last transition is a success as its last success, so a recovery is no lag either. What is
  left: for at most one flush interval after a poll that ends a stall (no success for longer than the
  threshold, without a failure — the scheduler stopped, or the monitor was down), the read model still says
  stale where the metrics no longer do. The alert ``SchemaDriftTargetStale`` states the same rule over the
  metrics (``time() - last_success > 2 * interval + 10``, unless the last poll failed); a test holds the
  constants together.
* **Rollouts** (:func:`rollout_step`, :func:`rollout_outcome`, :func:`rollout_role`, :func:`rollout_regions`):
  when every region of a (cloud, schema) had a document, all the same, and one moves to another, a rollout
  starts from the old document to the new one; it ends ``converged`` when every region serves the new one,
  ``reverted`` when every region serves the old one again, ``superseded`` when a third document appears (and a
  rollout from the superseded one's new document to the third starts). A region's first document is no move:
  a region that always differed is a deviation, not a rollout. While one is in progress a region that serves
  the new document is :attr:`RolloutRole.UPDATED`; one that serves another is :attr:`RolloutRole.LAGGING`
  only once the new document is the reference (the fleet moved on, the region did not): while the reference
  is still the old document, a region serving it did not change and is behind nothing, so it is not part of
  the rollout (no role), like a region without a document, or any region while no rollout is in progress.
* **Standing** (:func:`standing`): how a region stands against its fleet, in the words a tile says — "same as
  reference", "ahead of the fleet" (updated, the reference not yet), "not yet on the new version" (lagging),
  "differs from the reference" (deviating, no rollout explains it). From the reference and the rollout's
  roles above, so the words cannot contradict the deviation a gauge exports.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from monitor.domain import Change, IgnoreRules, Severity, TargetKey, fingerprint
from monitor.judge.regions import MAJORITY, Tally, deviates, majority, majority_order, tallied_majority

__all__ = [
    "MAJORITY",
    "STALE_GRACE_S",
    "Documents",
    "DriftItem",
    "RolloutRole",
    "RolloutStep",
    "Standing",
    "by_severity",
    "deviates",
    "drift_items",
    "flapping",
    "flapping_since",
    "majority",
    "majority_order",
    "reference",
    "reference_document",
    "rollout_outcome",
    "rollout_regions",
    "rollout_role",
    "rollout_step",
    "stale",
    "standing",
    "tallied_reference",
    "unacknowledged",
]

STALE_GRACE_S: Final = 10.0
"""Seconds a last success may be older than two poll intervals before the target is stale: two batch flushes
(``poll.scheduler.FLUSH_INTERVAL_S``), so a flush that runs late under load does not make a healthy target
stale on the read side. The alert ``SchemaDriftTargetStale`` adds the same number."""


# --- reference, majority, deviation ----------------------------------------------------------------------


def reference(configured: str, documents: Container[str]) -> str:
    """The reference label of a (cloud, schema): ``configured`` (a region label, or ``"majority"``) while that
    region is among those with a document (``documents``), else ``"majority"``."""
    return configured if configured != MAJORITY and configured in documents else MAJORITY


def reference_document(
    configured: str, current: Mapping[str, str], serving: Mapping[str, Collection[str]]
) -> str | None:
    """The reference document (sha256) of a (cloud, schema) whose regions serve ``current`` (label -> sha256),
    indexed as ``serving`` (sha256 -> labels): that of :func:`reference`; None when no region has a document.
    Costs O(documents), whatever the number of regions (but for a tie: :func:`majority`)."""
    label = reference(configured, current)
    if label != MAJORITY:
        return current[label]
    return majority(serving) if serving else None


def tallied_reference(configured: str, configured_document: str | None, tallies: Mapping[str, Tally]) -> str | None:
    """The reference document of a (cloud, schema) known by counts: ``tallies`` (sha256 -> how many regions serve
    it and the first of them) and ``configured_document``, what the ``configured`` region serves (None: nothing
    yet). The same answer as :func:`reference_document` over the regions themselves."""
    if configured != MAJORITY and configured_document is not None:
        return configured_document
    return tallied_majority(tallies) if tallies else None


@dataclass
class Documents:
    """One (cloud, schema)'s current documents, indexed both ways; :meth:`put` costs O(1)."""

    by_region: dict[str, str] = field(default_factory=dict)  # region label -> sha256
    by_document: dict[str, set[str]] = field(default_factory=dict)  # sha256 -> the labels serving it (never empty)

    @classmethod
    def of(cls, current: Mapping[str, str]) -> Documents:
        """The index of ``current`` (region label -> sha256)."""
        documents = cls()
        for region, sha in current.items():
            documents.put(region, sha)
        return documents

    def put(self, region: str, sha: str) -> None:
        """``region`` serves ``sha`` now."""
        previous = self.by_region.get(region)
        if previous == sha:
            return
        if previous is not None:
            self.by_document[previous].discard(region)
            if not self.by_document[previous]:
                del self.by_document[previous]
        self.by_region[region] = sha
        self.by_document.setdefault(sha, set()).add(region)

    def reference(self, configured: str) -> str | None:
        """The reference document (:func:`reference_document`); None while no region has a document."""
        return reference_document(configured, self.by_region, self.by_document)

    def deviating(self, configured: str) -> set[str]:
        """The regions deviating from the reference (:func:`deviates`); O(regions)."""
        chosen = self.reference(configured)
        return {region for region, sha in self.by_region.items() if deviates(sha, chosen)}


# --- drift ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriftItem:
    """One change from a target's baseline to its current document, its fingerprint, and whether an unexpired
    acknowledgement names it."""

    fingerprint: str
    change: Change
    acknowledged: bool


def drift_items(
    key: TargetKey, changes: Iterable[Change], ignore: IgnoreRules, acked: Container[str]
) -> list[DriftItem]:
    """The drift of ``key``: ``changes`` (baseline → current, as the target's kind classifies them; none when the
    two are the same document) without those ``ignore`` matches, in their order, each with its fingerprint and
    whether it is in ``acked`` (the target's unexpired acknowledged fingerprints)."""
    items = []
    for change in changes:
        if not ignore.matches(change):
            fp = fingerprint(key, change)
            items.append(DriftItem(fp, change, fp in acked))
    return items


def unacknowledged(items: Iterable[DriftItem]) -> list[DriftItem]:
    """The drift items nobody acknowledged (what ``schemadrift_drift_unacknowledged`` counts)."""
    return [item for item in items if not item.acknowledged]


def by_severity(items: Iterable[DriftItem]) -> dict[Severity, int]:
    """How many of ``items`` per severity, every severity present (0 when none)."""
    counts = Counter(item.change.severity for item in items)
    return {severity: counts[severity] for severity in Severity}


# --- flapping, staleness ---------------------------------------------------------------------------------


def flapping_since(now: datetime, window: float) -> datetime:
    """The start of the flapping window of ``window`` seconds ending at ``now``: changes at or after it count."""
    return now - timedelta(seconds=window)


def flapping(changes: Iterable[datetime], now: datetime, window: float, threshold: int) -> bool:
    """Whether a target whose document changed at ``changes`` (snapshots other than its first) is flapping at
    ``now``: ``threshold`` changes or more at or after :func:`flapping_since`."""
    since = flapping_since(now, window)
    return sum(1 for at in changes if at >= since) >= threshold


def stale(last_poll_ok: bool | None, last_success: datetime | None, interval: float, now: datetime) -> bool:
    """Whether a target is stale at ``now``: its last poll succeeded (``last_poll_ok`` True; None: never polled)
    and its last success is more than ``2 * interval + STALE_GRACE_S`` seconds old (module doc)."""
    if last_poll_ok is not True or last_success is None:
        return False
    return now - last_success > timedelta(seconds=2 * interval + STALE_GRACE_S)


# --- rollouts -----------------------------------------------------------------------------------------------

RolloutOutcome = Literal["converged", "reverted", "superseded"]


class RolloutRole(enum.StrEnum):
    """How a region stands in its (cloud, schema)'s rollout in progress (:func:`rollout_role`).

    For the words of a tile (:func:`standing`): an ``UPDATED`` region is "ahead of the fleet" while it deviates
    from the reference (:func:`deviates`) and "same as reference" once the reference moved with it; a
    ``LAGGING`` one is "not yet on the new version". A region with no role did not take part in a rollout and
    says nothing about one: it is "same as reference", or "differs from the reference".
    """

    UPDATED = "updated"
    LAGGING = "lagging"


def rollout_role(document: str | None, new: str | None, reference: str | None) -> RolloutRole | None:
    """How a region serving ``document`` (None: none yet) stands in a rollout to the document ``new`` (None: no
    rollout in progress) while its group's reference document is ``reference``: UPDATED on the new document;
    LAGGING on another once the new document is the reference; None otherwise — without a rollout or a
    document, or on the reference the rollout has not reached (the region did not change: it is behind
    nothing)."""
    if new is None or document is None:
        return None
    if document == new:
        return RolloutRole.UPDATED
    return RolloutRole.LAGGING if reference == new else None


class Standing(enum.StrEnum):
    """How a region stands against its fleet, in the words of a tile (:func:`standing`)."""

    SAME = "same as reference"
    AHEAD = "ahead of the fleet"
    BEHIND = "not yet on the new version"
    DIFFERS = "differs from the reference"


def standing(document: str | None, reference: str | None, new: str | None) -> Standing | None:
    """How a region serving ``document`` (None: none yet) stands against its group's ``reference`` document,
    with a rollout to ``new`` in progress (None: none): SAME when it serves the reference; else AHEAD when
    :func:`rollout_role` calls it UPDATED, BEHIND when LAGGING, DIFFERS otherwise; None without a document."""
    if document is None:
        return None
    if not deviates(document, reference):
        return Standing.SAME
    role = rollout_role(document, new, reference)
    if role is RolloutRole.UPDATED:
        return Standing.AHEAD
    return Standing.BEHIND if role is RolloutRole.LAGGING else Standing.DIFFERS


def rollout_regions(
    current: Mapping[str, str], new: str, reference: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The regions of ``current`` (label -> sha256) that are updated, and those lagging, in a rollout to
    ``new`` while the reference document is ``reference`` (:func:`rollout_role`); each sorted."""
    roles = {region: rollout_role(sha, new, reference) for region, sha in current.items()}
    updated = tuple(sorted(r for r, role in roles.items() if role is RolloutRole.UPDATED))
    lagging = tuple(sorted(r for r, role in roles.items() if role is RolloutRole.LAGGING))
    return updated, lagging


def rollout_outcome(documents: Collection[str], old: str | None, new: str) -> RolloutOutcome | None:
    """How a rollout from ``old`` to ``new`` ends when the regions serve ``documents`` (the distinct sha256s):
    ``converged`` (all on the new one), ``reverted`` (all on the old one again), ``superseded`` (a third
    document), or None (still in progress)."""
    distinct = set(documents)
    if distinct == {new}:
        return "converged"
    if distinct == {old}:
        return "reverted"
    if not distinct <= {old, new}:
        return "superseded"
    return None


@dataclass(frozen=True, slots=True)
class RolloutStep:
    """What one region's move to another document does: ``finish`` the rollout in progress (with this outcome),
    then ``start`` a rollout (from, to); either may be None."""

    finish: RolloutOutcome | None = None
    start: tuple[str, str] | None = None


def rollout_step(before: Mapping[str, str], after: Mapping[str, str], regions: int,
                 in_progress: tuple[str | None, str] | None) -> RolloutStep:  # fmt: skip
    """The rollout consequences of one region moving from one document to another (module doc).

    ``before``/``after``: the group's documents (region label -> sha256) just before and after the move;
    ``regions``: how many regions the group has (a rollout starts only when every one had a document);
    ``in_progress``: (from, to) of the rollout in progress, None without one.
    """
    shas = set(after.values())
    if in_progress is None:
        agreed = set(before.values())
        if len(before) == regions and len(agreed) == 1 and len(shas) == 2:
            common = next(iter(agreed))
            return RolloutStep(start=(common, next(s for s in shas if s != common)))
        return RolloutStep()
    old, new = in_progress
    outcome = rollout_outcome(shas, old, new)
    if outcome == "superseded":
        newest = min(s for s in shas if s not in (old, new))  # one region moved: only one can be new
        return RolloutStep(finish=outcome, start=(new, newest))
    return RolloutStep(finish=outcome)
