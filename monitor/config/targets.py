"""The expansion of clouds into targets: every (cloud, region, schema) as a :class:`~monitor.domain.TargetSpec`.

Settings resolve schema over cloud over ``defaults``; ignore rules add up (the schema's ``min_severity`` wins);
a target's ``auth`` is the plain :mod:`monitor.config.settings` object the credentials take. A cloud whose regions
or endpoints come from the identity service has targets only once discovery (:mod:`monitor.targets.discovery`)
has found them; a cloud with ``services`` gets one target per API-surface document of its catalog
(:mod:`monitor.config.catalog`). :class:`~monitor.config.models.Config` calls these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from monitor.config import catalog
from monitor.config.cloud import CloudConfig, Defaults, IgnoreConfig, PollSettings, SchemaConfig
from monitor.config.settings import BASE
from monitor.domain import IgnoreRules, Severity, TargetKey, TargetSpec

Discovered = Mapping[str, Mapping[str, Mapping[str, str]]]
"""Cloud name → region → endpoints: under :data:`~monitor.config.settings.BASE` the base URL of its schemas,
under a service type that service's catalog endpoint."""


def expand(defaults: Defaults, clouds: Sequence[CloudConfig], discovered: Discovered | None = None) -> list[TargetSpec]:
    """Every target of ``clouds`` with its effective settings, in config order (see the module docstring)."""
    discovered = discovered or {}
    specs: list[TargetSpec] = []
    for cloud in clouds:
        found = discovered.get(cloud.name)
        if found is None and not cloud.static:
            continue
        regions = list(found) if found is not None else cloud.regions
        assert isinstance(regions, list)
        for region in regions:
            endpoints = (found or {}).get(region, {})
            if cloud.schemas and (cloud.base_url(region) or endpoints.get(BASE)):
                specs += [_spec(defaults, cloud, region, schema, endpoints.get(BASE)) for schema in cloud.schemas]
            specs += [_surface_spec(defaults, cloud, region, document)
                      for service, url in sorted(endpoints.items()) if service != BASE
                      for document in catalog.documents(service, url)]  # fmt: skip
    return specs


def watches(clouds: Sequence[CloudConfig], cloud: str, schema: str) -> bool:
    """Whether ``cloud`` has targets called ``schema``: listed, or derived from its catalog (``services``)."""
    found = next((c for c in clouds if c.name == cloud), None)
    if found is None:
        return False
    return any(s.name == schema for s in found.schemas) or (
        found.services is not None and _surface_schema(schema) is not None
    )


def spec_for(defaults: Defaults, clouds: Sequence[CloudConfig], key: TargetKey) -> TargetSpec:
    """The settings of ``key`` for read-only commands, even for a discovered region (URL may be empty).

    Raises LookupError when the cloud or schema is not configured, or the region is not one of a
    cloud's listed regions.
    """
    cloud = next((c for c in clouds if c.name == key.cloud), None)
    schema = next((s for s in cloud.schemas if s.name == key.schema), None) if cloud else None
    if cloud is not None and schema is None and cloud.services is not None:
        schema = _surface_schema(key.schema)
    listed = cloud is not None and (not isinstance(cloud.regions, list) or cloud.lists(key.region))
    if cloud is None or schema is None or not listed:
        raise LookupError(f"{key} is not a target in the configuration")
    return _spec(defaults, cloud, key.region, schema, "")


def _spec(defaults: Defaults, cloud: CloudConfig, region: str, schema: SchemaConfig, base: str | None) -> TargetSpec:
    return TargetSpec(
        key=TargetKey(cloud.name, region, schema.name),
        url=_url(cloud, region, schema, base),
        allow_http=cloud.allow_http,
        tls=cloud.tls,
        auth=cloud.credentials(),
        ignore=_ignore_rules(cloud.ignore, schema.ignore),
        kind=schema.kind,
        service=schema.service or (schema.name if schema.kind == "versions" else None),
        keep_hosts=schema.keep_hosts,
        **_effective(defaults, cloud, schema),
    )


def _surface_spec(defaults: Defaults, cloud: CloudConfig, region: str, document: catalog.SurfaceDocument) -> TargetSpec:
    """The target of one catalog-derived API-surface document."""
    schema = SchemaConfig(name=document.name, path="/", kind=document.kind,  # type: ignore[arg-type]
                          service=document.service)  # fmt: skip
    return replace(_spec(defaults, cloud, region, schema, ""), url=document.url)


def _surface_schema(name: str) -> SchemaConfig | None:
    """The settings of a catalog-derived target from its name (for read-only commands), None for another name."""
    for suffix, kind in (("-versions", "versions"), ("-extensions", "extensions")):
        if name.endswith(suffix):
            return SchemaConfig(name=name, path="/", kind=kind, service=name.removesuffix(suffix))  # type: ignore[arg-type]
    if name.startswith("image-info-"):
        return SchemaConfig(name=name, path="/", kind="json", service="image")
    return None


def _url(cloud: CloudConfig, region: str, schema: SchemaConfig, base: str | None) -> str:
    try:
        return cloud.url_for(region, schema, base or None)
    except LookupError:
        if base == "":  # spec_for(): read-only commands need the settings, not the URL
            return ""
        raise


def _ignore_rules(cloud: IgnoreConfig | None, schema: IgnoreConfig | None) -> IgnoreRules:
    """Cloud and schema rules together; the schema's min_severity wins over the cloud's."""
    parts = [part for part in (cloud, schema) if part is not None]
    floor = next((p.min_severity for p in reversed(parts) if p.min_severity is not None), None)
    return IgnoreRules(
        paths=tuple(path for p in parts for path in p.paths),
        patterns=tuple(pattern for p in parts for pattern in p.patterns),
        min_severity=Severity(floor) if floor else None,
    )


def _effective(defaults: Defaults, cloud: CloudConfig, schema: SchemaConfig) -> dict[str, Any]:
    fields = PollSettings.model_fields
    return {
        name: next(v for v in (getattr(schema, name), getattr(cloud, name), getattr(defaults, name)) if v is not None)
        for name in fields
    }
