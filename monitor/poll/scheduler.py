"""When polls and housekeeping run: a tick that starts every due target's poll, plus APScheduler for housekeeping.

Polls: one asyncio task (:meth:`PollScheduler._ticks`) wakes every ``tick`` seconds and takes every target due
by then (:class:`~monitor.poll.timetable.Timetable`: a heap of next-due times), so the cost of scheduling does
not grow with the fleet — no job object, trigger or executor call per target and poll. The timetable keeps the
rules of an APScheduler interval job with ``max_instances=1`` and ``coalesce=True``: two polls of one target
never overlap, a backlog collapses into one run, each run gets a fresh jitter. Due targets wait in a queue and
at most ``started`` polls (default: four times the service's ``max_concurrency``) are tasks at once, each ending
one starting the next: a round of a hundred thousand targets due together (no jitter) is not a hundred thousand
tasks waiting for a fetch slot. The service's own bound on fetches stays the one that limits the wire.

Housekeeping (flush, refresh, prune, coordination, discovery): APScheduler 3.x interval jobs, each with
``max_instances=1``, ``coalesce=True`` and an explicit ``misfire_grace_time``.

Every poll and every housekeeping job runs through one boundary (:meth:`PollScheduler._job`): an exception is
logged there (and a poll's counted as an ``internal`` poll failure); at a stop, running jobs get the grace
period and those cancelled after it end quietly, with one INFO line for all of them
(:meth:`PollScheduler.shutdown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.domain import TargetKey, TargetSpec, utcnow
from monitor.poll.service import PollService
from monitor.poll.timetable import Slot, Timetable

log = logging.getLogger(__name__)

LastPoll = Callable[[TargetKey], datetime | None]
"""When a target was last polled (None: never)."""
Work = Callable[[], Awaitable[object]]
"""What a job does (a coroutine function without arguments)."""

PRUNE_INTERVAL_S = 3600.0
FLUSH_INTERVAL_S = 5.0  # how often the batched times of unchanged polls are written
TICK_S = 0.5  # how often due polls are started: a poll starts at most this late


class _QuietSkips(logging.LoggerAdapter[logging.Logger]):
    """APScheduler's logger, with one warning made DEBUG: a run skipped because the job's previous run still goes
    on. For a housekeeping job slower than its interval that is ``max_instances=1`` doing its job."""

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
        tick: float = TICK_S,
        started: int | None = None,
    ) -> None:
        self._service = service
        self._retention = poll_retention
        self._refresh_interval = refresh_interval
        self._discovery = discovery
        self._coordination = coordination
        self._leader = leader  # housekeeping (pruning) runs on the leader only
        self._tick = tick
        self._timetable = Timetable()
        now = time.monotonic()
        for spec in specs:  # the first poll of each target is spread over its jitter
            self._timetable.add(spec, now + _spread(spec))
        quiet = _QuietSkips(logging.getLogger("apscheduler.scheduler"))
        self._scheduler = AsyncIOScheduler(timezone="UTC", logger=quiet)  # housekeeping only
        self._ticker: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[Any], str | Slot] = {}  # every job running now: what it is
        self._started: set[asyncio.Task[None]] = set()  # every poll task started that has not ended
        self._ready: deque[Slot] = deque()  # due, waiting for a task
        self._max_started = started or 4 * service.max_concurrency
        self._stopping = False

    def start(self) -> None:
        """Add the housekeeping jobs and start ticking."""
        first_prune = utcnow() + timedelta(seconds=60)
        self._add_job("prune", PRUNE_INTERVAL_S, self._prune, "pruning poll transitions", first_prune)
        self._add_job("flush", FLUSH_INTERVAL_S, self._service.flush, "writing the times of the last polls")
        self._add_job("refresh", self._refresh_interval, self._service.refresh_intelligence, "refreshing drift state")
        if self._coordination is not None:
            every, coordinate = self._coordination
            self._add_job("coordination", every, coordinate, "coordination")
        if self._discovery is not None:
            interval, discover = self._discovery
            self._add_job("discovery", interval, discover, "region discovery")
        self._scheduler.start()
        self._ticker = asyncio.create_task(self._ticks(), name="poll ticks")

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
        return self._timetable.specs

    def due_in(self, key: TargetKey) -> float | None:
        """Seconds until ``key``'s next poll may start (None: not scheduled)."""
        due = self._timetable.due_at(key)
        return due - time.monotonic() if due is not None else None

    def sync(
        self, specs: Sequence[TargetSpec], last_poll: Callable[[TargetKey], datetime | None] | None = None
    ) -> None:
        """Poll exactly ``specs``: schedule new targets, drop gone ones, reschedule changed ones.

        A new target that ``last_poll`` says was polled before (a handover from another replica, a region
        that came back) is first polled one interval after that poll — at once if that has passed — so a
        handover neither skips nor repeats a poll. A poll running for a dropped target finishes.
        """
        wanted = {spec.key: spec for spec in specs}
        table = self._timetable
        table.remove([spec.key for spec in table.specs if wanted.get(spec.key) != spec])
        now, wall = time.monotonic(), utcnow()
        for key, spec in wanted.items():
            if key not in table:
                before = last_poll(key) if last_poll is not None else None
                if before is None:
                    table.add(spec, now + _spread(spec))
                else:
                    wait = (before + timedelta(seconds=spec.interval) - wall).total_seconds()
                    table.add(spec, now + max(0.0, wait))

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running) and self._ticker is not None and not self._ticker.done()

    # --- the tick --------------------------------------------------------------------------------

    async def _ticks(self) -> None:
        """Every ``tick`` seconds: queue every due target whose previous poll has ended, and start polls."""
        while not self._stopping:
            try:
                self._ready.extend(self._timetable.take_due(time.monotonic()))
                self._start_ready()
            except Exception:
                log.exception("scheduling the due polls raised")
            await asyncio.sleep(self._tick)

    def _start_ready(self, ended: asyncio.Task[None] | None = None) -> None:
        """Start queued polls while fewer than ``started`` run (also as the done callback of each poll task)."""
        if ended is not None:
            self._started.discard(ended)  # the set holds the reference the loop does not
        while self._ready and len(self._started) < self._max_started and not self._stopping:
            slot = self._ready.popleft()
            if not slot.live:  # removed while it waited
                Timetable.done(slot)
                continue
            task = asyncio.create_task(self._poll_slot(slot))
            self._started.add(task)
            task.add_done_callback(self._start_ready)

    async def _poll_slot(self, slot: Slot) -> None:
        try:
            await self._job(slot, self._service.poll, slot.spec)
        finally:
            Timetable.done(slot)

    # --- the job boundary ------------------------------------------------------------------------

    async def _job(self, what: str | Slot, work: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run one job, ``work(*args)``: every job, poll or housekeeping, goes through here.

        An exception is logged (a poll's is counted as an ``internal`` poll failure); a cancellation by
        :meth:`shutdown` ends the job quietly (the shutdown logs it, once for all); a job that starts once
        the stop has begun does nothing. ``what`` names the job (a poll: its slot, named only when needed).
        """
        task = asyncio.current_task()
        if self._stopping or task is None:
            return
        self._running[task] = what
        try:
            await work(*args)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        except Exception:
            if isinstance(what, Slot):
                log.exception("%s: poll job raised", what.spec.key)
                self._service.count_internal_error(what.spec.key)
            else:
                log.exception("%s raised", what)
        finally:
            del self._running[task]

    async def _poll_job(self, spec: TargetSpec) -> None:
        """One poll of ``spec`` through the job boundary, outside the timetable."""
        await self._job(Slot(spec, 0.0, 0.0), self._service.poll, spec)

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
        and one INFO line names what was cancelled — a normal stop is no error. APScheduler is paused first
        and shut down last, when no job runs any more: its own shutdown would cancel running jobs at once,
        and it logs each one cancelled as an error with a traceback.
        """
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
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
                         _names(sorted(_name(running[task]) for task in still)))  # fmt: skip
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _name(what: str | Slot) -> str:
    return f"poll {what.spec.key}" if isinstance(what, Slot) else what


def _names(names: Sequence[str], shown: int = 10) -> str:
    """``names``, the first ``shown`` of them and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _spread(spec: TargetSpec) -> float:
    """Seconds to a new target's first poll: spread over the jitter window so a restart does not hit every region
    at once."""
    spread = min(spec.jitter, spec.interval)
    return random.uniform(0, spread) if spread > 0 else 0.0
