"""The poll service's store work apart from polls: the batched poll times, pruning, re-reading drift state.

The scheduler runs these periodically (:mod:`monitor.poll.scheduler`) and the daemon flushes once more at
its stop. Each runs on the service's store threads, counts its database result in the metrics and logs a
failure: none raises :class:`~monitor.store.records.StoreError`, so a database outage costs a log line and a
metric, and the next run catches up (the poll times are kept in memory until a flush succeeds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta

from monitor.domain import in_thread, utcnow
from monitor.fleet.live import Intelligence
from monitor.poll.lastseen import LastSeen
from monitor.signals.metrics import Metrics
from monitor.store.records import Fence, StoreError
from monitor.store.repository import Repository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Housekeeping:
    """Periodic store work for one :class:`~monitor.poll.service.PollService` (which builds it).

    ``fence`` gives the leases the batched poll times depend on (None without replicas).
    """

    repository: Repository
    metrics: Metrics
    executor: Executor
    seen: LastSeen
    fence: Callable[[], Fence | None]
    intelligence: Intelligence | None = None

    async def flush(self) -> None:
        """Write the poll times batched since the last flush (one transaction); kept for later on failure."""
        await in_thread(self.executor, self.flush_now)

    def flush_now(self) -> None:
        """:meth:`flush`, blocking (the caller's thread); the changed validators go in the same transaction."""
        seen, validators = self.seen.take(), self.seen.take_validators()
        if not seen and not validators:
            return
        try:
            self.repository.flush_seen(seen, self.fence(), validators)
        except StoreError as exc:
            self.seen.give_back(seen)
            self.seen.give_back_validators(validators)
            self.metrics.db_result(False, exc.operation)
            log.error("could not store the times of %d poll(s) (kept for the next try): %s", len(seen), exc)
            return
        self.metrics.db_result(True)

    async def prune(self, retention_seconds: float) -> int:
        """Delete outcome transitions older than the retention (each target keeps its latest); returns how many."""
        cutoff = utcnow() - timedelta(seconds=retention_seconds)
        try:
            removed = await in_thread(self.executor, self.repository.prune_transitions, cutoff)
        except StoreError as exc:
            self.metrics.db_result(False, exc.operation)
            log.error("pruning poll transitions failed: %s", exc)
            return 0
        self.metrics.db_result(True)
        return removed

    async def refresh_intelligence(self) -> None:
        """Re-read acknowledgements, baselines and windows (e.g. from ``ack`` in another process)."""
        if self.intelligence is None:
            return
        try:
            await in_thread(self.executor, self.intelligence.refresh, utcnow())
        except StoreError as exc:
            self.metrics.db_result(False, exc.operation)
            log.error("refreshing drift state failed: %s", exc)
