"""Change intelligence kept in memory and exported as metrics: cross-region deviation, rollouts, flapping
and unacknowledged drift. Fed by the service after each poll; the database holds what must survive a
restart (baselines, acknowledgements, rollouts, expected windows).

The rules themselves — reference, majority, deviation, drift items, flapping, rollouts — are those of
:mod:`monitor.fleet.rules`, which the read model applies too; this module keeps their inputs up to date,
incrementally, and exports the answers:

* **Deviation** — ``schemadrift_region_variants`` counts the documents a (cloud, schema)'s regions serve,
  ``schemadrift_region_deviates`` is 1 for a region serving another document than the reference. A
  :class:`~monitor.fleet.rules.Documents` index per group keeps a poll O(documents), not O(regions).
* **Rollouts** — started, finished and superseded as :func:`~monitor.fleet.rules.rollout_step` says, recorded
  in the database; ``schemadrift_rollout_in_progress`` and the completion time and duration.
* **Flapping** — every flip is recorded, but ``schemadrift_flapping`` is 1 so alerts can say "flapping"
  instead of paging for each flip.
* **Drift** — ``schemadrift_drift_unacknowledged{severity}`` counts the drift items nobody acknowledged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.config import ChangesConfig, CloudConfig, consumer_contracts
from monitor.domain import Change, IgnoreRules, TargetKey, TargetSpec, fingerprint
from monitor.fleet import rules
from monitor.fleet.consumers import ConsumerState, log_breaks
from monitor.judge.kinds import get_kind
from monitor.signals.metrics import Metrics
from monitor.store.consumers import ConsumerStore
from monitor.store.drift import DriftStore
from monitor.store.records import Baseline, ExpectedAck, RolloutRecord, Window

log = logging.getLogger(__name__)
Group = tuple[str, str]  # (cloud, schema)


@dataclass
class _Rollout:
    id: int
    from_sha: str | None
    to_sha: str
    started_at: datetime


class Fleet:
    """Current documents of every target, and what follows from them across regions (by :mod:`.rules`)."""

    def __init__(self, specs: Sequence[TargetSpec], clouds: Sequence[CloudConfig], metrics: Metrics,
                 *, groups: bool = True) -> None:  # fmt: skip
        self._metrics = metrics
        self._references = {cloud.name: cloud.reference for cloud in clouds}
        self._regions: dict[Group, list[str]] = {}
        for spec in specs:
            self._regions.setdefault((spec.key.cloud, spec.key.schema), []).append(spec.key.region)
        self._region_sets = {group: set(regions) for group, regions in self._regions.items()}
        # per group: who serves what now, and the reference sha last exported (see _export_one)
        self._documents: dict[Group, rules.Documents] = {group: rules.Documents() for group in self._regions}
        self._exported_reference: dict[Group, str | None] = {}
        self._rollouts: dict[Group, _Rollout] = {}
        self.exports_groups = groups  # the (cloud, schema) series: with replicas, the leader's alone
        if groups:
            metrics.register_groups(self._regions)

    def reload(self, current: Mapping[TargetKey, str], own: Collection[TargetKey]) -> None:
        """The documents other replicas' regions serve, as the database says (``own`` ones are fresher here)."""
        for key, sha in current.items():
            if key not in own:
                self._put(key, sha)
        for group in self._regions:
            self._export(group)

    @property
    def groups(self) -> set[Group]:
        """The (cloud, schema) pairs with at least one region."""
        return set(self._regions)

    def restore(self, current: Mapping[TargetKey, str], open_rollouts: Sequence[RolloutRecord],
                completed: Sequence[RolloutRecord]) -> None:  # fmt: skip
        """Load the state of the previous run, then export it."""
        for key, sha in current.items():
            self._put(key, sha)
        for r in open_rollouts:
            self._rollouts[(r.cloud, r.schema)] = _Rollout(r.id, r.from_sha256, r.to_sha256, r.started_at)
        for r in completed:
            if r.completed_at is not None and (r.cloud, r.schema) in self._regions:
                self._export_completion(r.cloud, r.schema, r.started_at, r.completed_at)
        for group in self._regions:
            self._export(group)

    def current(self, cloud: str, schema: str) -> dict[str, str]:
        """Region → current document sha of one (cloud, schema); regions never polled are absent."""
        documents = self._documents.get((cloud, schema))
        return dict(documents.by_region) if documents is not None else {}

    def observe(self, key: TargetKey, sha: str, at: datetime, store: DriftStore | None, expected: bool) -> None:
        """A successful poll of ``key`` served ``sha``: update deviation and rollout state.

        Costs O(documents of the group) unless the document moved (then the rollout rules look at every
        region) or the group's reference changed (then every region's deviation is exported again).
        """
        group = (key.cloud, key.schema)
        if key.region not in self._region_sets.get(group, ()):
            return  # a poll that outlived its target's removal
        previous = self._documents[group].by_region.get(key.region)
        # A region's first document is no move: a region that always differed is a deviation, not a rollout.
        if previous is not None and previous != sha and store is not None:
            before = self.current(*group)
            self._put(key, sha)
            self._advance_rollout(group, before, at, store, expected)
        else:
            self._put(key, sha)
        self._export_one(group, key)

    def _put(self, key: TargetKey, sha: str) -> None:
        """``key`` serves ``sha`` now (targets of no known group or region are left out)."""
        group = (key.cloud, key.schema)
        if key.region in self._region_sets.get(group, ()):
            self._documents[group].put(key.region, sha)

    def settle(self, store: DriftStore, at: datetime) -> None:
        """Finish open rollouts whose regions already agree (e.g. a finish lost to a database error or a
        crash between a snapshot and its rollout update)."""
        for group, rollout in list(self._rollouts.items()):
            documents = self._documents[group].by_document if group in self._documents else {}
            outcome = rules.rollout_outcome(documents, rollout.from_sha, rollout.to_sha)
            if outcome in ("converged", "reverted"):
                self._finish(group, rollout, outcome, at, store)
            self._export(group)

    def _advance_rollout(self, group: Group, before: dict[str, str], at: datetime, store: DriftStore,
                         expected: bool) -> None:  # fmt: skip
        rollout = self._rollouts.get(group)
        in_progress = (rollout.from_sha, rollout.to_sha) if rollout is not None else None
        step = rules.rollout_step(before, self.current(*group), len(self._regions[group]), in_progress)
        if rollout is not None and step.finish is not None:
            self._finish(group, rollout, step.finish, at, store)
        if step.start is not None:
            self._start(group, *step.start, at, store, expected)

    def _start(self, group: Group, old: str | None, new: str, at: datetime, store: DriftStore,
               expected: bool) -> None:  # fmt: skip
        record = store.start_rollout(group[0], group[1], old, new, at, expected)  # or the one already open
        self._rollouts[group] = _Rollout(record.id, record.from_sha256, record.to_sha256, record.started_at)
        log.info("rollout started in %s/%s: %s → %s", group[0], group[1], (old or "")[:12], new[:12])

    def _finish(self, group: Group, rollout: _Rollout, outcome: str, at: datetime, store: DriftStore) -> None:
        recorded = store.finish_rollout(rollout.id, at, outcome)  # False: another replica finished it
        del self._rollouts[group]
        if outcome != "superseded":
            self._export_completion(group[0], group[1], rollout.started_at, at)
        if recorded:
            log.info("rollout %s in %s/%s after %s", outcome, group[0], group[1], at - rollout.started_at)

    def rollout(self, cloud: str, schema: str) -> dict[str, Any] | None:
        """The rollout in progress: documents, start, and which regions have the new document or lag behind it
        (:func:`~monitor.fleet.rules.rollout_role`)."""
        rollout = self._rollouts.get((cloud, schema))
        if rollout is None:
            return None
        documents = self._documents[(cloud, schema)]
        reference = documents.reference(self._references.get(cloud, rules.MAJORITY))
        updated, lagging = rules.rollout_regions(documents.by_region, rollout.to_sha, reference)
        return {
            "from_sha256": rollout.from_sha,
            "to_sha256": rollout.to_sha,
            "started_at": rollout.started_at.isoformat(),
            "updated": list(updated),
            "lagging": list(lagging),
        }

    def _export(self, group: Group) -> None:
        """Deviation of the (registered, i.e. own) targets; the group's series when this fleet exports them."""
        cloud, schema = group
        documents = self._documents[group]
        reference = documents.reference(self._references.get(cloud, rules.MAJORITY))
        for region in self._regions[group]:
            deviates = rules.deviates(documents.by_region.get(region), reference)
            self._metrics.set_deviates(TargetKey(cloud, region, schema), deviates)
        self._exported_reference[group] = reference
        self._export_group(group)

    def _export_one(self, group: Group, key: TargetKey) -> None:
        """What ``key``'s new document changes: its own deviation and the group's series — or, when the
        reference moved, everything (:meth:`_export`)."""
        documents = self._documents[group]
        reference = documents.reference(self._references.get(key.cloud, rules.MAJORITY))
        if group not in self._exported_reference or reference != self._exported_reference[group]:
            self._export(group)
            return
        self._metrics.set_deviates(key, rules.deviates(documents.by_region.get(key.region), reference))
        self._export_group(group)

    def _export_group(self, group: Group) -> None:
        """The group's series (when this fleet exports them): rollout in progress, and how many documents."""
        if self.exports_groups:
            variants = len(self._documents[group].by_document) or None
            self._metrics.set_group(group[0], group[1], rollout=group in self._rollouts, variants=variants)

    def _export_completion(self, cloud: str, schema: str, started: datetime, completed: datetime) -> None:
        if self.exports_groups:
            self._metrics.set_rollout_completed(cloud, schema, started, completed)


class Flapping:
    """Keeps each target's recent changes and exports whether it is flapping (:func:`.rules.flapping`)."""

    def __init__(self, settings: ChangesConfig, metrics: Metrics) -> None:
        self._window = settings.flapping_window
        self._threshold = settings.flapping_threshold
        self._metrics = metrics
        self._changes: dict[TargetKey, deque[datetime]] = {}
        self._flapping: set[TargetKey] = set()

    def restore(self, times: Mapping[TargetKey, Sequence[datetime]]) -> None:
        """Start from the changes the database holds (a restart does not reset flapping)."""
        for key, changed in times.items():
            self._changes[key] = deque(sorted(changed))

    def observe(self, key: TargetKey, changed_at: datetime | None, now: datetime) -> bool:
        """Record a change (when ``changed_at`` is given) and return whether the target is flapping."""
        if changed_at is None and key not in self._flapping and not self._changes.get(key) and self._threshold > 0:
            return False  # no change in the window and not flapping: nothing moves (the periodic refresh's usual case)
        times = self._changes.setdefault(key, deque())
        if changed_at is not None:
            times.append(changed_at)
        since = rules.flapping_since(now, self._window)
        while times and times[0] < since:  # out of the window for good: time only moves on
            times.popleft()
        flapping = rules.flapping(times, now, self._window, self._threshold)
        if flapping:
            self._flapping.add(key)
        else:
            self._flapping.discard(key)
        self._metrics.set_flapping(key, flapping)
        return flapping

    def active(self) -> frozenset[TargetKey]:
        """The targets flapping as of their last observation."""
        return frozenset(self._flapping)


_NO_DRIFT = rules.by_severity(())
_NONE: frozenset[str] = frozenset()  # shared by every target without acknowledgements


class Drift:
    """Unacknowledged drift per target: baseline vs current, minus acknowledged and ignored changes."""

    def __init__(self, specs: Sequence[TargetSpec], metrics: Metrics, load_document: Callable[[str], str]) -> None:
        self._specs = {spec.key: spec for spec in specs}
        self._metrics = metrics
        self._load = load_document
        self._documents: dict[str, dict[str, Any]] = {}
        self._cache: dict[tuple[TargetKey, str, str], list[Change]] = {}
        self._inputs: dict[TargetKey, tuple[str | None, str | None, frozenset[str]]] = {}  # as last computed
        self.unacknowledged: dict[TargetKey, list[tuple[str, Change]]] = {}

    def _document(self, sha: str) -> dict[str, Any]:
        if sha not in self._documents:
            if len(self._documents) > 256:
                self._documents.clear()
            self._documents[sha] = json.loads(self._load(sha))
        return self._documents[sha]

    def changes(self, key: TargetKey, baseline: str, current: str) -> list[Change]:
        """The changes from ``baseline`` to ``current`` as ``key``'s kind classifies them; cached per
        (baseline, current)."""
        cache_key = (key, baseline, current)
        if cache_key not in self._cache:
            kind = get_kind(self._specs[key].kind)
            found = [] if baseline == current else kind.classify(self._document(baseline), self._document(current))
            self._cache[cache_key] = found
        return self._cache[cache_key]

    def refresh(self, key: TargetKey, baseline: Baseline | None, current: str | None, acked: set[str]) -> None:
        """Recompute and export the target's unacknowledged drift (:func:`.rules.drift_items`); nothing to do when
        its baseline, current document and acknowledgements are those of the last time (the periodic refresh of
        an unchanged fleet costs a comparison per target)."""
        inputs = (baseline.sha256 if baseline is not None else None, current, frozenset(acked) if acked else _NONE)
        if self._inputs.get(key) == inputs:
            return
        self._inputs[key] = inputs
        pending: list[rules.DriftItem] = []
        if baseline is not None and current is not None:
            changes = self.changes(key, baseline.sha256, current)
            pending = rules.unacknowledged(rules.drift_items(key, changes, self._specs[key].ignore, acked))
        self.unacknowledged[key] = [(item.fingerprint, item.change) for item in pending]
        self._metrics.set_drift(key, rules.by_severity(pending) if pending else _NO_DRIFT)


def expected_now(windows: Sequence[Window], key: TargetKey, at: datetime) -> Window | None:
    """The expected-change window covering a change of ``key`` at ``at``, if any."""
    return next((w for w in windows if w.covers(key, at)), None)


class Intelligence:
    """Everything that turns recorded changes into operator signals, behind four calls the service makes.

    All methods are blocking (database) and run on the service's store thread; ``StoreError`` propagates.
    """

    def __init__(self, specs: Sequence[TargetSpec], config: Any, metrics: Metrics, store: DriftStore) -> None:
        self.store = store
        self._config = config
        self._metrics = metrics
        self.fleet = Fleet(specs, config.clouds, metrics)
        self.flapping = Flapping(config.changes, metrics)
        self.drift = Drift(specs, metrics, store.document_body)
        # consumer contracts (docs/consumers.md): judged after each poll, exported by the leader
        contracts = consumer_contracts(config) if getattr(config, "consumers", None) else ()
        self.consumers = ConsumerState(contracts, metrics, ConsumerStore(store.engine), export=True)
        self.consumers.retarget(spec.key for spec in specs)
        self._specs = {spec.key: spec for spec in specs}
        self._config_windows = [
            Window(w.cloud, w.schema_name, w.start, w.end, w.comment or "expected (config)")
            for w in config.changes.expected
        ]
        self._windows: list[Window] = list(self._config_windows)
        self._target_ids: dict[TargetKey, int] = {}
        self._current: dict[TargetKey, str] = {}
        self._baselines: dict[int, Baseline] = {}
        self._acks: dict[int, set[str]] = {}
        self._lock = threading.RLock()
        self._shared = False  # other replicas poll some of the fleet
        self.leader = True  # exports the (cloud, schema) series and settles rollouts

    def retarget(
        self,
        specs: Sequence[TargetSpec],
        targets: Mapping[TargetKey, tuple[int, str | None]],
        now: datetime,
        fleet: Sequence[TargetSpec] | None = None,
    ) -> None:
        """Follow a new set of targets (regions discovered or gone, targets handed over), then restore.

        ``specs`` are the targets polled here; ``fleet`` (with replicas) every target of the configuration,
        whose documents other replicas record: deviations and rollouts are judged over all of them.
        """
        with self._lock:  # restore too: a store thread must not see the new fleet empty
            before = self.fleet.groups if self.fleet.exports_groups else set()
            self._shared = fleet is not None
            self.fleet = Fleet(fleet if fleet is not None else specs, self._config.clouds, self._metrics,
                               groups=self.leader)  # fmt: skip
            self._metrics.remove_groups(before - self.fleet.groups)  # a cloud whose last region left
            self.drift = Drift(specs, self._metrics, self.store.document_body)
            self.consumers.retarget(spec.key for spec in (fleet if fleet is not None else specs))
            self._specs = {spec.key: spec for spec in specs}
            self.restore(targets, now)

    def restore(self, targets: Mapping[TargetKey, tuple[int, str | None]], now: datetime) -> None:
        """Load rollouts, baselines, acknowledgements and windows; export every gauge."""
        with self._lock:
            self._target_ids = {key: tid for key, (tid, _) in targets.items()}
            self._current = {key: sha for key, (_, sha) in targets.items() if sha is not None}
            self.fleet.restore(self._current, self.store.open_rollouts(), self.store.last_completed_rollouts())
            since = now - timedelta(seconds=self._config.changes.flapping_window)
            times = self.store.change_times(since)
            self.flapping.restore({key: times[tid] for key, tid in self._target_ids.items() if tid in times})
        self.refresh(now)

    def set_leader(self, leader: bool) -> None:
        """This replica became (or stopped being) the one exporting group series and settling rollouts."""
        with self._lock:
            if leader == self.leader:
                return
            self.leader = leader
            if not leader:
                self._metrics.remove_groups(self.fleet.groups)
            else:
                self._metrics.register_groups(self.fleet.groups)
            self.fleet.exports_groups = leader
            self.consumers.set_export(leader)

    def refresh(self, now: datetime) -> None:
        """Re-read baselines, acknowledgements (expiry included) and windows, and — with replicas — the
        documents of the regions polled elsewhere; recompute drift for all; the leader finishes rollouts
        whose completion was not recorded."""
        with self._lock:
            self._baselines = self.store.baselines()
            self._acks = self.store.active_acks(now)
            self._windows = self._config_windows + self.store.windows(now)
            if self._shared:
                self.fleet.reload(self.store.current_documents(), own=self._specs.keys())
            if self.leader:
                self.fleet.settle(self.store, now)
            self.consumers.reload()
            for key in self._target_ids:
                self._refresh_drift(key)
            for key in self._specs:
                self.flapping.observe(key, None, now)

    def _refresh_drift(self, key: TargetKey) -> None:
        tid = self._target_ids[key]
        self.drift.refresh(key, self._baselines.get(tid), self._current.get(key), self._acks.get(tid, set()))

    def flag(self, key: TargetKey, changes: Sequence[Change], at: datetime,
             documents: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None) -> list[Change]:  # fmt: skip
        """Mark changes matching the target's ignore rules, all of them when a window expects them, and — given
        the ``documents`` (old, new) — those breaking a consumer's requirement (docs/consumers.md)."""
        if not changes:
            return []
        if documents is not None:
            with self._lock:
                changes = self.consumers.mark(key, documents[0], documents[1], changes)
        spec = self._specs.get(key)  # None: a poll that outlived its target's removal
        rules = spec.ignore if spec is not None else IgnoreRules()
        with self._lock:  # changes are rare: re-read windows so one declared seconds ago already counts
            self._windows = self._config_windows + self.store.windows(at)
            expected = expected_now(self._windows, key, at) is not None
        return [replace(c, ignored=rules.matches(c), expected=expected) for c in changes]

    def after_success(self, key: TargetKey, sha: str, changes: Sequence[Change], at: datetime,
                      first: bool) -> None:  # fmt: skip
        """A successful poll served ``sha``; ``changes`` were recorded with it (empty when unchanged).

        Serialised with a lock: the service's store threads call it concurrently for different targets.
        """
        with self._lock:
            if key in self._specs:  # not a poll that outlived its target's removal
                self._after_success(key, sha, changes, at, first)

    def _after_success(self, key: TargetKey, sha: str, changes: Sequence[Change], at: datetime,
                       first: bool) -> None:  # fmt: skip
        tid = self._target_ids[key]
        moved = not first and self._current.get(key) != sha  # a stored snapshot other than the first: a change
        changed = first or bool(changes) or moved
        self._current[key] = sha
        expected = [c for c in changes if c.expected]
        if expected:  # acknowledged on arrival, with the snapshot (expected_ack): it must not page as drift
            self._acks.setdefault(tid, set()).update(fingerprint(key, c) for c in expected)
        if first and tid not in self._baselines:
            self._baselines = {**self._baselines, tid: Baseline(-1, sha)}  # the first snapshot; id from next refresh
        self.fleet.observe(key, sha, at, self.store if changed else None, expected=bool(expected))
        self.flapping.observe(key, at if moved else None, at)
        self._refresh_drift(key)
        self.consumers.observe(key, sha)
        log_breaks(key, changes)

    def expected_ack(self, key: TargetKey, changes: Sequence[Change], at: datetime) -> ExpectedAck | None:
        """The acknowledgements of the expected ones among ``changes``, to store with their snapshot."""
        expected = tuple(fingerprint(key, c) for c in changes if c.expected)
        if not expected:
            return None
        with self._lock:
            window = expected_now(self._windows, key, at)
        return ExpectedAck(expected, window.comment if window else "expected")

    def unacknowledged(self, key: TargetKey) -> list[tuple[str, Change]]:
        return self.drift.unacknowledged.get(key, [])
