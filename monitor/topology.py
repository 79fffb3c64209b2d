"""The set of targets to poll: the config's own, plus the regions and endpoints discovery found.

A cloud is *static* when the config lists its regions and gives an endpoint; every other cloud is
asked about in the identity service (:func:`monitor.auth.discovery.discover`) at start and every
``discovery.refresh`` afterwards. When discovery fails, the cloud keeps the regions it had — a flaky
identity service never stops the polling of regions already known.
"""

from __future__ import annotations

import asyncio
import logging

from monitor.auth.credentials import AuthError
from monitor.auth.discovery import DiscoveryError, discover
from monitor.auth.manager import AuthManager
from monitor.config import CloudConfig, Config, TargetSpec

log = logging.getLogger(__name__)


class Topology:
    """Targets of a config; ``await refresh()`` asks the identity service again."""

    def __init__(self, config: Config, auth: AuthManager) -> None:
        self._config = config
        self._auth = auth
        self._found: dict[str, dict[str, str]] = {}
        self.dynamic: list[CloudConfig] = [cloud for cloud in config.clouds if not cloud.static]

    @property
    def refresh_interval(self) -> float | None:
        """Seconds between discoveries (the shortest of the clouds'); None without dynamic clouds."""
        return min((cloud.discovery.refresh for cloud in self.dynamic), default=None)

    def specs(self) -> list[TargetSpec]:
        """Every target known now, in config order."""
        return self._config.targets(self._found)

    async def refresh(self) -> bool:
        """Discover every dynamic cloud concurrently; True when any cloud's regions or URLs changed."""
        results = await asyncio.gather(*(self._discover(cloud) for cloud in self.dynamic))
        return any(results)

    async def _discover(self, cloud: CloudConfig) -> bool:
        try:
            found = await discover(cloud, self._auth)
        except (AuthError, DiscoveryError) as exc:
            known = len(self._found.get(cloud.name, {}))
            log.warning("cloud %s: region discovery failed (%s); keeping %d known region(s)", cloud.name, exc, known)
            return False
        before = self._found.get(cloud.name, {})
        if found == before:
            return False
        added, gone = sorted(set(found) - set(before)), sorted(set(before) - set(found))
        log.info(
            "cloud %s: %d region(s) discovered; new: %s; gone: %s",
            cloud.name, len(found), ", ".join(added) or "-", ", ".join(gone) or "-",
        )  # fmt: skip
        self._found[cloud.name] = found
        return True
