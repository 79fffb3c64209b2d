"""The one place where the set of polled targets changes, in one visible order.

The polled targets are the configuration's (with the regions discovery found) — or, with replicas, those
of them this replica holds a lease for. When discovery finds regions that came or went
(:meth:`Retargeter.discover`), or the leases change (:meth:`Retargeter.own`), the whole daemon moves to
the new targets:

1. departed targets stop being scheduled, so no poll of them starts while they are taken down;
2. the service registers new targets in the database and restores them, retires departed ones, moves
   the change intelligence to the new fleet, and drops the departed series and credentials
   (:meth:`monitor.poll.service.PollService.retarget`, in a thread: it writes to the database);
3. new targets are scheduled;
4. the read API answers for the new set.

If step 2 fails (the database), the discovery result is not kept and discovery runs again soon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from monitor.domain import TargetKey, TargetSpec
from monitor.poll.scheduler import PollScheduler
from monitor.poll.service import PollService
from monitor.store.records import StoreError
from monitor.targets.topology import Topology

log = logging.getLogger(__name__)


class Retargeter:
    """Follows discovery with the service, and — once the daemon runs — the scheduler and the API."""

    def __init__(self, topology: Topology, service: PollService) -> None:
        self._topology = topology
        self._service = service
        self._scheduler: PollScheduler | None = None
        self._on_targets: Callable[[Sequence[TargetSpec]], None] | None = None
        self._all: list[TargetSpec] = topology.specs()
        self._epochs: dict[TargetKey, int] | None = None  # with replicas: the leases held
        self.leader = True

    @property
    def specs(self) -> list[TargetSpec]:
        """Every target of the configuration (and discovery), polled here or not."""
        return list(self._all)

    @property
    def polled(self) -> list[TargetSpec]:
        """The targets this process polls."""
        if self._epochs is None:
            return list(self._all)
        return [spec for spec in self._all if spec.key in self._epochs]

    def attach(
        self, scheduler: PollScheduler | None, on_targets: Callable[[Sequence[TargetSpec]], None] | None
    ) -> None:
        """From now on, also reschedule ``scheduler`` and tell ``on_targets`` (the read API's label check) every
        target of the new set (the daemon's, once built)."""
        self._scheduler, self._on_targets = scheduler, on_targets

    async def discover(self, *, force: bool = False) -> bool:
        """Ask the identity service for regions; when they changed, poll exactly the new targets.

        Returns True when the targets changed; raises StoreError when the new targets cannot be registered
        (the change is then found again at the next discovery, which comes sooner).
        """
        found = await self._topology.discover(force=force)
        if found is None:
            return False
        try:
            await self.apply(self._topology.specs(found))
        except StoreError:
            self._topology.retry_soon()
            raise
        self._topology.commit(found)
        return True

    async def rediscover(self) -> None:
        """The periodic discovery job: like :meth:`discover`, a database failure is logged and retried."""
        try:
            await self.discover()
        except StoreError as exc:
            log.error("discovered regions could not be registered (tried again shortly): %s", exc)

    async def apply(self, specs: Sequence[TargetSpec]) -> None:
        """``specs`` are every target from now on (see the module docstring); raises StoreError."""
        previous, self._all = self._all, list(specs)
        try:
            await self._move()
        except StoreError:
            self._all = previous
            raise

    async def own(self, epochs: Mapping[TargetKey, int], leader: bool) -> None:
        """With replicas: poll the targets of these leases (key → epoch); ``leader``: this one leads."""
        self._epochs = dict(epochs)
        if leader != self.leader and self._service.intelligence is not None:
            await asyncio.to_thread(self._service.intelligence.set_leader, leader)
        self.leader = leader
        await self._move()

    async def release(self) -> None:
        """With replicas, cut off from the database past the lease TTL: the others own every target now.
        Poll none, export none and stop leading — without the database; the next :meth:`own` restores."""
        self._epochs = {}
        if self._scheduler is not None:
            self._scheduler.sync([])
        self._service.release_all()
        if self.leader and self._service.intelligence is not None:
            await asyncio.to_thread(self._service.intelligence.set_leader, False)
        self.leader = False

    async def _move(self) -> None:
        polled = self.polled
        wanted = {spec.key for spec in polled}
        if self._scheduler is not None:
            self._scheduler.sync([spec for spec in self._scheduler.specs if spec.key in wanted])
        fleet = self._all if self._epochs is not None else None
        await asyncio.to_thread(self._service.retarget, polled, self._epochs, fleet)
        if self._scheduler is not None:
            self._scheduler.sync(polled, last_poll=self._service.last_poll)
        if self._on_targets is not None:
            self._on_targets(self._all)
