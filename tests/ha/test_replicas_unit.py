"""Replicas.tick at unit level: the coordination store, repository and retargeter are fakes that record calls."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from monitor import __version__
from monitor.config import HaConfig
from monitor.domain import TargetKey
from monitor.ha import replicas as replicas_module
from monitor.ha.replicas import Replicas
from monitor.signals.metrics import Metrics
from monitor.store.records import StoreError

KEYS = [TargetKey("c", f"r{i}", "images") for i in range(4)]


@dataclass(frozen=True)
class FakeSpec:
    """What coordination reads of a target: its key and URL."""

    key: TargetKey
    url: str


SPECS = [FakeSpec(key, f"https://{key.region}.example/v2/schemas/images") for key in KEYS]


@dataclass
class FakeMembership:
    live: tuple[str, ...]


@dataclass
class FakeStore:
    """A coordination store that grants every wanted lease and the leader lease, or fails when ``down``."""

    down: bool = False
    forgotten: list[float] = field(default_factory=list)
    infos: list[Mapping[str, Any]] = field(default_factory=list)

    def _check(self) -> None:
        if self.down:
            raise StoreError("heartbeat", "OperationalError: connection refused")

    def heartbeat(self, name: str, ttl: float, info: Mapping[str, Any]) -> FakeMembership:
        self._check()
        self.infos.append(info)
        return FakeMembership((name,))

    def sync(self, name: str, ttl: float, wanted: Collection[int]) -> dict[int, int]:
        return dict.fromkeys(wanted, 1)

    def singleton(self, singleton: str, name: str, ttl: float) -> int | None:
        return 1

    def leases(self) -> list[Any]:
        return []

    def forget_replicas(self, expired_for: float) -> int:
        self.forgotten.append(expired_for)
        return 0


class FakeRepository:
    def ensure_targets(self, targets: Iterable[tuple[TargetKey, str]]) -> dict[TargetKey, int]:
        return {key: i + 1 for i, (key, _) in enumerate(targets)}


@dataclass
class FakeRetargeter:
    leader: bool = False
    owned: list[dict[TargetKey, int]] = field(default_factory=list)
    released: int = 0

    async def own(self, epochs: Mapping[TargetKey, int], leader: bool) -> None:
        self.owned.append(dict(epochs))
        self.leader = leader

    async def release(self) -> None:
        self.released += 1
        self.leader = False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("monitor.ha.replicas.time", SimpleNamespace(monotonic=clock.monotonic))  # not the loop's
    return clock


def make(store: FakeStore, retargeter: FakeRetargeter) -> Replicas:
    settings = HaConfig(replica="a", lease_ttl=30, heartbeat=2)
    return Replicas("a", settings, store, FakeRepository(), retargeter, Metrics())  # type: ignore[arg-type]


def tick(replicas: Replicas) -> None:
    asyncio.run(replicas.tick(SPECS))  # type: ignore[arg-type]


def test_a_replica_cut_off_for_less_than_the_lease_ttl_keeps_its_targets(clock: Clock) -> None:
    store, retargeter = FakeStore(), FakeRetargeter()
    replicas = make(store, retargeter)
    tick(replicas)
    store.down = True
    clock.now += 29.9
    with pytest.raises(StoreError):
        tick(replicas)
    assert retargeter.released == 0 and len(replicas.ownership.epochs) == 4


def test_a_replica_cut_off_for_the_lease_ttl_polls_none_and_takes_its_share_back_later(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store, retargeter = FakeStore(), FakeRetargeter()
    replicas = make(store, retargeter)
    tick(replicas)
    store.down = True
    clock.now += 30
    with caplog.at_level(logging.WARNING), pytest.raises(StoreError):
        tick(replicas)
    assert retargeter.released == 1 and replicas.ownership.epochs == {}
    assert "its 4 target(s) belong to the others now" in caplog.text

    with pytest.raises(StoreError):  # still cut off: nothing more to give up
        tick(replicas)
    assert retargeter.released == 1

    store.down = False
    tick(replicas)
    assert len(retargeter.owned[-1]) == 4 and retargeter.leader


def test_the_leader_forgets_long_dead_replicas_every_ten_minutes(clock: Clock) -> None:
    store, retargeter = FakeStore(), FakeRetargeter()
    replicas = make(store, retargeter)
    tick(replicas)
    clock.now += 300
    tick(replicas)
    clock.now += 300
    tick(replicas)
    assert store.forgotten == [replicas_module.FORGET_AFTER_S, replicas_module.FORGET_AFTER_S]


def test_the_heartbeat_says_which_version_runs_where() -> None:
    store = FakeStore()
    tick(make(store, FakeRetargeter()))
    [info] = store.infos
    assert info == {"version": __version__, "host": socket.gethostname(), "pid": os.getpid()}
