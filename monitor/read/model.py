"""The read model: every answer the CLI, the read API and the web UI give, computed once, from the database.

Callers parse their input, call one method here, and render the result; nothing is derived twice. Each
method reads through the repositories in a few set-based queries (``targets`` answers for 10,000 targets
without a query per target) and raises:

* :class:`NotFound` (a ``LookupError``) when a target, snapshot, change or document does not exist;
* :class:`Conflict` when the question cannot be answered yet (a diff needs two snapshots, a comparison a
  document);
* ``StoreError`` when the database fails.

What the answers are made of:

* the **current document** of a target is its latest snapshot; the **baseline** its approved snapshot
  (its first until someone approves another) — defined here, by the queries;
* the **reference**, the **majority**, **deviation**, **drift** (and whether it is acknowledged),
  **flapping**, **staleness** and where each region stands in a **rollout** are the rules of
  :mod:`monitor.fleet.rules`, which the live state behind ``/metrics`` applies too: this module gathers their
  inputs from the database and calls them, so the API, the CLI, the UI and the metrics say the same (what
  the database learns later than the metrics, and for how long, is said there per rule). The last success of
  a target whose last outcome transition is a success is its last poll: a recovery is written at once, the
  time of an unchanged poll with the next batch flush.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from monitor.config import Config, consumer_contracts
from monitor.config.types import parse_duration
from monitor.domain import Change, FailureReason, IgnoreRules, Severity, TargetKey, TargetSpec, utcnow, worst_first
from monitor.fleet import rules
from monitor.fleet.rules import MAJORITY, RolloutRole, Standing
from monitor.fleet.rules import DriftItem as DriftItem  # part of this module's answers (drift)
from monitor.judge.kinds import Microversion, extension_aliases, get_kind, version_entries
from monitor.judge.regions import RegionComparison, compare_regions
from monitor.read.consumers import ConsumersMatrix, consumer_matrix, select_consumers
from monitor.read.references import References
from monitor.read.reports import Comparison
from monitor.store.consumers import ConsumerStore
from monitor.store.database import Database
from monitor.store.records import (
    Baseline,
    ChangeRecord,
    HistoryFilter,
    RolloutRecord,
    SnapshotRecord,
    StoredDocument,
    TargetRow,
    TargetState,
    TransitionRecord,
)

MAX_PAGE: Final = 1000  # targets per page at most (GET /api/targets)


class NotFound(LookupError):
    """What was asked for does not exist (HTTP 404, exit code 2)."""


class Conflict(Exception):
    """The question cannot be answered yet (HTTP 409, exit code 2)."""


@dataclass(frozen=True, slots=True)
class TargetView:
    """A target as the overview, ``/api/targets`` and the target page show it."""

    key: TargetKey
    url: str
    interval: float
    state: TargetState
    baseline: Baseline | None
    deviates: bool
    unacknowledged: Mapping[Severity, int]
    flapping: bool
    rollout: bool  # a rollout is in progress in the target's (cloud, schema)
    stale: bool
    rollout_role: RolloutRole | None = None  # how the region takes part in that rollout (None: it does not)
    standing: Standing | None = None  # how it stands against its fleet, in words (None: no document yet)

    @property
    def reason(self) -> FailureReason | None:
        """Why the last polls fail (None while they succeed)."""
        return self.state.last_reason if self.state.last_poll_ok is False else None


@dataclass(frozen=True, slots=True)
class TargetPage:
    """A page of targets (:meth:`ReadModel.targets_page`) and where the next one starts (None: the last page)."""

    targets: list[TargetView]
    next_after: TargetKey | None


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A rollout in progress: documents, start, and which regions have the new document or lag."""

    cloud: str
    schema: str
    from_sha256: str | None
    to_sha256: str
    started_at: datetime
    updated: tuple[str, ...]
    lagging: tuple[str, ...]


@dataclass(frozen=True)
class RegionView:
    """The region-by-document matrix of one (cloud, schema), and each deviating region's changes."""

    cloud: str
    schema: str
    other_cloud: str | None
    comparison: RegionComparison
    labels: list[str]  # every compared region label, documents or not
    current: dict[str, str]  # label → current sha256
    deviations: list[tuple[str, Comparison]]  # (label, reference → that region)
    rollouts: list[RolloutView] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SurfaceCell:
    """One API version in one region: its status and microversion range (None: no microversions)."""

    status: str
    min_version: Microversion | None
    max_version: Microversion | None

    @property
    def range(self) -> str:
        """``2.1-2.95``; ``-`` when the version has no microversions."""
        if self.min_version is None and self.max_version is None:
            return "-"
        return f"{self.min_version or ''}-{self.max_version or ''}"


@dataclass(frozen=True)
class SurfaceRow:
    """One (service, API version) across the regions; ``deviating``: regions off the majority (or lacking it)."""

    service: str
    version: str
    cells: dict[str, SurfaceCell | None]
    deviating: tuple[str, ...]


@dataclass(frozen=True)
class SurfaceView:
    """A cloud's API surface, region by region: versions and microversions per service, extension differences,
    and services some regions lack."""

    cloud: str
    regions: list[str]
    rows: list[SurfaceRow]
    extensions: dict[str, dict[str, list[str]]]  # service → alias → regions lacking it (aliases all have: left out)
    missing_services: dict[str, list[str]]  # region → services other regions have

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: ``{"cloud", "regions", "versions": [{"service", "version", "deviating", "regions": {region:
        {"status", "min_version", "max_version"} | null}}], "extensions": {...}, "missing_services": {...}}``."""
        return {
            "cloud": self.cloud,
            "regions": self.regions,
            "versions": [
                {"service": row.service, "version": row.version, "deviating": list(row.deviating),
                 "regions": {region: _cell_json(cell) for region, cell in row.cells.items()}}
                for row in self.rows
            ],
            "extensions": self.extensions,
            "missing_services": self.missing_services,
        }  # fmt: skip


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """A point in time from a duration ago (``24h``, ``7d``) or an ISO 8601 / RFC 3339 time (naive: UTC).

    Raises ValueError naming both forms.
    """
    try:
        return (now or utcnow()) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"since: expected a duration like 24h or an ISO date/time, got {value[:40]!r}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: as early/late as can be
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def pick_snapshots(ids: Sequence[int], from_id: int | None, to_id: int | None) -> tuple[int, int]:
    """Resolve ``from``/``to`` against a target's snapshot ids (ascending): ``to`` defaults to the latest,
    ``from`` to the one before ``to``. Raises NotFound for an id of another target, Conflict without two."""
    for given in (from_id, to_id):
        if given is not None and given not in ids:
            raise NotFound(f"snapshot {given} does not belong to this target; see its snapshots")
    chosen = to_id
    if to_id is None:
        if not ids:
            raise Conflict("the target has no snapshot yet; a diff needs two")
        to_id = ids[-1]
    if from_id is None:
        earlier = [i for i in ids if i < to_id]
        if not earlier and chosen is None:
            raise Conflict(f"the target has {len(ids)} snapshot(s); a diff needs two")
        if not earlier:
            raise Conflict(f"snapshot {to_id} is the target's first; a diff needs an earlier one to start from")
        from_id = earlier[-1]
    return from_id, to_id


class ReadModel:
    """Answers over one database for one configuration; thread-safe (every method is its own reads)."""

    def __init__(self, config: Config, database: Database) -> None:
        self._config = config
        self._repository = database.repository
        self._intelligence = database.drift
        self._references = {cloud.name: cloud.reference for cloud in config.clouds}
        self._parsed = lru_cache(maxsize=256)(self._parse)
        self._drift = lru_cache(maxsize=4096)(self._classified)  # (kind, old, new) → changes: documents never change
        self._clouds = {cloud.name: cloud for cloud in config.clouds}
        self._specs: dict[tuple[str, str], TargetSpec | None] = {}  # the configuration never changes either
        self._group_references = References(database.drift, self._references)

    # --- targets -------------------------------------------------------------------------------------

    def known(self) -> dict[TargetKey, TargetRow]:
        """The targets polled now: registered in the database, not retired, of a configured (cloud, schema)."""
        return {
            key: row for key, row in self._repository.targets().items() if self._config.watches(key.cloud, key.schema)
        }

    def row(self, key: TargetKey) -> TargetRow:
        """A known target; raises NotFound naming the label the configuration lacks, or the missing first poll."""
        row = self._repository.target_row(key) if self._config.watches(key.cloud, key.schema) else None
        if row is None:
            raise NotFound(self._unknown(key))
        return row

    def _unknown(self, key: TargetKey) -> str:
        """Why ``key`` is not a known target, as a sentence: which label the configuration lacks, or no poll yet."""
        target = f"no configured target {str(key)[:200]}"
        cloud = next((c for c in self._config.clouds if c.name == key.cloud), None)
        if cloud is None:
            clouds = ", ".join(c.name for c in self._config.clouds)
            return f"{target}: cloud {key.cloud[:100]!r} is not in the configuration (clouds: {clouds})"
        if not self._config.watches(key.cloud, key.schema):
            listed = [s.name for s in cloud.schemas] + (["the catalog's services"] if cloud.services else [])
            schemas = ", ".join(listed)
            return f"{target}: cloud {cloud.name} has no schema {key.schema[:100]!r} (schemas: {schemas})"
        if self._spec(key) is None and isinstance(cloud.regions, list):
            regions = ", ".join(cloud.regions)
            return f"{target}: cloud {cloud.name} has no region {key.region[:100]!r} (regions: {regions})"
        return f"{target} in the database yet (has the monitor polled it?)"

    def targets(self, now: datetime | None = None) -> list[TargetView]:
        """Every known target with its state, in label order."""
        known = self.known()
        ordered = {key: known[key] for key in sorted(known, key=lambda k: (k.cloud, k.region, k.schema))}
        return self._views(ordered, now or utcnow())

    def targets_page(self, after: TargetKey | None, limit: int, now: datetime | None = None) -> TargetPage:
        """At most ``limit`` (1 to :data:`MAX_PAGE`) known targets with their state, the first after ``after``
        (None: from the start) in label order as the database orders labels, and the last one's key when more
        follow. Each page costs about ``limit`` targets' reads whatever the fleet's size (keyset paging on the
        labels' index; the group references cached, :mod:`monitor.read.references`)."""
        rows = self._known_page(after, limit + 1)  # one more tells whether another page follows
        page = rows[:limit]
        views = self._views({row.key: row for row in page}, now or utcnow())
        return TargetPage(views, page[-1].key if len(rows) > limit else None)

    def _known_page(self, after: TargetKey | None, count: int) -> list[TargetRow]:
        """Up to ``count`` known targets after ``after``: pages of the database's targets, those of an (cloud,
        schema) the configuration no longer watches left out."""
        found: list[TargetRow] = []
        while len(found) < count:
            batch = self._repository.target_page(after, count)
            found += [row for row in batch if self._config.watches(row.key.cloud, row.key.schema)]
            if len(batch) < count:
                break
            after = batch[-1].key
        return found[:count]

    def target(self, key: TargetKey, now: datetime | None = None) -> TargetView:
        """One known target's view (its deviation judged within its cloud and schema); raises NotFound."""
        return self._views({key: self.row(key)}, now or utcnow())[0]  # the group's reference: counted, cached

    def _views(self, rows: Mapping[TargetKey, TargetRow], now: datetime) -> list[TargetView]:
        """The views of ``rows``, in their order. Up to :data:`MAX_PAGE` rows the database reads only theirs."""
        ids = [row.id for row in rows.values()]
        some = ids if len(ids) <= MAX_PAGE else None  # None: queries over every target beat parameter lists
        states = self._repository.load_states(ids)
        baselines = self._intelligence.baselines(some)
        acks = self._intelligence.active_acks(now, some)
        settings = self._config.changes
        changes = self._intelligence.change_times(rules.flapping_since(now, settings.flapping_window), some)
        rollouts = {(r.cloud, r.schema): r.to_sha256 for r in self._intelligence.open_rollouts()}
        references = self._group_references.get()
        views = []
        for key, row in rows.items():
            state, group = states[row.id], (key.cloud, key.schema)
            interval = self._interval(key)
            pending = self._pending(key, baselines.get(row.id), state, acks.get(row.id, set()))
            flips = changes.get(row.id, ())
            flapping = rules.flapping(flips, now, settings.flapping_window, settings.flapping_threshold)
            sha = state.document.sha256 if state.document else None
            reference, new = references.get(group), rollouts.get(group)
            views.append(TargetView(
                key=key, url=row.url, interval=interval, state=state, baseline=baselines.get(row.id),
                deviates=rules.deviates(sha, reference), unacknowledged=rules.by_severity(pending),
                flapping=flapping, rollout=new is not None,
                stale=rules.stale(state.last_poll_ok, last_success(state), interval, now),
                rollout_role=rules.rollout_role(sha, new, reference), standing=rules.standing(sha, reference, new),
            ))  # fmt: skip
        return views

    def _interval(self, key: TargetKey) -> float:
        spec = self._spec(key)  # None: a discovered region of a cloud with listed regions: the defaults apply
        return spec.interval if spec is not None else self._config.defaults.interval

    def _ignore(self, key: TargetKey) -> IgnoreRules:
        spec = self._spec(key)
        return spec.ignore if spec is not None else IgnoreRules()

    # --- documents, snapshots, history ---------------------------------------------------------------

    def document(self, sha256: str) -> StoredDocument:
        """A stored canonical document; raises NotFound."""
        document = self._repository.document(sha256)
        if document is None:
            raise NotFound(f"no stored document {sha256[:64]}")
        return document

    def parsed(self, sha256: str) -> dict[str, Any]:
        """A stored document, parsed (cached: documents never change); raises NotFound."""
        parsed: dict[str, Any] = self._parsed(sha256)
        return parsed

    def _parse(self, sha256: str) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.document(sha256).body)
        return parsed

    def snapshots(self, key: TargetKey) -> list[SnapshotRecord]:
        """A target's snapshots, oldest first; raises NotFound."""
        return self._repository.snapshots(self.row(key).id)

    def transitions(self, key: TargetKey, limit: int = 100) -> list[TransitionRecord]:
        """A target's latest poll-outcome transitions, oldest first; raises NotFound."""
        return self._repository.transitions(self.row(key).id, limit)

    def history(self, where: HistoryFilter) -> list[ChangeRecord]:
        """Stored changes, the newest ``where.limit``: polls oldest first, each poll's changes worst first
        (:func:`poll_order`)."""
        return poll_order(self._repository.history(where))

    def change(self, change_id: int) -> ChangeRecord:
        """One stored change; raises NotFound."""
        record = self._repository.change(change_id)
        if record is None:
            raise NotFound(f"no change {change_id}")
        return record

    # --- diffs ---------------------------------------------------------------------------------------

    def snapshot_diff(self, key: TargetKey, from_id: int | None = None, to_id: int | None = None) -> Comparison:
        """Two snapshots of a target (default: its last two); raises NotFound, Conflict."""
        snapshots = {s.id: s for s in self.snapshots(key)}
        from_id, to_id = pick_snapshots(sorted(snapshots), from_id, to_id)
        old, new = snapshots[from_id].document_sha256, snapshots[to_id].document_sha256
        return self._comparison(f"{key}: snapshot {from_id} → {to_id}", self._kind(key), old, new)

    def baseline_diff(self, key: TargetKey) -> Comparison:
        """The approved baseline against the current document; raises NotFound, Conflict."""
        row = self.row(key)
        baseline = self._intelligence.baselines([row.id]).get(row.id)
        state = self._repository.load_states([row.id])[row.id]
        if baseline is None or state.document is None:
            raise Conflict(f"{key} has no snapshot yet")
        title = f"{key}: baseline (snapshot {baseline.snapshot_id}) → current"
        return self._comparison(title, self._kind(key), baseline.sha256, state.document.sha256)

    def region_diff(self, key: TargetKey, other: TargetKey) -> Comparison:
        """The current document of ``other`` (old side) against that of ``key`` (new side)."""
        rows = {k: self.row(k) for k in (key, other)}
        states = self._repository.load_states([row.id for row in rows.values()])
        documents = {k: states[row.id].document for k, row in rows.items()}
        missing = [str(k) for k, document in documents.items() if document is None]
        if missing:
            raise Conflict(f"no document yet for {', '.join(missing)}")
        shas = {k: document.sha256 for k, document in documents.items() if document is not None}
        return self._comparison(f"{other} → {key}", self._kind(key), shas[other], shas[key])

    def _comparison(self, title: str, kind: str, old_sha: str, new_sha: str) -> Comparison:
        old, new = self.parsed(old_sha), self.parsed(new_sha)
        return Comparison(title, old, new, self._drift(kind, old_sha, new_sha))

    def _classified(self, kind: str, old_sha: str, new_sha: str) -> tuple[Change, ...]:
        if old_sha == new_sha:
            return ()
        return tuple(worst_first(get_kind(kind).classify(self.parsed(old_sha), self.parsed(new_sha))))

    def _kind(self, key: TargetKey) -> str:
        """The kind of ``key``'s document (schema for a target the config no longer lists)."""
        spec = self._spec(key)
        return spec.kind if spec is not None else "schema"

    # --- drift ---------------------------------------------------------------------------------------

    def drift(self, key: TargetKey, now: datetime | None = None) -> list[DriftItem]:
        """Every change between the target's baseline and its current document (ignored ones left out), with
        its fingerprint and whether it is acknowledged; raises NotFound, Conflict."""
        now = now or utcnow()
        row = self.row(key)
        state = self._repository.load_states([row.id])[row.id]
        baseline = self._intelligence.baselines([row.id]).get(row.id)
        if baseline is None or state.document is None:
            raise Conflict(f"{key} has no snapshot yet")
        return self._items(key, baseline, state, self._intelligence.active_acks(now, [row.id]).get(row.id, set()))

    def _pending(
        self, key: TargetKey, baseline: Baseline | None, state: TargetState, acked: set[str]
    ) -> list[DriftItem]:
        if baseline is None or state.document is None:
            return []
        return rules.unacknowledged(self._items(key, baseline, state, acked))

    def _items(self, key: TargetKey, baseline: Baseline, state: TargetState, acked: set[str]) -> list[DriftItem]:
        assert state.document is not None
        changes = self._drift(self._kind(key), baseline.sha256, state.document.sha256)
        return rules.drift_items(key, changes, self._ignore(key), acked)

    # --- API surface ----------------------------------------------------------------------------------

    def surface(self, cloud: str) -> SurfaceView:
        """The cloud's API surface from the current versions and extensions documents; raises NotFound."""
        if cloud not in self._references:
            raise NotFound(f"unknown cloud {cloud[:100]!r}")
        rows = {key: row for key, row in self.known().items() if key.cloud == cloud}
        states = self._repository.load_states([row.id for row in rows.values()])
        regions = sorted({key.region for key in rows})
        versions: dict[tuple[str, str], dict[str, SurfaceCell]] = {}
        aliases: dict[str, dict[str, set[str]]] = {}
        services: dict[str, set[str]] = {region: set() for region in regions}
        for key, row in rows.items():
            document = states[row.id].document
            spec = self._spec(key)
            if spec is None or document is None or spec.kind not in ("versions", "extensions"):
                continue
            service = spec.service or key.schema.removesuffix("-extensions")
            services[key.region].add(service)
            parsed = self.parsed(document.sha256)
            if spec.kind == "versions":
                for entry in version_entries(parsed):
                    cell = SurfaceCell(entry.status, entry.min_version, entry.max_version)
                    versions.setdefault((service, entry.id), {})[key.region] = cell
            else:
                aliases.setdefault(service, {})[key.region] = set(extension_aliases(parsed))
        table = [
            _surface_row(service, version, regions, cells) for (service, version), cells in sorted(versions.items())
        ]
        gaps = {service: _extension_gaps(per) for service, per in sorted(aliases.items())}
        return SurfaceView(cloud, regions, table, gaps, _missing_services(services))

    def _spec(self, key: TargetKey) -> TargetSpec | None:
        """``key``'s settings (None: not a target of the configuration). Only what does not depend on the region
        is read from it (interval, ignore rules, kind, service), so it is looked up once per (cloud, schema): a
        page of targets builds no spec per target."""
        cloud = self._clouds.get(key.cloud)
        if cloud is None or (isinstance(cloud.regions, list) and not cloud.lists(key.region)):
            return None
        group = (key.cloud, key.schema)
        if group not in self._specs:  # a race only looks it up twice
            self._specs[group] = self._lookup_spec(key)
        return self._specs[group]

    def _lookup_spec(self, key: TargetKey) -> TargetSpec | None:
        try:
            return self._config.spec_for(key)
        except LookupError:
            return None

    # --- comparison across regions ---------------------------------------------------------------------

    def compare(self, cloud: str, schema: str, reference: str | None = None,
                other_cloud: str | None = None) -> RegionView:  # fmt: skip
        """Group the regions of ``cloud`` (and ``other_cloud``) by the document they serve now.

        ``reference``: ``majority`` or a region label (default: see the module docstring). Raises NotFound for
        an unknown cloud, schema or reference, Conflict when no region (or the reference) has a document.
        """
        clouds = [cloud] if other_cloud in (None, cloud) else [cloud, str(other_cloud)]
        several = len(clouds) > 1
        rows = self.known()
        labelled: dict[str, TargetKey] = {}
        for name in clouds:
            if not self._config.watches(name, schema):
                raise NotFound(f"no configured targets for cloud {name[:100]!r} and schema {schema[:100]!r}")
            for key in sorted((k for k in rows if k.cloud == name and k.schema == schema), key=lambda k: k.region):
                labelled[f"{name}/{key.region}" if several else key.region] = key
        states = self._repository.load_states([rows[key].id for key in labelled.values()])
        current = {
            label: state.document.sha256
            for label, key in labelled.items()
            if (state := states[rows[key].id]).document is not None
        }
        if not current:
            raise Conflict(f"no region of {cloud}/{schema} has a document yet")
        chosen = self._reference(clouds, list(labelled), current, reference)
        comparison = compare_regions(current, chosen)
        deviations = [
            (label, self._comparison(f"{cloud}/{schema}: {label} against the reference ({comparison.reference_label})",
                                     self._kind(labelled[label]), comparison.reference, current[label]))
            for label in comparison.deviating
        ]  # fmt: skip
        rollouts = [self._rollout(r, current, several, comparison.reference) for r in self._intelligence.open_rollouts()
                    if r.cloud in clouds and r.schema == schema]  # fmt: skip
        return RegionView(cloud, schema, clouds[1] if several else None, comparison, list(labelled), current,
                          deviations, rollouts)  # fmt: skip

    def _reference(self, clouds: Sequence[str], labels: Sequence[str], current: Mapping[str, str],
                   asked: str | None) -> str:  # fmt: skip
        several = len(clouds) > 1
        if asked is None:
            configured = self._references.get(clouds[0], MAJORITY)
            return rules.reference(f"{clouds[0]}/{configured}" if several else configured, current)
        if several and asked != MAJORITY and "/" not in asked:
            asked = f"{clouds[0]}/{asked}"
        if asked != MAJORITY and asked not in labels:
            raise NotFound(f"reference {asked[:100]!r} is not a compared region: {', '.join(labels)}")
        if asked != MAJORITY and asked not in current:
            raise Conflict(f"reference region {asked} has no document yet")
        return asked

    # --- consumers (docs/consumers.md) -----------------------------------------------------------------------

    def consumers(self, consumer: str | None = None, region: str | None = None) -> ConsumersMatrix:
        """The configured consumers judged in every region on the current documents (:mod:`monitor.read.consumers`),
        only ``consumer`` / ``region`` when given; raises NotFound naming the ones there are."""
        found = consumer_matrix(consumer_contracts(self._config), self.known(),
                                 ConsumerStore(self._repository.engine), self.parsed)  # fmt: skip
        try:
            return select_consumers(found, consumer, region)
        except LookupError as exc:
            raise NotFound(str(exc)) from None

    @staticmethod
    def _rollout(record: RolloutRecord, current: Mapping[str, str], several: bool, reference: str) -> RolloutView:
        mine = {label: sha for label, sha in current.items() if not several or label.startswith(f"{record.cloud}/")}
        updated, lagging = rules.rollout_regions(mine, record.to_sha256, reference)
        return RolloutView(record.cloud, record.schema, record.from_sha256, record.to_sha256, record.started_at,
                           updated, lagging)  # fmt: skip


def _surface_row(service: str, version: str, regions: Sequence[str], cells: Mapping[str, SurfaceCell]) -> SurfaceRow:
    """The row of one API version: the regions whose range or status is not the majority's, or that lack it."""
    counts: dict[SurfaceCell, int] = {}
    for cell in cells.values():
        counts[cell] = counts.get(cell, 0) + 1
    reference = max(counts, key=lambda cell: (counts[cell], cell.max_version or Microversion(0, 0)))
    deviating = tuple(region for region in regions if cells.get(region) != reference)
    return SurfaceRow(service, version, {region: cells.get(region) for region in regions}, deviating)


def _cell_json(cell: SurfaceCell | None) -> dict[str, Any] | None:
    if cell is None:
        return None
    return {"status": cell.status, "min_version": str(cell.min_version) if cell.min_version else None,
            "max_version": str(cell.max_version) if cell.max_version else None}  # fmt: skip


def _extension_gaps(per_region: Mapping[str, set[str]]) -> dict[str, list[str]]:
    everywhere = set.union(*per_region.values()) if per_region else set()
    return {alias: sorted(r for r, have in per_region.items() if alias not in have)
            for alias in sorted(everywhere) if not all(alias in have for have in per_region.values())}  # fmt: skip


def _missing_services(services: Mapping[str, set[str]]) -> dict[str, list[str]]:
    anywhere = set().union(*services.values()) if services else set()
    return {region: sorted(anywhere - have) for region, have in services.items() if anywhere - have}


def poll_order(records: Iterable[ChangeRecord], newest_first: bool = False) -> list[ChangeRecord]:
    """Stored changes as every history lists them: the changes one poll found (one snapshot of one target)
    together, polls in the order of their first change id (oldest first; ``newest_first`` turns that round),
    and within a poll worst first (:func:`~monitor.domain.change_order`)."""
    polls: dict[tuple[TargetKey, int], list[ChangeRecord]] = {}
    for record in sorted(records, key=lambda r: r.id):
        polls.setdefault((record.target, record.snapshot_id), []).append(record)
    ordered = list(polls.values())  # by first id: dicts keep insertion order
    if newest_first:
        ordered.reverse()
    return [record for poll in ordered for record in worst_first(poll)]


def last_success(state: TargetState) -> datetime | None:
    """The latest successful poll the database knows of: the last poll when the last outcome transition is a
    success (a recovery is written at once, while ``last_success_at`` waits for the next batch flush), else
    ``last_success_at``."""
    polled, succeeded = state.last_poll_at, state.last_success_at
    if state.last_poll_ok is True and polled is not None and (succeeded is None or polled > succeeded):
        return polled
    return succeeded
