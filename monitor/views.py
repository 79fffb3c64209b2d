"""Read-side views over the database for the CLI: snapshot diffs, region comparisons and drift.

Each function reads what it needs through the repositories and returns plain data that
:mod:`monitor.reports` and :mod:`monitor.compare` render. Raises LookupError with a message for the user
when a target or snapshot does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.compare import RegionComparison, compare_regions
from monitor.config import Config
from monitor.diffing import classify
from monitor.domain import Change, TargetKey, TargetSpec, fingerprint
from monitor.reports import Comparison
from monitor.store.intelligence import IntelligenceStore
from monitor.store.repository import Repository


def _parsed(repository: Repository, sha: str) -> dict[str, Any]:
    document = repository.document(sha)
    if document is None:
        raise LookupError(f"document {sha[:12]} is missing")
    parsed: dict[str, Any] = json.loads(document.body)
    return parsed


def target_id(repository: Repository, key: TargetKey) -> int:
    found = repository.target_id(key)
    if found is None:
        raise LookupError(f"no target {key} in the database (has the monitor polled it yet?)")
    return found


def current_sha(repository: Repository, key: TargetKey) -> str | None:
    """The sha256 of the target's latest snapshot (None when never polled successfully)."""
    found = repository.target_id(key)
    if found is None:
        return None
    state = repository.load_states([found])[found]
    return state.document.sha256 if state.document else None


def snapshot_diff(repository: Repository, key: TargetKey, from_id: int, to_id: int) -> Comparison:
    """The comparison of two snapshots of ``key`` (ids already checked to belong to it)."""
    snapshots = {s.id: s for s in repository.snapshots(target_id(repository, key))}
    old = _parsed(repository, snapshots[from_id].document_sha256)
    new = _parsed(repository, snapshots[to_id].document_sha256)
    return Comparison(f"{key}: snapshot {from_id} → {to_id}", old, new, classify(old, new))


def baseline_diff(repository: Repository, store: IntelligenceStore, key: TargetKey) -> Comparison:
    """The target's approved baseline against its current document."""
    tid = target_id(repository, key)
    baseline = store.baselines().get(tid)
    current = current_sha(repository, key)
    if baseline is None or current is None:
        raise LookupError(f"{key} has no snapshot yet")
    old, new = _parsed(repository, baseline.sha256), _parsed(repository, current)
    return Comparison(f"{key}: baseline (snapshot {baseline.snapshot_id}) → current", old, new, classify(old, new))


def region_diff(repository: Repository, key: TargetKey, other: TargetKey) -> Comparison:
    """The current document of ``other`` (old side) against that of ``key`` (new side)."""
    shas = {k: current_sha(repository, k) for k in (key, other)}
    missing = [str(k) for k, sha in shas.items() if sha is None]
    if missing:
        raise LookupError(f"no document yet for {', '.join(missing)}")
    old, new = _parsed(repository, shas[other] or ""), _parsed(repository, shas[key] or "")
    return Comparison(f"{other} → {key}", old, new, classify(old, new))


@dataclass(frozen=True)
class RegionView:
    comparison: RegionComparison
    labels: list[str]  # every configured region label, documents or not
    deviations: list[Comparison]  # reference → each deviating region


def compare_view(
    repository: Repository, config: Config, cloud: str, schema: str, reference: str | None = None,
    other_cloud: str | None = None,
) -> RegionView:  # fmt: skip
    """Group the regions of ``cloud`` (and ``other_cloud``) by the document they serve now."""
    clouds = [c for c in config.clouds if c.name in (cloud, other_cloud)]
    if not any(c.name == cloud for c in clouds) or (other_cloud and len(clouds) < 2):
        raise LookupError(f"unknown cloud {cloud if not clouds else other_cloud!r}")
    labelled = {
        (f"{c.name}/{r}" if other_cloud else r): TargetKey(c.name, r, schema)
        for c in clouds
        for r in (c.regions if isinstance(c.regions, list) else repository.regions(c.name))
    }
    shas = {label: current_sha(repository, key) for label, key in labelled.items()}
    current = {label: sha for label, sha in shas.items() if sha is not None}
    if not current:
        raise LookupError(f"no region of {cloud}/{schema} has a document yet")
    chosen = reference or next(c.reference for c in clouds if c.name == cloud)
    if other_cloud and chosen != "majority" and "/" not in chosen:
        chosen = f"{cloud}/{chosen}"
    comparison = compare_regions(current, chosen)
    reference_doc = _parsed(repository, comparison.reference)
    deviations = []
    for label in comparison.deviating:
        doc = _parsed(repository, current[label])
        title = f"{cloud}/{schema}: {label} against the reference ({comparison.reference_label})"
        deviations.append(Comparison(title, reference_doc, doc, classify(reference_doc, doc)))
    return RegionView(comparison, list(labelled), deviations)


@dataclass(frozen=True)
class DriftItem:
    fingerprint: str
    change: Change
    acknowledged: bool


def drift_view(repository: Repository, store: IntelligenceStore, spec: TargetSpec, now: datetime) -> list[DriftItem]:
    """Every change between the target's baseline and its current document, with its fingerprint and
    whether it is acknowledged (ignored changes are left out)."""
    comparison = baseline_diff(repository, store, spec.key)
    acked = store.active_acks(now).get(target_id(repository, spec.key), set())
    items = []
    for change in comparison.changes:
        if spec.ignore.matches(change):
            continue
        fp = fingerprint(spec.key, change)
        items.append(DriftItem(fp, change, fp in acked))
    return items
