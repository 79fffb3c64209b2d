"""One poll of one target: fetch → validate → compare → store → metrics. Returns a PollResult.

The scheduler only calls :meth:`PollService.poll`; ``check`` calls it once per target. The service keeps
each target's comparison base (its current snapshot) in memory, restored from the database at start,
and advances it only after the database has accepted the new snapshot — so a database outage never
loses a change: the next successful write compares against the last stored document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.auth.credentials import AuthError
from monitor.auth.manager import AuthManager
from monitor.canonical import DocumentError, canonical_json, count_properties, document_sha256, parse_document
from monitor.config import TargetSpec
from monitor.diffing import classify
from monitor.domain import FailureReason, PollResult, Severity, TargetKey
from monitor.fetching import Fetcher, FetchError
from monitor.intelligence import Intelligence
from monitor.metrics import Metrics
from monitor.store.repository import Repository, SnapshotConflictError, StoredDocument, StoreError, TargetState, utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Base:
    """A target's comparison base: its latest stored snapshot (None before the first success)."""

    target_id: int
    snapshot_id: int | None = None
    sha256: str | None = None
    document: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Read:
    """A fetched body that parsed and looks like a schema."""

    document: dict[str, Any]  # canonical form
    stored: StoredDocument


def _digest(body: bytes) -> _Read | DocumentError:
    """Parse, validate, canonicalise and hash a body (pure; runs in a worker thread)."""
    try:
        document = parse_document(body)
    except DocumentError as exc:
        return exc
    canonical = canonical_json(document)
    stored = StoredDocument(document_sha256(canonical), canonical, len(body), count_properties(document))
    return _Read(json.loads(canonical), stored)


class PollService:
    """Polls targets; safe to call concurrently for different targets, serialised per target."""

    def __init__(
        self,
        repository: Repository,
        fetcher: Fetcher,
        metrics: Metrics,
        *,
        max_concurrency: int = 100,
        intelligence: Intelligence | None = None,
        auth: AuthManager | None = None,
    ) -> None:
        self._repository = repository
        self._fetcher = fetcher
        self._metrics = metrics
        self.auth = auth or AuthManager(metrics)
        self.intelligence = intelligence
        self._slots = asyncio.Semaphore(max_concurrency)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store")
        self._bases: dict[TargetKey, _Base] = {}
        self._active: set[TargetKey] = set()  # the targets polled now; metrics exist for these only
        self._urls: dict[TargetKey, str] = {}
        self._locks: dict[TargetKey, asyncio.Lock] = {}
        self.in_flight: set[asyncio.Task[Any]] = set()

    # --- start-up ----------------------------------------------------------------------------

    def prepare(self, specs: Sequence[TargetSpec]) -> None:
        """Register targets in the database and restore gauges and comparison bases; raises StoreError."""
        self.retarget(specs)

    def retarget(self, specs: Sequence[TargetSpec]) -> None:
        """Poll exactly ``specs`` from now on; raises StoreError.

        New targets are registered and restored from the database; targets no longer listed (a region
        that left the catalog) lose their metric series and credentials. Their stored history stays.
        """
        wanted = {spec.key for spec in specs}
        removed = self._active - wanted
        # new or returning targets are restored from the database; a moved endpoint only updates its URL
        added = [spec for spec in specs if spec.key not in self._active or self._urls.get(spec.key) != spec.url]
        self._metrics.register_targets(spec.key for spec in specs)
        for spec in specs:
            self._metrics.set_interval(spec.key, spec.interval)
        try:
            self._register(added)
            self._repository.retire_targets(removed)  # read views leave departed regions out
            self._active = wanted
            if self.intelligence is not None:
                bases = {key: (self._bases[key].target_id, self._bases[key].sha256) for key in wanted}
                self.intelligence.retarget(specs, bases, utcnow())
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            raise
        self._metrics.db_result(True)
        self._metrics.remove_targets(removed)
        still_polled = {(key.cloud, key.region) for key in wanted}
        for cloud, region in {(key.cloud, key.region) for key in removed} - still_polled:
            self.auth.forget(cloud, region)

    def _register(self, specs: Sequence[TargetSpec]) -> None:
        """Insert or update the targets' rows; restore those not polled until now."""
        if not specs:
            return
        ids = self._repository.ensure_targets((spec.key, spec.url) for spec in specs)
        returning = [key for key in ids if key not in self._active]
        states = self._repository.load_states([ids[key] for key in returning])
        for key in returning:
            self._restore(key, states[ids[key]])
            self._locks.setdefault(key, asyncio.Lock())
        self._urls.update((spec.key, spec.url) for spec in specs)

    def _restore(self, key: TargetKey, state: TargetState) -> None:
        base = _Base(state.target_id)
        if state.document is not None:
            base = _Base(state.target_id, state.snapshot_id, state.document.sha256, json.loads(state.document.body))
            self._metrics.set_document(key, state.document.size, state.document.properties)
        self._bases[key] = base
        self._metrics.restore(
            key,
            last_poll_at=state.last_poll_at,
            last_poll_ok=state.last_poll_ok,
            last_success_at=state.last_success_at,
            last_change_at=state.last_change_at,
        )

    def close(self) -> None:
        """Wait for running store work, then release the worker threads."""
        self.auth.close()
        self._executor.shutdown(wait=True)

    # --- the tick ----------------------------------------------------------------------------

    async def poll(self, spec: TargetSpec) -> PollResult:
        """Poll one target once; never raises for a failed poll (the result says why)."""
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            async with self._locks[spec.key]:
                return await self._poll_locked(spec)
        finally:
            if task is not None:
                self.in_flight.discard(task)

    async def _poll_locked(self, spec: TargetSpec) -> PollResult:
        started, t0 = utcnow(), time.monotonic()
        read = await self._read(spec, started, t0)
        if isinstance(read, PollResult):
            return read
        base = self._bases[spec.key]
        if base.document is not None and read.stored.sha256 != base.sha256:
            unconfirmed = await self._confirm(spec, read, started, t0)
            if unconfirmed is not None:
                return unconfirmed
        return await self._in_thread(self._store_read, spec.key, read, started, t0)

    async def _read(self, spec: TargetSpec, started: datetime, t0: float) -> _Read | PollResult:
        """Fetch and validate one document; a failure is stored, counted and returned as a PollResult."""
        credentials = self.auth.for_target(spec)
        if credentials is not None and credentials.renewable:
            # a token first: waiting for the identity service takes no poll slot; the fetch below takes
            # the cached token, or reports the failure (at once: backoff)
            with contextlib.suppress(AuthError):
                await credentials.acquire()
        async with self._slots:
            try:
                body = await self._fetcher.fetch(spec, credentials)
            except FetchError as exc:
                failed = _failure(spec.key, started, t0, exc.reason, str(exc), exc.status)
                return await self._in_thread(self._store_poll, failed)
        digest = await asyncio.get_running_loop().run_in_executor(self._executor, _digest, body)
        if isinstance(digest, DocumentError):
            failed = _failure(spec.key, started, t0, digest.reason, str(digest), 200)
            return await self._in_thread(self._store_poll, failed)
        return digest

    async def _confirm(self, spec: TargetSpec, read: _Read, started: datetime, t0: float) -> PollResult | None:
        """Read a new document again ``confirm_reads - 1`` times, ``confirm_delay`` apart.

        Returns None when every read agreed (the change is real); else the poll's result: the failure of
        a confirming read, or an ``unconfirmed`` success that records nothing. Either way the comparison
        base stays where it was, so an error page or a single odd read never becomes a change.
        """
        for _ in range(spec.confirm_reads - 1):
            await asyncio.sleep(spec.confirm_delay)
            again = await self._read(spec, started, t0)
            if isinstance(again, PollResult):
                return again
            if again.stored.sha256 != read.stored.sha256:
                result = PollResult(spec.key, started, time.monotonic() - t0, ok=True, http_status=200,
                                    document_sha=self._bases[spec.key].sha256, unconfirmed=True)  # fmt: skip
                return await self._in_thread(self._store_poll, result)
        return None

    async def _in_thread(self, fn: Any, *args: Any) -> PollResult:
        """Run the store step (``fn``) and count its result in a worker thread.

        Cancelling the poll does not interrupt this step: it is short and atomic, so it is allowed to
        land — and be counted and logged — before the cancellation goes on. Otherwise a change could be
        stored without ever being counted, and would never alert.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, lambda: self._finish(fn(*args)))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    def _finish(self, result: PollResult) -> PollResult:
        if result.target in self._active:  # a poll that outlived its target's removal is stored, not exported
            self._metrics.observe_poll(result)
        _log_result(result)
        return result

    def _store_poll(self, result: PollResult) -> PollResult:
        """Store a poll that records no snapshot (a failure, or an unconfirmed read)."""
        try:
            self._repository.record_poll(self._bases[result.target].target_id, result)
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            log.error("%s: could not store the poll outcome: %s", result.target, exc)
        else:
            self._metrics.db_result(True)
        return result

    def _store_read(self, key: TargetKey, read: _Read, started: datetime, t0: float) -> PollResult:
        """Compare a validated document with the base and store it (runs in a worker thread)."""
        try:
            result = self._record(key, read.document, read.stored, started, t0)
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            return _failure(key, started, t0, FailureReason.DB, str(exc), 200)
        self._metrics.db_result(True)
        if key in self._active:
            self._metrics.set_document(key, read.stored.size, read.stored.properties)
        self._after_success(key, read.stored.sha256, result)
        return result

    def _after_success(self, key: TargetKey, sha: str, result: PollResult) -> None:
        if self.intelligence is None:
            return
        try:
            self.intelligence.after_success(key, sha, result.changes, result.started_at, result.first_snapshot)
        except StoreError as exc:  # the snapshot is stored; derived state catches up at the next refresh
            self._metrics.db_result(False, exc.operation)
            log.error("%s: could not update drift/rollout state: %s", key, exc)

    def _record(
        self, key: TargetKey, document: dict[str, Any], stored: StoredDocument, started: datetime, t0: float
    ) -> PollResult:
        """Store the poll against the comparison base; reload the base once if another writer moved it."""
        try:
            return self._record_against_base(key, document, stored, started, t0)
        except SnapshotConflictError:
            self._reload_base(key)
            return self._record_against_base(key, document, stored, started, t0)

    def _record_against_base(
        self, key: TargetKey, document: dict[str, Any], stored: StoredDocument, started: datetime, t0: float
    ) -> PollResult:
        base = self._bases[key]
        result = PollResult(key, started, time.monotonic() - t0, ok=True, http_status=200, document_sha=stored.sha256)
        if base.sha256 == stored.sha256 and base.snapshot_id is not None:
            self._repository.record_unchanged(base.target_id, base.snapshot_id, result)
            return result
        if base.document is None:
            result = replace(result, first_snapshot=True)
        else:
            changes = classify(base.document, document)
            if self.intelligence is not None:
                changes = self.intelligence.flag(key, changes, started)
            result = replace(result, changes=tuple(changes))
        snapshot_id = self._repository.record_snapshot(base.target_id, base.snapshot_id, stored, result.changes, result)
        self._bases[key] = _Base(base.target_id, snapshot_id, stored.sha256, document)
        return result

    def _reload_base(self, key: TargetKey) -> None:
        target_id = self._bases[key].target_id
        self._restore(key, self._repository.load_states([target_id])[target_id])

    # --- housekeeping ------------------------------------------------------------------------

    async def prune(self, retention_seconds: float) -> int:
        """Delete poll outcome rows older than the retention; returns how many (0 on a db error)."""
        cutoff = utcnow() - timedelta(seconds=retention_seconds)
        loop = asyncio.get_running_loop()
        try:
            removed: int = await loop.run_in_executor(self._executor, self._repository.prune_polls, cutoff)
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            log.error("pruning poll outcomes failed: %s", exc)
            return 0
        self._metrics.db_result(True)
        return removed

    async def refresh_intelligence(self) -> None:
        """Re-read acknowledgements, baselines and windows (e.g. from ``ack`` in another process)."""
        if self.intelligence is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.intelligence.refresh, utcnow())
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            log.error("refreshing drift state failed: %s", exc)

    def count_internal_error(self, key: TargetKey) -> PollResult:
        """Count a poll that ended in an unexpected exception (a bug) as an ``internal`` failure."""
        result = _failure(key, utcnow(), time.monotonic(), FailureReason.INTERNAL, "internal error (see log)", None)
        self._metrics.observe_poll(result)
        return result


def _failure(
    key: TargetKey, started: datetime, t0: float, reason: FailureReason, message: str, status: int | None
) -> PollResult:
    return PollResult(
        key, started, time.monotonic() - t0, ok=False, reason=reason, http_status=status, error=message[:500]
    )


def _log_result(result: PollResult) -> None:
    if result.unconfirmed:
        log.info("%s: a different document was read but not confirmed: nothing recorded", result.target)
    elif not result.ok:
        log.warning("%s: poll failed (%s): %s", result.target, result.reason, result.error)
    elif result.first_snapshot:
        log.info("%s: first snapshot %s", result.target, (result.document_sha or "")[:12])
    elif result.changes and not result.counted_changes:
        log.info("%s: schema changed: %d ignored or expected change(s)", result.target, len(result.changes))
    elif result.changes:
        worst = Severity.worst(*(c.severity for c in result.counted_changes))
        log.warning(
            "%s: schema changed: %d change(s), worst %s: %s",
            result.target,
            len(result.changes),
            worst.value,
            "; ".join(f"{c.rule} {c.path}" for c in result.changes[:10]),
        )
    else:
        log.debug("%s: unchanged", result.target)
