"""APScheduler 3.x wiring: one interval job per target, plus housekeeping. Nothing else lives here.

Each job has ``max_instances=1`` (two polls of one target never overlap), ``coalesce=True`` (a backlog
collapses into one run) and an explicit ``misfire_grace_time``. APScheduler only logs job exceptions, so
the job boundary catches them itself and counts them as ``internal`` poll failures.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.domain import TargetKey, TargetSpec, utcnow
from monitor.poll.service import PollService

log = logging.getLogger(__name__)

LastPoll = Callable[[TargetKey], datetime | None]
"""When a target was last polled (None: never)."""

PRUNE_INTERVAL_S = 3600.0
FLUSH_INTERVAL_S = 5.0  # how often the batched times of unchanged polls are written


class PollScheduler:
    """Schedules every target on the running event loop; ``start`` then ``shutdown``."""

    def __init__(
        self,
        service: PollService,
        specs: Sequence[TargetSpec],
        poll_retention: float,
        refresh_interval: float = 15.0,
        discovery: tuple[float, Callable[[], Awaitable[None]]] | None = None,
        coordination: tuple[float, Callable[[], Awaitable[None]]] | None = None,
        leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._service = service
        self._specs = {spec.key: spec for spec in specs}
        self._retention = poll_retention
        self._refresh_interval = refresh_interval
        self._discovery = discovery
        self._coordination = coordination
        self._leader = leader  # housekeeping (pruning) runs on the leader only
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        """Add the jobs and start; the first poll of each target is spread over its jitter."""
        now = utcnow()
        for spec in self._specs.values():
            self._add_poll(spec, now)
        self._scheduler.add_job(
            self._prune_job,
            IntervalTrigger(seconds=PRUNE_INTERVAL_S),
            id="prune",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(PRUNE_INTERVAL_S),
            next_run_time=now + timedelta(seconds=60),
        )
        self._scheduler.add_job(
            self._flush_job,
            IntervalTrigger(seconds=FLUSH_INTERVAL_S),
            id="flush",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(FLUSH_INTERVAL_S),
        )
        self._scheduler.add_job(
            self._refresh_job,
            IntervalTrigger(seconds=self._refresh_interval),
            id="refresh",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(self._refresh_interval)),
        )
        if self._coordination is not None:
            every, coordinate = self._coordination
            self._scheduler.add_job(
                self._guarded, IntervalTrigger(seconds=every), args=[coordinate, "coordination"], id="coordination",
                max_instances=1, coalesce=True, misfire_grace_time=max(1, int(every)),
            )  # fmt: skip
        if self._discovery is not None:
            interval, discover = self._discovery
            self._scheduler.add_job(
                self._discovery_job,
                IntervalTrigger(seconds=interval),
                args=[discover],
                id="discovery",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),
            )
        self._scheduler.start()

    @property
    def specs(self) -> list[TargetSpec]:
        """The targets scheduled now."""
        return list(self._specs.values())

    def sync(
        self, specs: Sequence[TargetSpec], last_poll: Callable[[TargetKey], datetime | None] | None = None
    ) -> None:
        """Poll exactly ``specs``: add jobs for new targets, remove gone ones, replace changed ones.

        A new target that ``last_poll`` says was polled before (a handover from another replica, a region
        that came back) is first polled one interval after that poll — at once if that has passed — so a
        handover neither skips nor repeats a poll.
        """
        wanted = {spec.key: spec for spec in specs}
        for key, spec in list(self._specs.items()):
            if wanted.get(key) != spec:
                self._scheduler.remove_job(str(key))
                del self._specs[key]
        now = utcnow()
        for key, spec in wanted.items():
            if key not in self._specs:
                self._specs[key] = spec
                before = last_poll(key) if last_poll is not None else None
                due = before + timedelta(seconds=spec.interval) if before is not None else None
                self._add_poll(spec, now, max(now, due) if due is not None else None)

    def _add_poll(self, spec: TargetSpec, now: datetime, first: datetime | None = None) -> None:
        self._scheduler.add_job(
            self._poll_job,
            IntervalTrigger(seconds=spec.interval, jitter=spec.jitter or None),
            args=[spec],
            id=str(spec.key),
            name=f"poll {spec.key}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(spec.interval / 2)),
            next_run_time=first or _first_run(now, spec),
        )

    async def _discovery_job(self, discover: Callable[[], Awaitable[None]]) -> None:
        try:
            await discover()
        except Exception:
            log.exception("region discovery raised")

    async def _flush_job(self) -> None:
        try:
            await self._service.flush()
        except Exception:
            log.exception("writing the times of the last polls raised")

    async def _refresh_job(self) -> None:
        try:
            await self._service.refresh_intelligence()
        except Exception:
            log.exception("refreshing drift state raised")

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    async def _poll_job(self, spec: TargetSpec) -> None:
        try:
            await self._service.poll(spec)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: poll job raised", spec.key)
            self._service.count_internal_error(spec.key)

    async def _guarded(self, job: Callable[[], Awaitable[None]], what: str) -> None:
        try:
            await job()
        except Exception:
            log.exception("%s raised", what)

    async def _prune_job(self) -> None:
        if not self._leader():
            return
        try:
            removed = await self._service.prune(self._retention)
        except Exception:
            log.exception("pruning poll transitions raised")
            return
        if removed:
            log.info("pruned %d poll transition row(s) past retention", removed)

    async def shutdown(self, grace: float) -> None:
        """Stop scheduling; let running polls finish within ``grace`` seconds, then cancel the rest.

        The scheduler is paused first: its own ``shutdown`` would cancel running jobs at once.
        """
        if self._scheduler.running:
            self._scheduler.pause()
        pending = set(self._service.in_flight)
        if pending:
            log.info("waiting up to %.0fs for %d running poll(s)", grace, len(pending))
            _done, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=30)
                log.warning("cancelled %d poll(s) still running after the grace period", len(still))
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _first_run(now: datetime, spec: TargetSpec) -> datetime:
    """Spread the first polls over the jitter window so a restart does not hit every region at once."""
    spread = min(spec.jitter, spec.interval)
    return now + timedelta(seconds=random.uniform(0, spread) if spread > 0 else 0)
