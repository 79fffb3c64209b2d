"""Change intelligence kept in memory and exported as metrics: cross-region deviation, rollouts, flapping
and unacknowledged drift. Fed by the service after each poll; the database holds what must survive a
restart (baselines, acknowledgements, rollouts, expected windows).

* **Deviation** — per (cloud, schema) the regions are grouped by the document they serve now; the
  reference is the majority (or a configured region). ``schemadrift_region_variants`` counts the documents,
  ``schemadrift_region_deviates`` is 1 for a region serving another document than the reference.
* **Rollouts** — when all regions agreed and one moves to a new document, a rollout starts; it completes
  when every region serves the new document (``converged``) or the old one again (``reverted``); a third
  document supersedes it. ``schemadrift_rollout_in_progress`` and the completion time and duration.
* **Flapping** — a target whose document changed ``flapping_threshold`` times within ``flapping_window``:
  every flip is recorded, but ``schemadrift_flapping`` is 1 so alerts can say "flapping" instead of paging
  for each flip.
* **Drift** — the difference between the approved baseline and the current document, classified like any
  change; ``schemadrift_drift_unacknowledged{severity}`` counts the drift changes whose fingerprint nobody
  acknowledged (ignored paths excluded).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.config import ChangesConfig, CloudConfig, consumer_contracts
from monitor.domain import Change, IgnoreRules, TargetKey, TargetSpec, fingerprint
from monitor.fleet.consumers import ConsumerState, log_breaks
from monitor.judge.kinds import get_kind
from monitor.judge.regions import MAJORITY, compare_regions
from monitor.signals.metrics import Metrics
from monitor.store.consumers import ConsumerStore
from monitor.store.intelligence import Baseline, IntelligenceStore, RolloutRecord, Window
from monitor.store.repository import ExpectedAck

log = logging.getLogger(__name__)
Group = tuple[str, str]  # (cloud, schema)


@dataclass
class _Rollout:
    id: int
    from_sha: str | None
    to_sha: str
    started_at: datetime


class Fleet:
    """Current documents of every target, and what follows from them across regions."""

    def __init__(self, specs: Sequence[TargetSpec], clouds: Sequence[CloudConfig], metrics: Metrics,
                 *, groups: bool = True) -> None:  # fmt: skip
        self._metrics = metrics
        self._references = {cloud.name: cloud.reference for cloud in clouds}
        self._regions: dict[Group, list[str]] = {}
        for spec in specs:
            self._regions.setdefault((spec.key.cloud, spec.key.schema), []).append(spec.key.region)
        self._region_sets = {group: set(regions) for group, regions in self._regions.items()}
        self._current: dict[TargetKey, str] = {}
        # per group: sha -> the regions serving it now, and the reference sha last exported (see _export_one)
        self._serving: dict[Group, dict[str, set[str]]] = {group: {} for group in self._regions}
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
        return {
            region: self._current[TargetKey(cloud, region, schema)]
            for region in self._regions.get((cloud, schema), [])
            if TargetKey(cloud, region, schema) in self._current
        }

    def observe(self, key: TargetKey, sha: str, at: datetime, store: IntelligenceStore | None, expected: bool) -> None:
        """A successful poll of ``key`` served ``sha``: update deviation and rollout state.

        Costs O(1) in the number of regions unless the document moved (then the rollout logic looks at every
        region) or the group's reference changed (then every region's deviation is exported again).
        """
        group = (key.cloud, key.schema)
        previous = self._current.get(key)
        # A region's first document is no move: a region that always differed is a deviation, not a rollout.
        if previous is not None and previous != sha and store is not None and group in self._regions:
            before = self.current(*group)
            self._put(key, sha)
            self._advance_rollout(group, before, at, store, expected)
        else:
            self._put(key, sha)
        if group in self._regions:
            self._export_one(group, key)

    def _put(self, key: TargetKey, sha: str) -> None:
        """``key`` serves ``sha`` now: the current documents and the per-group index of who serves what."""
        previous = self._current.get(key)
        self._current[key] = sha
        group = (key.cloud, key.schema)
        if previous == sha or key.region not in self._region_sets.get(group, ()):
            return
        serving = self._serving[group]
        if previous is not None:
            serving[previous].discard(key.region)
            if not serving[previous]:
                del serving[previous]
        serving.setdefault(sha, set()).add(key.region)

    def settle(self, store: IntelligenceStore, at: datetime) -> None:
        """Finish open rollouts whose regions already agree (e.g. a finish lost to a database error or a
        crash between a snapshot and its rollout update)."""
        for group, rollout in list(self._rollouts.items()):
            shas = set(self.current(*group).values())
            if shas in ({rollout.to_sha}, {rollout.from_sha}):
                self._finish(group, rollout, shas, at, store)
            self._export(group)

    def _advance_rollout(self, group: Group, before: dict[str, str], at: datetime, store: IntelligenceStore,
                         expected: bool) -> None:  # fmt: skip
        after = self.current(*group)
        rollout = self._rollouts.get(group)
        complete = len(before) == len(self._regions[group])  # every region had a document before
        if rollout is None:
            if complete and len(set(before.values())) == 1 and len(set(after.values())) == 2:
                old = next(iter(before.values()))
                self._start(group, old, next(s for s in after.values() if s != old), at, store, expected)
            return
        shas = set(after.values())
        if shas in ({rollout.to_sha}, {rollout.from_sha}):
            self._finish(group, rollout, shas, at, store)
        elif not shas <= {rollout.from_sha, rollout.to_sha}:
            store.finish_rollout(rollout.id, at, "superseded")
            del self._rollouts[group]
            newest = next(s for s in shas if s not in (rollout.from_sha, rollout.to_sha))
            self._start(group, rollout.to_sha, newest, at, store, expected)

    def _start(self, group: Group, old: str | None, new: str, at: datetime, store: IntelligenceStore,
               expected: bool) -> None:  # fmt: skip
        record = store.start_rollout(group[0], group[1], old, new, at, expected)  # or the one already open
        self._rollouts[group] = _Rollout(record.id, record.from_sha256, record.to_sha256, record.started_at)
        log.info("rollout started in %s/%s: %s → %s", group[0], group[1], (old or "")[:12], new[:12])

    def _finish(self, group: Group, rollout: _Rollout, shas: set[str], at: datetime, store: IntelligenceStore) -> None:
        outcome = "converged" if shas == {rollout.to_sha} else "reverted"
        recorded = store.finish_rollout(rollout.id, at, outcome)  # False: another replica finished it
        del self._rollouts[group]
        self._export_completion(group[0], group[1], rollout.started_at, at)
        if recorded:
            log.info("rollout %s in %s/%s after %s", outcome, group[0], group[1], at - rollout.started_at)

    def rollout(self, cloud: str, schema: str) -> dict[str, Any] | None:
        """The rollout in progress: documents, start, and which regions have the new document or lag."""
        rollout = self._rollouts.get((cloud, schema))
        if rollout is None:
            return None
        current = self.current(cloud, schema)
        return {
            "from_sha256": rollout.from_sha,
            "to_sha256": rollout.to_sha,
            "started_at": rollout.started_at.isoformat(),
            "updated": sorted(r for r, sha in current.items() if sha == rollout.to_sha),
            "lagging": sorted(r for r, sha in current.items() if sha != rollout.to_sha),
        }

    def _export(self, group: Group) -> None:
        """Deviation of the (registered, i.e. own) targets; the group's series when this fleet exports them."""
        cloud, schema = group
        current = self.current(cloud, schema)
        comparison = compare_regions(current, self._reference(cloud, current)) if current else None
        deviating = set(comparison.deviating) if comparison else set()
        for region in self._regions[group]:
            self._metrics.set_deviates(TargetKey(cloud, region, schema), region in deviating)
        self._exported_reference[group] = comparison.reference if comparison else None
        if self.exports_groups:
            variants = len(comparison.variants) if comparison else None
            self._metrics.set_group(cloud, schema, rollout=group in self._rollouts, variants=variants)

    def _export_one(self, group: Group, key: TargetKey) -> None:
        """What ``key``'s new document changes: its own deviation and the group's series — or, when the
        reference moved, everything (:meth:`_export`). The reference is chosen as ``compare_regions`` does."""
        reference = self._reference_sha(group)
        if group not in self._exported_reference or reference != self._exported_reference[group]:
            self._export(group)
            return
        self._metrics.set_deviates(key, self._current[key] != reference)
        if self.exports_groups:
            variants = len(self._serving[group]) or None
            self._metrics.set_group(key.cloud, key.schema, rollout=group in self._rollouts, variants=variants)

    def _reference_sha(self, group: Group) -> str | None:
        """The reference document of ``group`` from the index: the configured region's while it has one, else
        the majority's (most regions; a tie to the variant whose first region sorts first)."""
        serving = self._serving[group]
        if not serving:
            return None
        cloud, schema = group
        configured = self._references.get(cloud, MAJORITY)
        if configured != MAJORITY and configured in self._region_sets[group]:
            sha = self._current.get(TargetKey(cloud, configured, schema))
            if sha is not None:
                return sha
        return min(serving.items(), key=lambda item: (-len(item[1]), min(item[1])))[0]

    def _reference(self, cloud: str, current: Mapping[str, str]) -> str:
        """The cloud's configured reference region while it has a document, else the majority."""
        configured = self._references.get(cloud, MAJORITY)
        return configured if configured in current else MAJORITY

    def _export_completion(self, cloud: str, schema: str, started: datetime, completed: datetime) -> None:
        if self.exports_groups:
            self._metrics.set_rollout_completed(cloud, schema, started, completed)


class Flapping:
    """Counts content changes per target within a sliding window."""

    def __init__(self, settings: ChangesConfig, metrics: Metrics) -> None:
        self._window = timedelta(seconds=settings.flapping_window)
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
        times = self._changes.setdefault(key, deque())
        if changed_at is not None:
            times.append(changed_at)
        while times and times[0] < now - self._window:
            times.popleft()
        flapping = len(times) >= self._threshold
        if flapping:
            self._flapping.add(key)
        else:
            self._flapping.discard(key)
        self._metrics.set_flapping(key, flapping)
        return flapping

    def active(self) -> frozenset[TargetKey]:
        """The targets flapping as of their last observation."""
        return frozenset(self._flapping)


class Drift:
    """Unacknowledged drift per target: baseline vs current, minus acknowledged and ignored changes."""

    def __init__(self, specs: Sequence[TargetSpec], metrics: Metrics, load_document: Callable[[str], str]) -> None:
        self._specs = {spec.key: spec for spec in specs}
        self._metrics = metrics
        self._load = load_document
        self._documents: dict[str, dict[str, Any]] = {}
        self._cache: dict[tuple[TargetKey, str, str], list[Change]] = {}
        self.unacknowledged: dict[TargetKey, list[tuple[str, Change]]] = {}

    def _document(self, sha: str) -> dict[str, Any]:
        if sha not in self._documents:
            if len(self._documents) > 256:
                self._documents.clear()
            self._documents[sha] = json.loads(self._load(sha))
        return self._documents[sha]

    def changes(self, key: TargetKey, baseline: str, current: str) -> list[Change]:
        """Classified drift of ``key`` (ignore rules applied); cached per (baseline, current)."""
        cache_key = (key, baseline, current)
        if cache_key not in self._cache:
            kind = get_kind(self._specs[key].kind)
            found = [] if baseline == current else kind.classify(self._document(baseline), self._document(current))
            rules = self._specs[key].ignore
            self._cache[cache_key] = [replace(c, ignored=rules.matches(c)) for c in found]
        return self._cache[cache_key]

    def refresh(self, key: TargetKey, baseline: Baseline | None, current: str | None, acked: set[str]) -> None:
        """Recompute and export the target's unacknowledged drift."""
        pending: list[tuple[str, Change]] = []
        if baseline is not None and current is not None:
            for change in self.changes(key, baseline.sha256, current):
                fp = fingerprint(key, change)
                if not change.ignored and fp not in acked:
                    pending.append((fp, change))
        self.unacknowledged[key] = pending
        self._metrics.set_drift(key, Counter(c.severity for _, c in pending))


def expected_now(windows: Sequence[Window], key: TargetKey, at: datetime) -> Window | None:
    """The expected-change window covering a change of ``key`` at ``at``, if any."""
    return next((w for w in windows if w.covers(key, at)), None)


class Intelligence:
    """Everything that turns recorded changes into operator signals, behind four calls the service makes.

    All methods are blocking (database) and run on the service's store thread; ``StoreError`` propagates.
    """

    def __init__(self, specs: Sequence[TargetSpec], config: Any, metrics: Metrics, store: IntelligenceStore) -> None:
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
        changed = first or bool(changes) or self._current.get(key) != sha
        self._current[key] = sha
        expected = [c for c in changes if c.expected]
        if expected:  # acknowledged on arrival, with the snapshot (expected_ack): it must not page as drift
            self._acks.setdefault(tid, set()).update(fingerprint(key, c) for c in expected)
        if first and tid not in self._baselines:
            self._baselines = {**self._baselines, tid: Baseline(-1, sha)}  # the first snapshot; id from next refresh
        self.fleet.observe(key, sha, at, self.store if changed else None, expected=bool(expected))
        self.flapping.observe(key, at if changes else None, at)
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
