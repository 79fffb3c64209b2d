"""Regions and endpoints from the identity service: the Keystone catalog or Huawei IAM's project list.

:func:`discover` answers, for one cloud whose regions or endpoints are not all in the config, which
regions to poll and each region's base URL. The base URL is ``endpoint_override``, else ``endpoint``
(with ``{region}``), else the catalog's endpoint of ``discovery.service_type`` and
``discovery.interface`` in that region, with a trailing version segment (``/v2``) removed because the
schema paths carry it. A region without any URL is left out with a warning.

Sources of the region list (``regions: auto``):

* ``catalog``: every region with an endpoint of the service in the token's catalog;
* ``projects``: Huawei Cloud IAM's ``GET /v3/auth/projects``, whose project names are region names;
  sub-projects (``cn-north-4_dev``) and the ``MOS`` project are not regions. The token for it is
  scoped to the user's domain when the poll scope is per region (``{region}``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from monitor.auth.credentials import KeystoneToken
from monitor.auth.manager import AuthManager
from monitor.config import CloudConfig
from monitor.config.auth import KeystoneAuth
from monitor.config.types import REGION_RE

log = logging.getLogger(__name__)

_VERSION_SUFFIX = re.compile(r"/v\d+(\.\d+)?/?$")
_REGION_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")  # cn-north-4; not MOS, not cn-north-4_dev


class DiscoveryError(Exception):
    """The identity service answered, but not with usable regions; the message is safe to log."""


async def discover(cloud: CloudConfig, auth: AuthManager) -> dict[str, str]:
    """Region → base URL for ``cloud``; raises AuthError (credentials) or DiscoveryError (content).

    A region with no URL is left out with a warning rather than failing the whole discovery.
    """
    settings = cloud.discovery
    regions = await _regions(cloud, auth)
    wanted = [region for region in regions if _usable(cloud, region) and settings.wants(region)]
    bases: dict[str, str] = {}
    catalog: dict[str, str] | None = None
    for region in wanted:
        base = cloud.base_url(region)
        if base is None:
            if catalog is None or _per_region(cloud):
                catalog = await _catalog(cloud, await _catalog_token(cloud, auth, region))
            base = catalog.get(region)
        if base is None:
            log.warning(
                "cloud %s: no %s endpoint (%s) for region %s in the catalog; not polled",
                cloud.name, settings.service_type, settings.interface, region,
            )  # fmt: skip
            continue
        if base.startswith("http://") and not cloud.allow_http:
            log.warning("cloud %s: the catalog's endpoint for region %s is plain http://; not polled "
                        "(allow_http: true allows it)", cloud.name, region)  # fmt: skip
            continue
        bases[region] = base
    return bases


async def _regions(cloud: CloudConfig, auth: AuthManager) -> list[str]:
    if isinstance(cloud.regions, list):
        return cloud.regions
    if cloud.discovery.source == "catalog":
        return sorted(await _catalog(cloud, auth.for_discovery(cloud), fresh=True))
    names = await auth.for_discovery(cloud, domain_scope=_per_region(cloud)).list_projects()
    regions = sorted(name for name in names if _REGION_PROJECT.match(name) and name != "mos")
    if not regions:
        raise DiscoveryError("the identity service lists no region projects")
    return regions


async def _catalog_token(cloud: CloudConfig, auth: AuthManager, region: str) -> KeystoneToken:
    """The token whose catalog is read: the region's own one when the scope is per region."""
    if _per_region(cloud):
        credentials = auth.for_region(cloud, region)
        assert isinstance(credentials, KeystoneToken)
        return credentials
    return auth.for_discovery(cloud)


async def _catalog(cloud: CloudConfig, token: KeystoneToken, *, fresh: bool = False) -> dict[str, str]:
    """Region → base URL of the configured service and interface in the token's catalog.

    ``fresh`` takes a new token: a cached token's catalog is as old as the token.
    """
    access: Any = await token.access(fresh=fresh)
    settings = cloud.discovery
    found = access.service_catalog.get_endpoints_data(service_type=settings.service_type, interface=settings.interface)
    urls: dict[str, str] = {}
    for endpoint in found.get(settings.service_type, []):
        if endpoint.region_name and endpoint.catalog_url:
            urls.setdefault(endpoint.region_name, _VERSION_SUFFIX.sub("", endpoint.catalog_url.rstrip("/")))
    if not urls and not isinstance(cloud.regions, list):
        raise DiscoveryError(f"the catalog has no {settings.service_type} endpoint ({settings.interface})")
    return urls


def _usable(cloud: CloudConfig, region: str) -> bool:
    """Region names become metric labels and URL path segments: odd ones are skipped, with a warning."""
    if REGION_RE.match(region):
        return True
    log.warning("cloud %s: discovered region name %r is not usable (letters, digits, . _ -); skipped", cloud.name,
                region[:80])  # fmt: skip
    return False


def _per_region(cloud: CloudConfig) -> bool:
    return isinstance(cloud.auth, KeystoneAuth) and cloud.auth.per_region
