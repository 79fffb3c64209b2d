"""APScheduler 3.x wiring: one interval job per target, plus housekeeping. Nothing else lives here.

Each job has ``max_instances=1`` (two polls of one target never overlap), ``coalesce=True`` (a backlog
collapses into one run) and an explicit ``misfire_grace_time``. Every job runs through one boundary
(:meth:`PollScheduler._job`): APScheduler only logs job exceptions, so the boundary catches them itself (and
counts a poll's as an ``internal`` poll failure); at a stop, running jobs get the grace period and those
cancelled after it end quietly, with one INFO line for all of them (:meth:`PollScheduler.shutdown`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.domain import TargetKey, TargetSpec, utcnow
from monitor.poll.service import PollService

log = logging.getLogger(__name__)

LastPoll = Callable[[TargetKey], datetime | None]
"""When a target was last polled (None: never)."""
Work = Callable[[], Awaitable[object]]
"""What a job does (a coroutine function without arguments)."""

PRUNE_INTERVAL_S = 3600.0
FLUSH_INTERVAL_S = 5.0  # how often the batched times of unchanged polls are written


class _QuietSkips(logging.LoggerAdapter[logging.Logger]):
    """APScheduler's logger, with one warning made DEBUG: a run skipped because the job's previous run still goes
    on. For a poll slower than its interval that is ``max_instances=1`` doing its job at every interval, and the
    slow poll's own outcome is logged once (:mod:`monitor.poll.outcomes`)."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if level == logging.WARNING and "skipped: maximum number of running instances" in str(msg):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


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
        quiet = _QuietSkips(logging.getLogger("apscheduler.scheduler"))
        self._scheduler = AsyncIOScheduler(timezone="UTC", logger=quiet)
        self._running: dict[asyncio.Task[Any], str] = {}  # every job running now: what it is
        self._stopping = False

    def start(self) -> None:
        """Add the jobs and start; the first poll of each target is spread over its jitter."""
        now = utcnow()
        for spec in self._specs.values():
            self._add_poll(spec, now)
        self._add_job("prune", PRUNE_INTERVAL_S, self._prune, "pruning poll transitions", now + timedelta(seconds=60))
        self._add_job("flush", FLUSH_INTERVAL_S, self._service.flush, "writing the times of the last polls")
        self._add_job("refresh", self._refresh_interval, self._service.refresh_intelligence, "refreshing drift state")
        if self._coordination is not None:
            every, coordinate = self._coordination
            self._add_job("coordination", every, coordinate, "coordination")
        if self._discovery is not None:
            interval, discover = self._discovery
            self._add_job("discovery", interval, discover, "region discovery")
        self._scheduler.start()

    def _add_job(
        self, job_id: str, every: float, work: Work, what: str | None = None, first: datetime | None = None
    ) -> None:
        """A housekeeping job: ``work`` every ``every`` seconds, through the job boundary (:meth:`_job`)."""
        self._scheduler.add_job(
            self._job, IntervalTrigger(seconds=every), args=[what or job_id, work], id=job_id, name=job_id,
            max_instances=1, coalesce=True, misfire_grace_time=max(1, int(every)),
            **({"next_run_time": first} if first is not None else {}),
        )  # fmt: skip

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

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    # --- the job boundary ------------------------------------------------------------------------

    async def _job(self, what: str, work: Work) -> None:
        """Run one job: every job, poll or housekeeping, goes through here.

        An exception is logged (APScheduler would only log it); a cancellation by :meth:`shutdown` ends the
        job quietly (the shutdown logs it, once for all); a job that starts once the stop has begun does
        nothing.
        """
        task = asyncio.current_task()
        if self._stopping or task is None:
            return
        self._running[task] = what
        try:
            await work()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except Exception:
            log.exception("%s raised", what)
        finally:
            del self._running[task]

    async def _poll_job(self, spec: TargetSpec) -> None:
        await self._job(f"poll {spec.key}", partial(self._poll, spec))

    async def _poll(self, spec: TargetSpec) -> None:
        """One poll; an exception (a bug) is counted as an ``internal`` poll failure."""
        try:
            await self._service.poll(spec)
        except Exception:
            log.exception("%s: poll job raised", spec.key)
            self._service.count_internal_error(spec.key)

    async def _prune(self) -> None:
        if not self._leader():
            return
        removed = await self._service.prune(self._retention)
        if removed:
            log.info("pruned %d poll transition row(s) past retention", removed)

    async def shutdown(self, grace: float) -> None:
        """Stop scheduling; let running jobs finish within ``grace`` seconds, then cancel the rest.

        Every job, poll or housekeeping, gets the grace. One still running after it is cancelled: its poll
        lets a store step in progress land (see :mod:`monitor.poll.service`), its boundary ends it quietly,
        and one INFO line names what was cancelled — a normal stop is no error. The scheduler is paused
        first and shut down last, when no job runs any more: its own shutdown would cancel running jobs at
        once, and APScheduler logs each one cancelled as an error with a traceback.
        """
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()
        await asyncio.sleep(0)  # a job submitted just before the pause starts now, sees the stop and returns
        running = dict(self._running)
        if running:
            log.info("waiting up to %gs for %d running job(s)", grace, len(running))
            _done, still = await asyncio.wait(running, timeout=grace)
            if still:
                for task in still:
                    task.cancel()
                await asyncio.wait(still, timeout=30)
                log.info("cancelled %d job(s) still running after the %gs grace period: %s", len(still), grace,
                         _names(sorted(running[task] for task in still)))  # fmt: skip
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _names(names: Sequence[str], shown: int = 10) -> str:
    """``names``, the first ``shown`` of them and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _first_run(now: datetime, spec: TargetSpec) -> datetime:
    """Spread the first polls over the jitter window so a restart does not hit every region at once."""
    spread = min(spec.jitter, spec.interval)
    return now + timedelta(seconds=random.uniform(0, spread) if spread > 0 else 0)
