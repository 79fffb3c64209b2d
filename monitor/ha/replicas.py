"""Replicas sharing one PostgreSQL: which targets this one polls, and whether it is the leader.

Every ``ha.heartbeat`` seconds :meth:`Replicas.tick` (one short transaction each, through PgBouncer too):

1. registers every target of the configuration (idempotent, set-based) — so every replica knows every id;
2. heartbeats, and reads the live replicas from the database;
3. computes the assignment (:func:`monitor.ha.ownership.assign`: every replica computes the same, each gets
   ⌊N/R⌋ or ⌈N/R⌉ targets) and syncs its leases to its share: renews, releases what is no longer its own,
   claims what is free — never a lease another live replica holds;
4. takes or renews the leader lease (pruning, notifications, rollout settlement, the group series);
5. hands the polled set to the :class:`~monitor.targets.retarget.Retargeter` when it changed.

A replica that joins gets its share within two heartbeats of the others noticing it (they release, it
claims); one that dies is replaced once its leases expire (``ha.lease_ttl``); one stopped with SIGTERM
hands everything over at once (:meth:`leave`). A replica paused past its leases (SIGSTOP, a frozen VM) is
refused every write by the fencing epochs and gives the targets up at its next tick. A replica that cannot
reach the database for ``ha.lease_ttl`` (counted on its own monotonic clock from the start of its last
successful tick, so never later than the database's expiry) stops polling and exporting its targets: the
others own them by then, and a partition must not double the load on the cloud APIs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor import __version__
from monitor.config import HaConfig
from monitor.domain import TargetKey, TargetSpec
from monitor.ha.ownership import assign
from monitor.signals.metrics import Metrics
from monitor.store.coordination import CoordinationStore
from monitor.store.records import StoreError
from monitor.store.repository import Repository
from monitor.targets.retarget import Retargeter

log = logging.getLogger(__name__)

LEADER = "leader"
FORGET_AFTER_S = 3600.0
"""The leader deletes the rows of replicas expired this long ago (pods get new names on every restart)."""


def replica_name(configured: str | None) -> str:
    """The configured name, else ``<host>-<pid>`` (unique on one host, readable in logs and metrics)."""
    return configured or f"{socket.gethostname()[:40]}-{os.getpid()}"


@dataclass
class Ownership:
    """What this replica holds after a tick."""

    epochs: dict[TargetKey, int] = field(default_factory=dict)
    leader: bool = False
    live: tuple[str, ...] = ()
    wanted: int = 0  # how many targets its share is
    unowned: int = 0  # targets without a live lease (counted by the leader)

    @property
    def settled(self) -> bool:
        """True once it holds its whole share (ready)."""
        return len(self.epochs) >= self.wanted


class Replicas:
    """Coordinates this replica with the others; ``tick`` from a periodic job, ``leave`` at shutdown."""

    def __init__(self, name: str, settings: HaConfig, store: CoordinationStore, repository: Repository,
                 retargeter: Retargeter, metrics: Metrics) -> None:  # fmt: skip
        self.name = name
        self._settings = settings
        self._store = store
        self._repository = repository
        self._retargeter = retargeter
        self._metrics = metrics
        self._ids: dict[TargetKey, int] = {}
        self._registered: frozenset[TargetKey] = frozenset()
        self.ownership = Ownership()
        self.ticked = False
        self._renewed = time.monotonic()  # the start of the last tick that reached the database
        self._forgotten_at = -FORGET_AFTER_S  # when the leader last deleted the rows of long-dead replicas
        self._info = {"version": __version__, "host": socket.gethostname(), "pid": os.getpid()}  # who this is

    async def tick(self, specs: Sequence[TargetSpec]) -> Ownership:
        """One round of the protocol (module docstring) over ``specs``, every target of the config; raises
        StoreError when the database cannot be reached (the leases then run out: others take over, and
        once they have, this replica polls nothing until the database answers again)."""
        started = time.monotonic()
        try:
            ownership = await asyncio.to_thread(self._coordinate, specs)
        except StoreError:
            await self._release_if_expired()
            raise
        self._renewed = started
        changed = ownership.epochs != self.ownership.epochs
        if ownership.leader != self.ownership.leader:
            log.info("replica %s: %s the leader", self.name, "is now" if ownership.leader else "is no longer")
        self.ownership = ownership
        if changed or not self.ticked or ownership.leader != self._retargeter.leader:
            await self._retargeter.own(ownership.epochs, ownership.leader)
        self.ticked = True
        self._export(ownership)
        return ownership

    async def _release_if_expired(self) -> None:
        if not self.ownership.epochs or time.monotonic() - self._renewed < self._settings.lease_ttl:
            return
        log.warning("replica %s: no heartbeat for the lease TTL (%gs): its %d target(s) belong to the others now; "
                    "polling none until the database answers", self.name, self._settings.lease_ttl,
                    len(self.ownership.epochs))  # fmt: skip
        self.ownership = Ownership(live=self.ownership.live)
        await self._retargeter.release()
        self._export(self.ownership)

    def _coordinate(self, specs: Sequence[TargetSpec]) -> Ownership:
        keys = frozenset(spec.key for spec in specs)
        if keys != self._registered:  # a new config or discovery result: one set-based registration
            self._ids = self._repository.ensure_targets((spec.key, spec.url) for spec in specs)
            self._registered = keys
        ttl = self._settings.lease_ttl
        membership = self._store.heartbeat(self.name, ttl, self._info)
        by_id = {tid: key for key, tid in self._ids.items()}
        share = [tid for tid, owner in assign(sorted(by_id), membership.live).items() if owner == self.name]
        held = self._store.sync(self.name, ttl, share)
        leader = self._store.singleton(LEADER, self.name, ttl) is not None
        epochs = {by_id[tid]: epoch for tid, epoch in held.items() if tid in by_id}
        unowned = 0
        if leader:
            live = {lease.target_id for lease in self._store.leases() if lease.live}
            unowned = sum(1 for tid in by_id if tid not in live)
            self._forget_dead_replicas()
        return Ownership(epochs, leader, membership.live, len(share), unowned)

    def _forget_dead_replicas(self) -> None:
        if time.monotonic() - self._forgotten_at < FORGET_AFTER_S / 6:
            return
        self._forgotten_at = time.monotonic()
        if forgotten := self._store.forget_replicas(FORGET_AFTER_S):
            log.info("replica %s: forgot %d replica(s) gone for over %gs", self.name, forgotten, FORGET_AFTER_S)

    def _export(self, ownership: Ownership) -> None:
        self._metrics.set_replica(self.name, owned=len(ownership.epochs), live=len(ownership.live),
                                  leader=ownership.leader, expected=self._settings.expected_replicas,
                                  unowned=ownership.unowned)  # fmt: skip

    def leave(self) -> None:
        """Hand every target and the leader lease over now (SIGTERM: a rolling update); never raises."""
        try:
            self._store.leave(self.name)
        except StoreError as exc:
            log.warning("replica %s: could not hand over (the leases run out instead): %s", self.name, exc)
        else:
            log.info("replica %s: handed over %d target(s)", self.name, len(self.ownership.epochs))


class SoloReplica:
    """One process alone on its database (SQLite, or PostgreSQL without coordination): it polls everything
    and leads; :meth:`tick` only exports that view, so the dashboards read the same either way."""

    def __init__(self, name: str, settings: HaConfig, retargeter: Retargeter, metrics: Metrics) -> None:
        self.name = name
        self._settings = settings
        self._retargeter = retargeter
        self._metrics = metrics
        self.ownership = Ownership(leader=True)
        self.ticked = True

    async def tick(self, specs: Sequence[TargetSpec]) -> Ownership:
        self.ownership = Ownership(leader=True, live=(self.name,), wanted=0)
        self._metrics.set_replica(self.name, owned=len(self._retargeter.polled), live=1, leader=True,
                                  expected=self._settings.expected_replicas, unowned=0)  # fmt: skip
        return self.ownership

    def leave(self) -> None:
        """Nothing to hand over."""
