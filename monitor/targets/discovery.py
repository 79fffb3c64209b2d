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
from collections.abc import Mapping
from typing import Any

import os_service_types

from monitor.auth.credentials import KeystoneToken
from monitor.auth.manager import AuthManager
from monitor.config.settings import BASE, REGION_RE, CloudSettings, KeystoneSettings

log = logging.getLogger(__name__)

_SERVICE_TYPES = os_service_types.ServiceTypes()  # the official names of catalog types (volumev3: block-storage)
_VERSION_SUFFIX = re.compile(r"/v\d+(\.\d+)?/?$")
_REGION_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")  # cn-north-4; not MOS, not cn-north-4_dev


class DiscoveryError(Exception):
    """The identity service answered, but not with usable regions; the message is safe to log."""


async def discover(cloud: CloudSettings, auth: AuthManager) -> dict[str, dict[str, str]]:
    """Region → endpoints for ``cloud``; raises AuthError (credentials) or DiscoveryError (content).

    A region's endpoints are its schemas' base URL under :data:`~monitor.config.settings.BASE` and, for ``services``,
    each listed service type's catalog endpoint under its official type. A region with no usable URL is left
    out with a warning rather than failing the whole discovery.
    """
    regions = await _regions(cloud, auth)
    wanted = [region for region in regions if _usable(cloud, region) and cloud.discovery.wants(region)]
    found: dict[str, dict[str, str]] = {}
    catalog: _Catalog | None = None
    for region in wanted:
        if catalog is None or (_per_region(cloud) and _needs_catalog(cloud)):
            catalog = await _catalog(cloud, await _catalog_token(cloud, auth, region)) if _needs_catalog(cloud) else {}
        endpoints = _region_endpoints(cloud, region, catalog.get(region, {}))
        if endpoints:
            found[region] = endpoints
    return found


def _needs_catalog(cloud: CloudSettings) -> bool:
    return cloud.services is not None or (cloud.watches_schemas and cloud.endpoint is None)


def _relevant(cloud: CloudSettings, services: Mapping[str, str]) -> bool:
    """Whether a region of the catalog offers what ``cloud`` watches (its schemas' service, a listed service)."""
    if cloud.services is not None and (cloud.services == "all" or set(services) & _listed_services(cloud)):
        return True
    return cloud.watches_schemas and cloud.discovery.service_type in services


def _listed_services(cloud: CloudSettings) -> set[str]:
    """The official names of the service types ``services:`` lists (``volumev3`` → ``block-storage``), as the
    catalog is keyed by them."""
    listed = cloud.services if isinstance(cloud.services, tuple) else ()
    return {_SERVICE_TYPES.get_service_type(service) or service for service in listed}


def _region_endpoints(cloud: CloudSettings, region: str, catalog: Mapping[str, str]) -> dict[str, str]:
    """The usable endpoints of one region: plain http:// ones only where the cloud allows it (warned about)."""
    endpoints: dict[str, str] = {}
    if cloud.watches_schemas:
        base = cloud.base_url(region) or _base(catalog.get(cloud.discovery.service_type))
        if base is not None:
            endpoints[BASE] = base
        else:
            log.warning("cloud %s: no %s endpoint (%s) for region %s in the catalog; its schemas are not polled",
                        cloud.name, cloud.discovery.service_type, cloud.discovery.interface, region)  # fmt: skip
    if cloud.services is not None:
        wanted = set(catalog) if cloud.services == "all" else _listed_services(cloud)
        endpoints |= {service: url for service, url in catalog.items() if service in wanted}
    for name, url in list(endpoints.items()):
        if url.startswith("http://") and not cloud.allow_http:
            log.warning("cloud %s: the catalog's %s endpoint for region %s is plain http://; not polled "
                        "(allow_http: true allows it)", cloud.name, name.strip("_"), region)  # fmt: skip
            del endpoints[name]
    return endpoints


def _base(endpoint: str | None) -> str | None:
    """The schemas' base URL from the catalog endpoint: a trailing version segment (``/v2``) dropped."""
    return _VERSION_SUFFIX.sub("", endpoint.rstrip("/")) if endpoint else None


async def _regions(cloud: CloudSettings, auth: AuthManager) -> list[str]:
    if cloud.regions is not None:
        return list(cloud.regions)
    if cloud.discovery.source == "catalog":
        catalog = await _catalog(cloud, auth.for_discovery(cloud), fresh=True)
        relevant = [region for region, services in catalog.items() if _relevant(cloud, services)]
        if not relevant:
            wanted = cloud.discovery.service_type if cloud.services is None else "listed service"
            raise DiscoveryError(f"the catalog has no {wanted} endpoint ({cloud.discovery.interface})")
        return sorted(relevant)
    names = await auth.for_discovery(cloud, domain_scope=_per_region(cloud)).list_projects()
    regions = sorted(name for name in names if _REGION_PROJECT.match(name) and name != "mos")
    if not regions:
        raise DiscoveryError("the identity service lists no region projects")
    return regions


async def _catalog_token(cloud: CloudSettings, auth: AuthManager, region: str) -> KeystoneToken:
    """The token whose catalog is read: the region's own one when the scope is per region."""
    if _per_region(cloud):
        credentials = auth.for_region(cloud, region)
        assert isinstance(credentials, KeystoneToken)
        return credentials
    return auth.for_discovery(cloud)


_Catalog = dict[str, dict[str, str]]
"""Region → official service type → endpoint URL (of the configured interface)."""


async def _catalog(cloud: CloudSettings, token: KeystoneToken, *, fresh: bool = False) -> _Catalog:
    """Every endpoint of the configured interface in the token's catalog, by region and official service type.

    ``fresh`` takes a new token: a cached token's catalog is as old as the token.
    """
    access: Any = await token.access(fresh=fresh)
    found = access.service_catalog.get_endpoints_data(interface=cloud.discovery.interface)
    catalog: _Catalog = {}
    for service_type, endpoints in found.items():
        official = _SERVICE_TYPES.get_service_type(service_type) or service_type
        for endpoint in endpoints:
            if endpoint.region_name and endpoint.catalog_url:
                catalog.setdefault(endpoint.region_name, {}).setdefault(official, endpoint.catalog_url)
    return catalog


def _usable(cloud: CloudSettings, region: str) -> bool:
    """Region names become metric labels and URL path segments: odd ones are skipped, with a warning."""
    if REGION_RE.match(region):
        return True
    log.warning("cloud %s: discovered region name %r is not usable (letters, digits, . _ -); skipped", cloud.name,
                region[:80])  # fmt: skip
    return False


def _per_region(cloud: CloudSettings) -> bool:
    return isinstance(cloud.auth, KeystoneSettings) and cloud.auth.per_region
