"""The set of targets to poll: the config's own, plus the regions and endpoints discovery found.

A cloud is *static* when the config lists its regions and gives an endpoint; every other cloud is
asked about in the identity service (:func:`monitor.targets.discovery.discover`) at start and every
``discovery.refresh`` afterwards. A cloud whose discovery fails keeps the regions it had — a flaky
identity service never stops the polling of regions already known — and is asked again sooner: after
30 s, doubling up to its refresh interval.

What :meth:`Topology.discover` finds is only kept once :meth:`Topology.commit` is called, after the
caller has registered the new targets; if that fails, the same change is found again next time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from monitor.auth.credentials import AuthError
from monitor.auth.manager import AuthManager
from monitor.config import BASE, CloudConfig, Config
from monitor.domain import TargetSpec, exponential_backoff
from monitor.signals.metrics import Metrics
from monitor.targets.discovery import DiscoveryError, discover

log = logging.getLogger(__name__)

RETRY_BASE = 30.0
TICK = 30.0  # how often the discovery job looks for clouds that are due

Found = dict[str, dict[str, dict[str, str]]]
"""cloud name → region → endpoints (see :meth:`monitor.config.Config.targets`), for the clouds discovery answers for."""


class Topology:
    """Targets of a config; ``await discover()`` asks the identity service again, ``commit`` keeps it."""

    def __init__(self, config: Config, auth: AuthManager, metrics: Metrics | None = None) -> None:
        self._config = config
        self._auth = auth
        self._metrics = metrics
        self._found: Found = {}
        self._next: dict[str, float] = {}  # cloud → time.monotonic() of its next discovery
        self._failures: dict[str, int] = {}
        self._expanded: tuple[Found, list[TargetSpec]] | None = None  # the last expansion, by identity of its input
        self.dynamic: list[CloudConfig] = [cloud for cloud in config.clouds if not cloud.static]

    @property
    def tick(self) -> float | None:
        """How often the discovery job should run (None: no cloud needs discovery)."""
        return min((min(TICK, cloud.discovery.refresh) for cloud in self.dynamic), default=None)

    def specs(self, found: Found | None = None) -> list[TargetSpec]:
        """Every target known now (or with ``found``), in config order.

        The expansion (every target's settings resolved) is kept for the same ``found``: at a hundred thousand
        targets it takes seconds. ``found`` is never changed in place (:meth:`discover` returns a new one).
        """
        found = self._found if found is None else found
        if self._expanded is None or self._expanded[0] is not found:
            self._expanded = (found, self._config.targets(found))
        return list(self._expanded[1])

    async def discover(self, *, force: bool = False) -> Found | None:
        """Ask about every dynamic cloud that is due (all with ``force``), concurrently.

        Returns what would be known afterwards when any cloud's regions or URLs changed, else None.
        """
        now = time.monotonic()
        due = [cloud for cloud in self.dynamic if force or now >= self._next.get(cloud.name, 0.0)]
        results = await asyncio.gather(*(self._discover(cloud) for cloud in due))
        found = dict(self._found)
        for cloud, result in zip(due, results, strict=True):
            if result is not None:
                found[cloud.name] = result
        return found if found != self._found else None

    def commit(self, found: Found) -> None:
        """Keep ``found`` (its targets are registered now)."""
        for name, regions in found.items():
            before = self._found.get(name, {})
            if regions != before:
                added, gone = sorted(set(regions) - set(before)), sorted(set(before) - set(regions))
                log.info(
                    "cloud %s: %d region(s) discovered; new: %s; gone: %s",
                    name, len(regions), ", ".join(added) or "-", ", ".join(gone) or "-",
                )  # fmt: skip
        self._found = found
        for cloud in self.dynamic:
            if cloud.services is not None and self._metrics is not None and cloud.name in found:
                regions = found[cloud.name]
                self._metrics.set_catalog(cloud.name, {r: set(e) - {BASE} for r, e in regions.items()})
            regions = found.get(cloud.name, {})
            if cloud.reference != "majority" and regions and cloud.reference not in regions:
                log.warning("cloud %s: reference region %s was not discovered; comparing with the majority",
                            cloud.name, cloud.reference)  # fmt: skip

    def undiscovered(self) -> list[str]:
        """The dynamic clouds no discovery has answered for yet."""
        return [cloud.name for cloud in self.dynamic if cloud.name not in self._found]

    def retry_soon(self) -> None:
        """Discover every dynamic cloud again at the next tick (the last result could not be kept)."""
        self._next.clear()

    async def _discover(self, cloud: CloudConfig) -> dict[str, dict[str, str]] | None:
        try:
            found = await discover(cloud.settings(), self._auth)
        except (AuthError, DiscoveryError) as exc:
            self._failed(cloud, str(exc))
            return None
        except Exception:  # a bug must not stop the other clouds' discovery
            log.exception("cloud %s: region discovery raised", cloud.name)
            self._failed(cloud, "internal error")
            return None
        self._failures[cloud.name] = 0
        self._next[cloud.name] = time.monotonic() + cloud.discovery.refresh
        return found

    def _failed(self, cloud: CloudConfig, why: str) -> None:
        failures = self._failures.get(cloud.name, 0) + 1
        self._failures[cloud.name] = failures
        delay = exponential_backoff(failures, RETRY_BASE, cloud.discovery.refresh)
        self._next[cloud.name] = time.monotonic() + delay
        known = len(self._found.get(cloud.name, {}))
        log.warning(
            "cloud %s: region discovery failed (%s); keeping %d known region(s), trying again in %.0fs",
            cloud.name, why, known, delay,
        )  # fmt: skip
