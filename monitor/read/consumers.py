"""The consumers matrix from the database: every configured consumer judged in every region (docs/consumers.md).

The judging is :mod:`monitor.judge.consumers`, and what it judges comes from the query the live side uses
(:class:`monitor.store.consumers.ConsumerStore`: each target's current document and whether its polls fail), so
``consumers``, ``/api/consumers`` and the page say what the metrics say. A consumer is judged in every region
where a target one of its requirements reads is polled (:func:`monitor.judge.consumers.regions_of`).

``as_json`` is the answer of ``consumers --format json`` and ``GET /api/consumers``::

    {"consumers": [{"name", "description", "clouds": [...],
                    "requirements": [{"id", "cloud", "schema", "check", "description"}],
                    "regions": [{"region", "clouds": [...], "compatible": true | false | null,
                                 "broken": [{"requirement", "reason"}], "unknown": [{"requirement", "reason"}]}]}]}

``compatible`` is null while unknown (a document missing, a target failing, none polled in the region);
``requirement`` is the requirement's id.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.domain import ABSENT, TargetKey
from monitor.judge.consumers import Consumer, Observed, RegionVerdict, Verdict, evaluate, regions_of, value_at
from monitor.store.consumers import ConsumerStore


@dataclass(frozen=True)
class ConsumerView:
    """One consumer and its verdict in each region (sorted by region)."""

    consumer: Consumer
    regions: tuple[RegionVerdict, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.consumer.name,
            "description": self.consumer.description,
            "clouds": list(self.consumer.clouds),
            "requirements": [
                {"id": r.id, "cloud": r.cloud, "schema": r.schema, "check": r.check, "description": r.describe()}
                for r in self.consumer.requirements
            ],
            "regions": [_region_json(verdict) for verdict in self.regions],
        }


@dataclass(frozen=True)
class ConsumersMatrix:
    """Consumers by regions, in the configuration's order of consumers."""

    consumers: tuple[ConsumerView, ...]

    @property
    def regions(self) -> list[str]:
        """Every region any consumer is judged in, sorted."""
        return sorted({v.region for view in self.consumers for v in view.regions})

    @property
    def broken(self) -> list[RegionVerdict]:
        return [v for view in self.consumers for v in view.regions if v.compatible is False]

    @property
    def unknown(self) -> list[RegionVerdict]:
        return [v for view in self.consumers for v in view.regions if v.compatible is None]

    def as_json(self) -> dict[str, Any]:
        return {"consumers": [view.as_json() for view in self.consumers]}


@dataclass(frozen=True)
class Evidence:
    """What a requirement was judged on in one region: the target, its document, and the value at the anchor."""

    verdict: Verdict
    value: Any  # ABSENT: nothing at the anchor (or no document)

    @property
    def target(self) -> TargetKey:
        return self.verdict.target

    @property
    def anchor(self) -> str:
        return self.verdict.requirement.anchor


def consumer_matrix(contracts: Sequence[Consumer], keys: Collection[TargetKey], store: ConsumerStore,
           parsed: Callable[[str], Mapping[str, Any]]) -> ConsumersMatrix:  # fmt: skip
    """Every consumer of ``contracts`` in each region of the polled targets ``keys``; raises StoreError."""
    groups = {(r.cloud, r.schema) for c in contracts for r in c.requirements}
    current = store.current(groups)
    observed = {
        key: Observed(parsed(now.sha256) if now.sha256 else None, now.sha256, now.failing)
        for key, now in current.items()
        if key in keys
    }
    views = [
        ConsumerView(consumer, tuple(evaluate(consumer, region, observed) for region in regions_of(consumer, observed)))
        for consumer in contracts
    ]
    return ConsumersMatrix(tuple(views))


def select_consumers(found: ConsumersMatrix, consumer: str | None = None, region: str | None = None) -> ConsumersMatrix:
    """Only ``consumer`` and only ``region`` (None: all); raises LookupError naming what exists."""
    views = found.consumers
    if consumer is not None:
        views = tuple(v for v in views if v.consumer.name == consumer)
        if not views:
            names = ", ".join(v.consumer.name for v in found.consumers) or "none configured"
            raise LookupError(f"no consumer {consumer[:100]!r} (consumers: {names})")
    if region is not None:
        regions = sorted({v.region for view in views for v in view.regions})
        if region not in regions:
            raise LookupError(f"no consumer is judged in region {region[:100]!r} (regions: {', '.join(regions)})")
        views = tuple(ConsumerView(v.consumer, tuple(r for r in v.regions if r.region == region)) for v in views)
    return ConsumersMatrix(views)


def evidence(verdict: RegionVerdict, parsed: Callable[[str], Mapping[str, Any]]) -> list[Evidence]:
    """For each requirement of a (consumer, region), the value it was judged on (its document's, at the anchor)."""
    found = []
    for item in verdict.verdicts:
        value = value_at(parsed(item.sha256), item.requirement.anchor) if item.sha256 else ABSENT
        found.append(Evidence(item, value))
    return found


def _region_json(verdict: RegionVerdict) -> dict[str, Any]:
    return {
        "region": verdict.region,
        "clouds": list(verdict.clouds),
        "compatible": verdict.compatible,
        "broken": [{"requirement": v.requirement.id, "reason": v.reason} for v in verdict.broken],
        "unknown": [{"requirement": v.requirement.id, "reason": v.reason} for v in verdict.unknown],
    }
