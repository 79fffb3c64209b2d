"""Consumer contracts, live: every (consumer, region)'s compatibility as the polls go, exported as metrics.

The judging is :mod:`monitor.judge.consumers` (the read side calls the same functions on the same query); this
module keeps what it is judged on — the current document of every target a requirement reads, and whether its
polls fail — and re-judges a (consumer, region) when one of its documents moves:

* after each successful poll (:meth:`ConsumerState.observe`): the target's document, if it is a new one (read
  from the database once per document), and every consumer reading that (cloud, schema) in that region;
* at every refresh (:meth:`ConsumerState.reload`, every ``changes.drift_refresh``): every target from the
  database — the regions other replicas poll, and the targets whose polls started failing (a failure is
  recorded as an outcome transition; the consumers reading it turn unknown at the next refresh).

``schemadrift_consumer_compatible{consumer,region}`` (1/0, absent while unknown) and
``schemadrift_consumer_requirement_met{consumer,region,requirement}`` are exported by the leader alone, like the
(cloud, schema) series: with several replicas every replica judges, one exports. A (consumer, region) turning
broken is logged as a warning naming the requirements and why, turning compatible again as info.

**Marks**: :meth:`ConsumerState.mark` puts on a change the requirements it breaks (before it is stored, so the
mark is written with it); :func:`log_breaks` says so in the log line of the change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from monitor.domain import Change, TargetKey
from monitor.judge.consumers import Consumer, Observed, RegionVerdict, evaluate, mark_breaks, regions_of
from monitor.signals.metrics import Metrics
from monitor.store.records import TargetNow

log = logging.getLogger(__name__)
Pair = tuple[str, str]  # (consumer, region)


class Source(Protocol):
    """Where the state comes from (:class:`monitor.store.consumers.ConsumerStore`); raises StoreError."""

    def current(self, groups: Collection[tuple[str, str]]) -> dict[TargetKey, TargetNow]: ...
    def bodies(self, shas: Collection[str]) -> dict[str, str]: ...


class ConsumerState:
    """The consumers' compatibility per region, kept current; not thread-safe (the caller holds its lock)."""

    def __init__(self, consumers: Sequence[Consumer], metrics: Metrics, source: Source, *, export: bool) -> None:
        self._consumers = tuple(consumers)
        self._metrics = metrics
        self._source = source
        self._groups = {(r.cloud, r.schema) for c in consumers for r in c.requirements}
        self._now: dict[TargetKey, Observed] = {}  # every target of the fleet a requirement reads
        self._documents: dict[str, Mapping[str, Any]] = {}  # parsed, for the documents in _now
        self._verdicts: dict[Pair, RegionVerdict] = {}
        self.exports = export

    @property
    def consumers(self) -> tuple[Consumer, ...]:
        return self._consumers

    def retarget(self, keys: Iterable[TargetKey]) -> None:
        """Judge over these targets from now on (the fleet's: with replicas, every replica's); the documents of
        new ones follow at the next :meth:`reload`."""
        wanted = {key for key in keys if (key.cloud, key.schema) in self._groups}
        self._now = {key: self._now.get(key, Observed(None)) for key in sorted(wanted, key=str)}
        self._judge_all()

    def reload(self) -> None:
        """Every target's document and poll state from the database, then judge everything; raises StoreError."""
        if not self._consumers:
            return
        current = self._source.current(self._groups)
        shas = {now.sha256 for key, now in current.items() if key in self._now and now.sha256 is not None}
        self._load(shas)
        for key in self._now:
            now = current.get(key, TargetNow(None, None))
            document = self._documents.get(now.sha256) if now.sha256 is not None else None
            self._now[key] = Observed(document, now.sha256, now.failing)
        self._documents = {sha: self._documents[sha] for sha in shas if sha in self._documents}
        self._judge_all()

    def observe(self, key: TargetKey, sha: str) -> None:
        """A successful poll of ``key`` served ``sha``: re-judge the consumers reading it in its region."""
        seen = self._now.get(key)
        if seen is None or (seen.sha256 == sha and seen.failing is None and seen.document is not None):
            return
        self._load({sha})
        self._now[key] = Observed(self._documents.get(sha), sha, None)
        for consumer in self._consumers:
            if consumer.on(key.cloud, key.schema):
                self._judge(consumer, key.region)

    def mark(self, key: TargetKey, old: Mapping[str, Any], new: Mapping[str, Any],
             changes: Sequence[Change]) -> list[Change]:  # fmt: skip
        """``changes`` of ``key`` (old → new document) with the requirements each breaks."""
        return mark_breaks(self._consumers, key, old, new, changes) if self._consumers else list(changes)

    def set_export(self, export: bool) -> None:
        """This replica exports the consumer series (the leader) or stops exporting them."""
        if export == self.exports:
            return
        self.exports = export
        for verdict in self._verdicts.values():
            if export:
                self._export(verdict)
            else:
                self._unexport(verdict)

    def verdicts(self) -> list[RegionVerdict]:
        """Every (consumer, region) as judged now, by consumer (config order) and region."""
        order = {consumer.name: index for index, consumer in enumerate(self._consumers)}
        return sorted(self._verdicts.values(), key=lambda v: (order[v.consumer], v.region))

    # --- judging and exporting -----------------------------------------------------------------------------

    def _load(self, shas: Collection[str]) -> None:
        missing = [sha for sha in shas if sha not in self._documents]
        for sha, body in self._source.bodies(missing).items():
            self._documents[sha] = json.loads(body)

    def _judge_all(self) -> None:
        wanted = {(c.name, region): c for c in self._consumers for region in regions_of(c, self._now)}
        for pair in set(self._verdicts) - set(wanted):
            gone = self._verdicts.pop(pair)
            if self.exports:
                self._unexport(gone)
        for (_, region), consumer in wanted.items():
            self._judge(consumer, region)

    def _judge(self, consumer: Consumer, region: str) -> None:
        verdict = evaluate(consumer, region, self._now)
        before = self._verdicts.get((consumer.name, region))
        self._verdicts[(consumer.name, region)] = verdict
        if before == verdict:
            return
        if self.exports:
            self._export(verdict)
            _log_turn(before, verdict)

    def _export(self, verdict: RegionVerdict) -> None:
        met = {v.requirement.id: v.met for v in verdict.verdicts}
        self._metrics.set_consumer(verdict.consumer, verdict.region, verdict.compatible, met)

    def _unexport(self, verdict: RegionVerdict) -> None:
        ids = [v.requirement.id for v in verdict.verdicts]
        self._metrics.remove_consumer(verdict.consumer, verdict.region, ids)


def _log_turn(before: RegionVerdict | None, after: RegionVerdict) -> None:
    """A consumer turning broken (or broken otherwise) is a warning; turning compatible again, info."""
    was = before.compatible if before is not None else None
    if after.compatible is False and (was is not False or before is None or before.broken != after.broken):
        why = "; ".join(f"{v.requirement.describe()}: {v.reason}" for v in after.broken)
        log.warning("consumer %s is broken in %s: %s", after.consumer, after.region, why)
    elif after.compatible is True and was is False:
        log.info("consumer %s is compatible again in %s", after.consumer, after.region)


def log_breaks(key: TargetKey, changes: Sequence[Change]) -> None:
    """The log line of each change that breaks a consumer: which, where, and why."""
    for change in changes:
        for mark in change.breaks:
            log.warning("%s: %s %s breaks consumer %s in %s: %s: %s", key, change.rule, change.path, mark.consumer,
                        key.region, mark.description, mark.reason)  # fmt: skip
