"""One poll of one target: fetch → validate → compare → store → metrics. Returns a PollResult.

The scheduler only calls :meth:`PollService.poll`; ``check`` calls it once per target. The service keeps
each target's comparison base (its current snapshot) in memory, restored from the database at start,
and advances it only after the database has accepted the new snapshot — so a database outage never
loses a change: the next successful write compares against the last stored document.

What a poll costs depends on what it finds:

* **the same bytes as last time** (the usual case): a SHA-256 of the body, compared in memory; no parse,
  no thread, no row — only its time is marked for the next batch (:mod:`monitor.poll.lastseen`);
* **304 Not Modified** (a server that sent ``ETag`` / ``Last-Modified`` answering a request quoting them,
  :mod:`monitor.poll.conditional`): the same as the above without a body or a hash;
* **different bytes, same canonical document** (reordered keys, whitespace): parsed in a worker thread;
  no row either;
* **bytes another target served just now** (a fleet of regions serving one document, typically on the first
  round): the parsed, canonical form is taken from a small cache of recent digests, not computed again;
* **a different document**: confirmed by reading again, then the snapshot and its changes are written in
  one transaction;
* **a first document** (a new target, typically the whole fleet at the first start): no changes to judge,
  so first snapshots are written in batches — whatever arrives while the previous batch is being written
  goes into the next one, in one transaction (group commit: no waiting, no timer);
* **a failure**: written only when the target's outcome changes (ok → failing, failing → ok, another reason),
  so "when did it start failing, and why" stays in the database while a long outage writes one row; the log
  tells the same changes (:mod:`monitor.poll.outcomes`), the metrics count every failure.

At most ``max_concurrency`` fetches are in flight at once (``polling.max_concurrency``): this service holds
the one limit, so a poll waiting for its turn has not started its deadline yet. The parts of a poll that are
not about one target live beside it: :mod:`~monitor.poll.digest` (body → canonical document, and the digest
cache), :mod:`~monitor.poll.firsts` (the first-snapshot batch writer), :mod:`~monitor.poll.lastseen` (the
batched poll times) and :mod:`~monitor.poll.housekeeping` (flushing them, pruning, refreshing drift state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from monitor.auth.credentials import AuthError
from monitor.auth.manager import AuthManager
from monitor.domain import FailureReason, PollResult, TargetKey, TargetSpec, in_thread, utcnow, worst_first
from monitor.fleet.live import Intelligence
from monitor.judge.kinds import get_kind, version_entries
from monitor.poll.conditional import Conditional
from monitor.poll.digest import DigestCache, Read, ReadFailed, raw_digest
from monitor.poll.fetch import Fetcher, FetchError
from monitor.poll.firsts import First, FirstsWriter
from monitor.poll.housekeeping import Housekeeping
from monitor.poll.lastseen import LastSeen
from monitor.poll.outcomes import PollLog
from monitor.signals.metrics import Metrics
from monitor.store.records import (
    Fence,
    FencedError,
    FirstSnapshot,
    FirstsRecorded,
    SnapshotConflictError,
    SnapshotValidators,
    StoredDocument,
    StoreError,
    TargetState,
)
from monitor.store.repository import Repository

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

Outcome = tuple[bool, FailureReason | None]
"""A poll's outcome as transitions are recorded: (succeeded, failure reason)."""


@dataclass(slots=True)
class _Base:
    """A target's comparison base and poll state (restored from the database, advanced after each write).

    ``raw`` is the SHA-256 of the last body read whose canonical document is ``sha256``: the same bytes
    again need no parsing. ``outcome`` is the last recorded transition (None: never polled).
    """

    target_id: int
    snapshot_id: int | None = None
    sha256: str | None = None
    document: dict[str, Any] | None = None
    raw: bytes | None = None
    outcome: Outcome | None = None
    last_poll_at: datetime | None = None  # as restored (a handover continues the cadence from it)


class _Unconfirmed(Exception):
    """A different document was read, but a confirming read disagreed: nothing is recorded."""


class PollService:
    """Polls targets; safe to call concurrently for different targets, serialised per target.

    ``max_concurrency`` bounds the fetches in flight (waiting for an identity service takes no slot);
    ``conditional`` sends the validators servers offer (``polling.conditional``).
    """

    def __init__(
        self,
        repository: Repository,
        fetcher: Fetcher,
        metrics: Metrics,
        *,
        max_concurrency: int = 100,
        intelligence: Intelligence | None = None,
        auth: AuthManager | None = None,
        conditional: bool = True,
    ) -> None:
        self._repository = repository
        self._fetcher = fetcher
        self._metrics = metrics
        self.auth = auth or AuthManager(metrics)
        self.intelligence = intelligence
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store")
        self._bases: dict[TargetKey, _Base] = {}
        self._active: set[TargetKey] = set()  # the targets polled now; metrics exist for these only
        self._specs: dict[TargetKey, TargetSpec] = {}  # as last registered: URL, kind (it judges the changes)
        self._locks: dict[TargetKey, asyncio.Lock] = {}
        self._seen = LastSeen()
        self._conditional = Conditional(enabled=conditional)
        self._log = PollLog()
        self._digests = DigestCache(self._executor)
        self._firsts = FirstsWriter(self._executor, self._record_firsts, self._finish)
        self.housekeeping = Housekeeping(repository, metrics, self._executor, self._seen, self._flush_fence,
                                         intelligence)  # fmt: skip
        self.replica: str | None = None  # with replicas: this one's name; every write is fenced by its leases
        self._epochs: dict[TargetKey, int] = {}

    # --- start-up ----------------------------------------------------------------------------

    def prepare(self, specs: Sequence[TargetSpec]) -> None:
        """Register targets in the database and restore gauges and comparison bases; raises StoreError."""
        self.retarget(specs)

    def retarget(
        self,
        specs: Sequence[TargetSpec],
        epochs: Mapping[TargetKey, int] | None = None,
        fleet: Sequence[TargetSpec] | None = None,
    ) -> None:
        """Poll exactly ``specs`` from now on; raises StoreError.

        New targets are registered and restored from the database; targets no longer listed (a region
        that left the catalog, a target handed to another replica) lose their metric series and
        credentials. Their stored history stays. With replicas, ``epochs`` are the leases this one holds
        (every write for a target is fenced by its epoch) and ``fleet`` is every target of the config.
        """
        self._epochs = dict(epochs or {})
        wanted = {spec.key for spec in specs}
        removed = self._active - wanted
        # new or returning targets are restored from the database; a moved endpoint only updates its URL
        added = [spec for spec in specs if spec.key not in self._active or self._url(spec.key) != spec.url]
        self._metrics.register_targets(spec.key for spec in specs)
        for spec in specs:
            self._metrics.set_interval(spec.key, spec.interval)
            self._metrics.set_kind(spec.key, spec.kind, spec.service)
        try:
            self._register(added)
            if fleet is None:  # with replicas, a target handed over is still a target
                self._repository.retire_targets(removed)  # read views leave departed regions out
            self._active = wanted
            if self.intelligence is not None:
                bases = {key: (self._bases[key].target_id, self._bases[key].sha256) for key in wanted}
                self.intelligence.retarget(specs, bases, utcnow(), fleet)
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            raise
        self._metrics.db_result(True)
        self._metrics.remove_targets(removed)
        self._log.forget(removed)
        still_polled = {(key.cloud, key.region) for key in wanted}
        for cloud, region in {(key.cloud, key.region) for key in removed} - still_polled:
            self.auth.forget(cloud, region)

    def _register(self, specs: Sequence[TargetSpec]) -> None:
        """Insert or update the targets' rows; restore those not polled until now."""
        if not specs:
            return
        ids = self._repository.ensure_targets((spec.key, spec.url) for spec in specs)
        self._specs.update((spec.key, spec) for spec in specs)
        returning = [key for key in ids if key not in self._active]
        states = self._repository.load_states([ids[key] for key in returning])
        parsed: dict[str, dict[str, Any]] = {}  # targets serving one document share its parsed form
        for key in returning:
            self._restore(key, states[ids[key]], parsed)
            self._locks.setdefault(key, asyncio.Lock())

    def _url(self, key: TargetKey) -> str | None:
        spec = self._specs.get(key)
        return spec.url if spec is not None else None

    def _restore(self, key: TargetKey, state: TargetState, parsed: dict[str, dict[str, Any]]) -> None:
        base = _Base(state.target_id, last_poll_at=state.last_poll_at)
        if state.last_poll_ok is not None:
            base.outcome = (state.last_poll_ok, state.last_reason)
        if state.document is not None:
            sha = state.document.sha256
            if sha not in parsed:
                parsed[sha] = json.loads(state.document.body)
            base.snapshot_id, base.sha256, base.document = state.snapshot_id, sha, parsed[sha]
            self._describe(key, parsed[sha], state.document)
        self._bases[key] = base
        self._conditional.restore(key, self._specs[key].url, base.sha256, state.validators)
        self._log.restore(key, failing=state.last_poll_ok is False)
        self._metrics.restore(
            key,
            last_poll_at=state.last_poll_at,
            last_poll_ok=state.last_poll_ok,
            last_success_at=state.last_success_at,
            last_change_at=state.last_change_at,
        )

    def last_poll(self, key: TargetKey) -> datetime | None:
        """When ``key`` was last polled, by this process or (restored) by any before it; None: never."""
        base = self._bases.get(key)
        return base.last_poll_at if base is not None else None

    def close(self) -> None:
        """Write the batched poll times, wait for running store work, then release the worker threads."""
        self.auth.close()
        self.housekeeping.flush_now()
        self._executor.shutdown(wait=True)

    # --- the tick ----------------------------------------------------------------------------

    async def poll(self, spec: TargetSpec) -> PollResult:
        """Poll one target once; never raises for a failed poll (the result says why).

        Cancelled (a stop past its grace period), a store step already under way lands first — and is counted
        and logged — then the cancellation goes on; nothing is half-written.
        """
        async with self._locks[spec.key]:
            result = await self._poll(spec, utcnow(), time.monotonic())
            self._settle_validators(spec, result)
            return result

    async def _poll(self, spec: TargetSpec, started: datetime, t0: float) -> PollResult:
        base = self._bases[spec.key]
        base.last_poll_at = started
        try:
            read = await self._read(spec, base)
            if base.document is not None and read.sha256 != base.sha256:
                await self._confirm(spec, read)
        except ReadFailed as failure:
            failed = _result(spec.key, started, t0, ok=False, reason=failure.reason, status=failure.status,
                             error=str(failure))  # fmt: skip
            return await self._shielded(self._store_outcome, failed)
        except _Unconfirmed:
            unconfirmed = _result(spec.key, started, t0, ok=True, sha=base.sha256, unconfirmed=True)
            return await self._shielded(self._store_outcome, unconfirmed)
        if base.snapshot_id is None:
            return await self._firsts.write(First(spec.key, read, started, t0))
        if read.sha256 != base.sha256:
            return await self._shielded(self._store_read, spec.key, read, started, t0)
        base.raw = read.raw
        unchanged = _result(spec.key, started, t0, ok=True, sha=read.sha256)
        if base.outcome != (True, None):  # recovering from a failure: a transition to write
            return await self._shielded(self._store_outcome, unchanged)
        self._seen.mark(base.target_id, started, ok=True, snapshot_id=base.snapshot_id)  # no row, no thread
        return self._finish(unchanged)

    async def _read(self, spec: TargetSpec, base: _Base) -> Read:
        """Fetch and validate one document; the same bytes as the base's are not parsed again. Raises ReadFailed."""
        credentials = self.auth.for_target(spec)
        if credentials is not None and credentials.renewable:
            # a token first: waiting for the identity service takes no poll slot; the fetch below takes
            # the cached token, or reports the failure (at once: backoff)
            with contextlib.suppress(AuthError):
                await credentials.acquire()
        conditional = self._conditional.headers(spec.key, spec.url, base.sha256)
        async with self._slots:
            try:
                fetched = await self._fetcher.fetch(spec, credentials, conditional)
            except FetchError as exc:
                raise ReadFailed(exc.reason, str(exc), exc.status) from None
        if self._conditional.heard(spec.key, fetched.status, fetched.headers):
            return _not_modified(base)
        raw = raw_digest(fetched)
        if raw == base.raw and base.sha256 is not None:
            return Read(raw, base.sha256)
        return await self._digests.read(raw, fetched, spec)

    def _settle_validators(self, spec: TargetSpec, result: PollResult) -> None:
        """Tell the validators how the poll ended; those it proves anew are written with the next batch."""
        base = self._bases[spec.key]
        became_base = result.ok and not result.unconfirmed and result.document_sha == base.sha256
        proven = self._conditional.settle(spec.key, spec.url, base.sha256 if became_base else None)
        if proven is not None and base.snapshot_id is not None:
            self._seen.keep_validators(SnapshotValidators(base.target_id, base.snapshot_id, proven))

    async def _confirm(self, spec: TargetSpec, read: Read) -> None:
        """Read a new document again ``confirm_reads - 1`` times, ``confirm_delay`` apart.

        Returns when every read agreed (the change is real); raises ReadFailed when a confirming read fails
        and _Unconfirmed when one read another document. Either way the comparison base stays where it was,
        so an error page or a single odd read never becomes a change.
        """
        for _ in range(spec.confirm_reads - 1):
            await asyncio.sleep(spec.confirm_delay)
            again = await self._read(spec, self._bases[spec.key])
            if again.sha256 != read.sha256:
                raise _Unconfirmed

    async def _shielded(self, fn: Callable[P, PollResult], *args: P.args, **kwargs: P.kwargs) -> PollResult:
        """Run a store step (``fn``) in a worker thread, then count and log its result.

        Cancelling the poll does not interrupt this step: it is short and atomic, so it is allowed to
        land — and be counted and logged — before the cancellation goes on. Otherwise a change could be
        stored without ever being counted, and would never alert.
        """
        future = asyncio.ensure_future(in_thread(self._executor, fn, *args, **kwargs))
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            if not future.cancelled() and future.exception() is None:
                self._finish(future.result())
            raise
        return self._finish(result)

    def _record_firsts(self, batch: Sequence[First]) -> list[PollResult]:
        """Store a batch of first snapshots (a worker thread); returns each poll's result, in order."""
        firsts = [self._first_snapshot(first) for first in batch]
        fence = None
        if self.replica is not None:
            epochs = {
                stored.target_id: self._epochs.get(first.key, 0) for first, stored in zip(batch, firsts, strict=True)
            }
            fence = Fence(self.replica, epochs=epochs)
        try:
            recorded = self._repository.record_firsts(firsts, fence)
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            return [_result(b.key, b.started, b.t0, ok=False, reason=FailureReason.DB, status=200, error=str(exc))
                    for b in batch]  # fmt: skip
        self._metrics.db_result(True)
        return [self._first_recorded(first, stored, recorded) for first, stored in zip(batch, firsts, strict=True)]

    def _first_recorded(self, first: First, stored: FirstSnapshot, recorded: FirstsRecorded) -> PollResult:
        """After the batch: advance the base and export — or, for a target another writer got to first or
        whose lease is gone, what the one-by-one path does."""
        key, read = first.key, first.read
        if stored.target_id in recorded.fenced:
            self._lose(key)
            return _result(key, first.started, first.t0, ok=True, sha=read.sha256)
        if stored.target_id in recorded.conflicts:  # reload the base and compare
            return self._store_read(key, read, first.started, first.t0)
        snapshot_id = recorded.snapshots[stored.target_id]
        self._bases[key] = _Base(stored.target_id, snapshot_id, read.sha256, read.document, read.raw, (True, None))
        self._seen.mark(stored.target_id, first.started, ok=True, snapshot_id=snapshot_id)  # see _record_against_base
        if key in self._active and read.document is not None:
            self._describe(key, read.document, stored.document)
        self._after_success(key, read.sha256, stored.result)
        return stored.result

    def _first_snapshot(self, first: First) -> FirstSnapshot:
        base = self._bases[first.key]
        assert first.read.stored is not None
        result = _result(first.key, first.started, first.t0, ok=True, sha=first.read.sha256)
        return FirstSnapshot(base.target_id, first.read.stored, replace(result, first_snapshot=True),
                             transition=base.outcome != (True, None))  # fmt: skip

    def _finish(self, result: PollResult) -> PollResult:
        if result.target in self._active:  # a poll that outlived its target's removal is stored, not exported
            self._metrics.observe_poll(result)
        self._log.record(result)
        return result

    def _store_outcome(self, result: PollResult) -> PollResult:
        """A poll that records no snapshot: a transition when its outcome differs from the last one recorded."""
        base = self._bases[result.target]
        outcome: Outcome = (result.ok, result.reason)
        if base.outcome != outcome:
            try:
                self._repository.record_transition(base.target_id, result, self._fence(result.target))
            except FencedError:
                self._lose(result.target)
                return result
            except StoreError as exc:
                self._metrics.db_result(False, exc.operation)
                log.error("%s: could not store the poll outcome: %s", result.target, exc)
                return result
            self._metrics.db_result(True)
            base.outcome = outcome
        seen = None if result.unconfirmed else base.snapshot_id  # an unconfirmed read did not see the snapshot
        self._seen.mark(base.target_id, result.started_at, ok=result.ok, snapshot_id=seen)
        return result

    def _store_read(self, key: TargetKey, read: Read, started: datetime, t0: float) -> PollResult:
        """Compare a validated document with the base and store it (runs in a worker thread)."""
        try:
            result = self._record(key, read, started, t0)
        except FencedError:
            self._lose(key)
            return _result(key, started, t0, ok=True, sha=read.sha256)  # not exported: no longer ours
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            return _result(key, started, t0, ok=False, reason=FailureReason.DB, status=200, error=str(exc))
        self._metrics.db_result(True)
        assert read.stored is not None
        if key in self._active and read.document is not None:
            self._describe(key, read.document, read.stored)
        self._after_success(key, read.sha256, result)
        return result

    def _describe(self, key: TargetKey, document: dict[str, Any], stored: StoredDocument) -> None:
        """Export what the target's current document says: its size and properties, and for a versions
        document the API versions and microversions it advertises."""
        self._metrics.set_document(key, stored.size, stored.properties)
        spec = self._specs.get(key)
        if spec is not None and spec.kind == "versions":
            self._metrics.set_surface(key, spec.service, version_entries(document))

    def _after_success(self, key: TargetKey, sha: str, result: PollResult) -> None:
        if self.intelligence is None:
            return
        try:
            self.intelligence.after_success(key, sha, result.changes, result.started_at, result.first_snapshot)
        except StoreError as exc:  # the snapshot is stored; derived state catches up at the next refresh
            self._metrics.db_result(False, exc.operation)
            log.error("%s: could not update drift/rollout state: %s", key, exc)

    def _record(self, key: TargetKey, read: Read, started: datetime, t0: float) -> PollResult:
        """Store the poll against the comparison base; reload the base once if another writer moved it."""
        try:
            return self._record_against_base(key, read, started, t0)
        except SnapshotConflictError:
            self._reload_base(key)
            return self._record_against_base(key, read, started, t0)

    def _record_against_base(self, key: TargetKey, read: Read, started: datetime, t0: float) -> PollResult:
        base = self._bases[key]
        assert read.document is not None and read.stored is not None
        result = _result(key, started, t0, ok=True, sha=read.sha256)
        if base.sha256 == read.sha256 and base.snapshot_id is not None:  # new bytes, same document
            base.raw = read.raw
            return self._store_outcome(result)
        if base.document is None:
            result = replace(result, first_snapshot=True)
        else:
            # the order every reader lists them in (breaking first): the log line, ``check``
            changes = worst_first(get_kind(self._specs[key].kind).classify(base.document, read.document))
            if self.intelligence is not None:
                changes = self.intelligence.flag(key, changes, started, documents=(base.document, read.document))
            result = replace(result, changes=tuple(changes))
        transition = base.outcome != (True, None)
        expected = self.intelligence.expected_ack(key, result.changes, started) if self.intelligence else None
        # Stored worst last, so that change ids, newest first (the API's pages, the UI's lists), name a poll's
        # breaking changes first even where a page boundary splits the poll.
        snapshot_id = self._repository.record_snapshot(
            base.target_id, base.snapshot_id, read.stored, result.changes[::-1], result, transition=transition,
            fence=self._fence(key), acknowledge=expected,
        )  # fmt: skip
        self._bases[key] = _Base(base.target_id, snapshot_id, read.sha256, read.document, read.raw, (True, None))
        # The snapshot wrote this poll's time; a time marked before it must not overwrite it at the next flush
        # (the database's last success would go back, and the read side call a healthy target stale).
        self._seen.mark(base.target_id, started, ok=True, snapshot_id=snapshot_id)
        return result

    def _fence(self, key: TargetKey) -> Fence | None:
        """The lease a write for ``key`` depends on (None without replicas)."""
        return Fence(self.replica, self._epochs.get(key, 0)) if self.replica is not None else None

    def _flush_fence(self) -> Fence | None:
        """The leases the batched poll times depend on: every target this replica holds (None without replicas)."""
        if self.replica is None:
            return None
        epochs = {self._bases[key].target_id: epoch for key, epoch in self._epochs.items() if key in self._bases}
        return Fence(self.replica, epochs=epochs)

    def _lose(self, key: TargetKey) -> None:
        """Another replica owns ``key`` now (the write was fenced): stop exporting it at once; the next
        coordination tick hands it over properly."""
        log.warning("%s: the lease was lost (another replica owns the target now): nothing written", key)
        self._active.discard(key)
        self._metrics.remove_targets([key])

    def release_all(self) -> None:
        """Stop exporting every target (their leases ran out while the database was unreachable); writes
        nothing. A later :meth:`retarget` restores the targets it gets back from the database."""
        released, self._active, self._epochs = self._active, set(), {}
        self._metrics.remove_targets(released)

    def _reload_base(self, key: TargetKey) -> None:
        target_id = self._bases[key].target_id
        self._restore(key, self._repository.load_states([target_id])[target_id], {})

    # --- housekeeping (:mod:`monitor.poll.housekeeping`) ------------------------------------------

    async def flush(self) -> None:
        """Write the poll times batched since the last flush (see :meth:`Housekeeping.flush`)."""
        await self.housekeeping.flush()

    async def prune(self, retention_seconds: float) -> int:
        """Delete outcome transitions past the retention (see :meth:`Housekeeping.prune`); returns how many."""
        return await self.housekeeping.prune(retention_seconds)

    async def refresh_intelligence(self) -> None:
        """Re-read acknowledgements, baselines and windows (see :meth:`Housekeeping.refresh_intelligence`)."""
        await self.housekeeping.refresh_intelligence()

    def count_internal_error(self, key: TargetKey) -> PollResult:
        """Count a poll that ended in an unexpected exception (a bug) as an ``internal`` failure."""
        result = _result(key, utcnow(), time.monotonic(), ok=False, reason=FailureReason.INTERNAL, status=None,
                         error="internal error (see log)")  # fmt: skip
        self._metrics.observe_poll(result)
        return result


def _not_modified(base: _Base) -> Read:
    """A 304 Not Modified: the base's document, with no body to read or hash; raises ReadFailed without one."""
    if base.sha256 is None:
        raise ReadFailed(FailureReason.HTTP_OTHER, "HTTP 304 Not Modified with no stored document to compare", 304)
    return Read(base.raw or b"", base.sha256)


def _result(
    key: TargetKey,
    started: datetime,
    t0: float,
    *,
    ok: bool,
    reason: FailureReason | None = None,
    status: int | None = 200,
    error: str | None = None,
    sha: str | None = None,
    unconfirmed: bool = False,
) -> PollResult:
    """The one way a poll's result is made: its duration is taken now."""
    return PollResult(
        key, started, time.monotonic() - t0, ok=ok, reason=reason, http_status=status,
        error=error[:500] if error else None, document_sha=sha, unconfirmed=unconfirmed,
    )  # fmt: skip
