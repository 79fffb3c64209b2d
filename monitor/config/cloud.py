"""One entry of ``clouds:`` — where its endpoints are, its regions, credentials, TLS and schemas — and the poll
settings (``defaults``, overridden per cloud and per schema) its targets get.

:meth:`CloudConfig.settings` builds the plain :class:`~monitor.config.settings.CloudSettings` that credentials and
region discovery use; :mod:`monitor.config.targets` expands a cloud into its targets.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from monitor.config.auth import (
    AkSkAuth,
    ApplicationCredentialAuth,
    CloudsYamlAuth,
    KeystoneAuth,
    NoAuth,
    PasswordAuth,
    TokenAuth,
    default_type,
)
from monitor.config.errors import FieldProblem
from monitor.config.settings import REGION_PLACEHOLDER, CloudSettings, CredentialSettings, DiscoverySettings
from monitor.config.types import (
    CloudName,
    Duration,
    Model,
    PositiveDuration,
    Regex,
    SchemaName,
    Size,
    check_region,
    require_unique,
)
from monitor.domain import TlsSettings

SCHEMA_PATH_PREFIX = "/v2/schemas/"


class PollSettings(Model):
    """Per-poll settings; each may be set in ``defaults``, per cloud and per schema."""

    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    jitter: Duration | None = None
    max_body_bytes: Size | None = None
    retries: Annotated[int, Field(ge=0, le=10)] | None = None
    retry_after_cap: Duration | None = None
    confirm_reads: Annotated[int, Field(ge=1, le=10)] | None = None
    confirm_delay: Duration | None = None


class Defaults(PollSettings):
    """Values for every target unless a cloud or schema overrides them."""

    interval: PositiveDuration = 300.0
    timeout: PositiveDuration = 10.0
    jitter: Duration = 10.0
    max_body_bytes: Size = 5 * 2**20
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    retry_after_cap: Duration = 30.0
    confirm_reads: Annotated[int, Field(ge=1, le=10)] = 2
    confirm_delay: Duration = 2.0


class IgnoreConfig(Model):
    """Changes to ignore: JSON Pointer prefixes, path regular expressions, and a severity floor."""

    paths: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    min_severity: Literal["breaking", "warning", "info", "cosmetic"] | None = None

    @field_validator("paths")
    @classmethod
    def _pointers(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} is not a JSON Pointer (must start with '/')")
        return value

    @field_validator("patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return value


class SchemaConfig(PollSettings):
    """A watched document: ``/v2/schemas/<name>`` unless ``path`` says otherwise.

    ``kind`` says what it is (:mod:`monitor.judge.kinds`): ``schema`` (a JSON schema, the default), ``versions`` (a
    version discovery document), ``extensions`` (an extension list) or ``json`` (any JSON object); every kind
    but ``schema`` needs its ``path``. ``service`` names the API a versions document describes (the metric
    label; default: the target's name). ``keep_hosts`` keeps the hosts of links, which differ per region.
    """

    name: SchemaName
    path: str | None = None
    ignore: IgnoreConfig | None = None
    kind: Literal["schema", "versions", "extensions", "json"] = "schema"
    service: SchemaName | None = None
    keep_hosts: bool = False

    @model_validator(mode="after")
    def _path_for_kind(self) -> SchemaConfig:
        if self.kind != "schema" and self.path is None:
            raise ValueError(f"a {self.kind} document needs its path (only schemas live at /v2/schemas/<name>)")
        return self

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"must start with '/', got {value!r}")
        return value

    @property
    def url_path(self) -> str:
        return self.path or SCHEMA_PATH_PREFIX + self.name


def _schema_from_string(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def _regions_shape(value: Any) -> Any:
    """``regions`` is a list of names or ``auto``: anything else is told in one sentence, not per union branch."""
    if value is None or value == "auto":
        return value
    if not isinstance(value, list) or not all(isinstance(region, str) for region in value):
        raise ValueError("expected a list of region names, or auto")
    if not value:
        raise ValueError("lists no region: name at least one, or write auto")
    return value


def _services_shape(value: Any) -> Any:
    """``services`` is a list of service types or ``all``."""
    if value is None or value == "all" or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    raise ValueError("expected a list of service types (compute, network, ...), or all")


AuthConfig = Annotated[
    NoAuth | TokenAuth | PasswordAuth | ApplicationCredentialAuth | AkSkAuth | CloudsYamlAuth,
    BeforeValidator(default_type),
    Field(discriminator="type"),
]
TargetAuth = NoAuth | TokenAuth | PasswordAuth | ApplicationCredentialAuth | AkSkAuth
"""A target's auth once clouds.yaml has been read (see :func:`monitor.auth.clouds.resolve`)."""


class DiscoveryConfig(Model):
    """Where ``regions: auto`` comes from, and how often it is asked again.

    ``catalog``: the image endpoints of the Keystone service catalog (``interface``, ``service_type``);
    ``projects``: Huawei IAM's project list, whose project names are the region names (sub-projects,
    ``name_subproject``, and ``MOS`` are skipped). ``include``/``exclude`` filter region names.
    """

    source: Literal["catalog", "projects"] = "catalog"
    service_type: str = "image"
    interface: Literal["public", "internal", "admin"] = "public"
    refresh: PositiveDuration = 600.0
    include: Regex | None = None
    exclude: Regex | None = None

    def to_settings(self) -> DiscoverySettings:
        return DiscoverySettings(**{name: getattr(self, name) for name in DiscoverySettings.__dataclass_fields__})


class CloudConfig(PollSettings):
    """One cloud: where its endpoints are, its regions, its credentials and the schemas to watch.

    A region's base URL is ``endpoint_override``, else ``endpoint`` with ``{region}`` replaced, else the
    image endpoint of the Keystone catalog (password or application credential auth). ``regions: auto``
    asks the identity service for the region list (see :class:`DiscoveryConfig`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: CloudName
    endpoint: str | None = None
    endpoint_override: str | None = None
    regions: Annotated[list[str] | Literal["auto"] | None, BeforeValidator(_regions_shape)] = None
    discovery: DiscoveryConfig = DiscoveryConfig()
    schemas: list[Annotated[SchemaConfig, BeforeValidator(_schema_from_string)]] = Field(
        default_factory=lambda: [SchemaConfig(name=n) for n in ("images", "image", "members", "member")]
    )
    auth: AuthConfig = NoAuth(type="none")
    allow_http: bool = False
    ca_bundle: Path | None = Field(default=None, alias="cacert")
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False
    ignore: IgnoreConfig | None = None
    reference: str = "majority"  # cross-region comparison: "majority" or one of the regions
    # API surface from the catalog: these service types (or all of them) in every region (monitor.config.catalog)
    services: Annotated[list[SchemaName] | Literal["all"] | None, BeforeValidator(_services_shape)] = None

    @cached_property
    def _listed(self) -> frozenset[str]:
        return frozenset(self.regions) if isinstance(self.regions, list) else frozenset()

    def lists(self, region: str) -> bool:
        """Whether ``region`` is one of the listed ``regions`` (a set lookup: a cloud may list thousands); False
        when the regions are not a list."""
        return region in self._listed

    @model_validator(mode="before")
    @classmethod
    def _no_default_schemas_with_services(cls, data: Any) -> Any:
        """A cloud watched for its API surface watches no Glance schemas unless it lists them."""
        if isinstance(data, dict) and data.get("services") is not None and "schemas" not in data:
            return {**data, "schemas": []}
        return data

    @field_validator("regions")
    @classmethod
    def _valid_regions(cls, value: list[str] | str | None) -> list[str] | str | None:
        if isinstance(value, list):
            for region in value:  # here, not as an item type: the message then names the field, not a union branch
                check_region(region)
            require_unique(value, "region")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CloudConfig:
        self._check_urls()
        require_unique([s.name for s in self.schemas], "schema")
        if self.reference != "majority" and isinstance(self.regions, list) and self.reference not in self.regions:
            raise ValueError(f"reference must be 'majority' or one of the regions, got {self.reference!r}")
        for label, path in (("cacert", self.ca_bundle), ("cert", self.cert), ("key", self.key)):
            if path is not None and not path.is_file():
                raise FieldProblem(label, f"{str(path)!r} is not a readable file")
        if self.key is not None and self.cert is None:
            raise ValueError("key needs cert (the client certificate)")
        if isinstance(self.auth, CloudsYamlAuth):
            return self  # completed from clouds.yaml by resolve_clouds_yaml()
        return self._check_sources()

    def _check_urls(self) -> None:
        """Every URL of the cloud is https://, or http:// where ``allow_http`` says so; the message says which."""
        for label, url in self._urls():
            scheme, sep, _ = url.partition("://")
            if scheme == "https" or (scheme == "http" and self.allow_http):
                continue
            if scheme == "http":
                raise FieldProblem(label, "uses plain http://: use https://, or set allow_http: true for this cloud")
            allowed = "an http:// or https:// URL" if self.allow_http else "an https:// URL (http:// needs allow_http)"
            got = f"{scheme}://" if sep else ("nothing" if not url else "no scheme")  # the rest may hold a password
            raise FieldProblem(label, f"must be {allowed}, got {got}")

    def _urls(self) -> list[tuple[str, str]]:
        urls = [("endpoint", self.endpoint), ("endpoint_override", self.endpoint_override)]
        if isinstance(self.auth, KeystoneAuth):
            urls.append(("auth.auth_url", self.auth.auth_url))
        return [(label, url) for label, url in urls if url is not None]

    def _check_sources(self) -> CloudConfig:
        """Regions and endpoints must come from somewhere: the config or the identity service."""
        keystone = isinstance(self.auth, KeystoneAuth)
        if self.services is not None and not keystone:
            raise ValueError("services needs password or application_credential auth (they come from the catalog)")
        if self.regions is None:
            raise ValueError("regions is required (a list, or auto with password or application_credential auth)")
        if self.regions == "auto":
            if not keystone:
                raise ValueError("regions: auto needs password or application_credential auth")
            if self.discovery.source == "projects" and not self.base_url_template:
                raise ValueError("discovery.source projects needs endpoint or endpoint_override")
            if isinstance(self.auth, KeystoneAuth) and REGION_PLACEHOLDER in self.auth.auth_url:
                raise ValueError("regions: auto needs an auth_url without {region} (the regions are not known yet)")
            if self.discovery.source == "catalog" and isinstance(self.auth, KeystoneAuth) and self.auth.per_region:
                raise ValueError("discovery from the catalog needs a scope without {region}; use source: projects")
        elif not self.base_url_template and not keystone:
            raise ValueError("endpoint is required (or password/application_credential auth to use the catalog)")
        if isinstance(self.auth, AkSkAuth) and self.auth.project_ids and isinstance(self.regions, list):
            missing = [region for region in self.regions if region not in self.auth.project_ids]
            if missing:
                raise ValueError(f"auth.project_ids has no project for region(s) {', '.join(missing)}")
        return self

    @property
    def tls(self) -> TlsSettings:
        """The cloud's TLS settings, for its polls and its identity service."""
        return TlsSettings(self.ca_bundle, self.cert, self.key, self.insecure)

    @property
    def base_url_template(self) -> str | None:
        """The configured base URL (``endpoint_override`` wins over ``endpoint``); None: from the catalog."""
        return self.endpoint_override or self.endpoint

    @property
    def static(self) -> bool:
        """True when regions and URLs are all in the config (no identity service needed to find them)."""
        return isinstance(self.regions, list) and self.base_url_template is not None and self.services is None

    def base_url(self, region: str) -> str | None:
        """The region's base URL from the config (None when it must come from the catalog)."""
        template = self.base_url_template
        return template.replace("{region}", region).rstrip("/") if template else None

    def url_for(self, region: str, schema: SchemaConfig, base_url: str | None = None) -> str:
        """The schema's URL in ``region``; ``base_url`` is the discovered one, used when none is configured."""
        base = self.base_url(region) or base_url
        if base is None:
            raise LookupError(f"cloud {self.name!r}: no endpoint known for region {region!r}")
        return base.rstrip("/") + schema.url_path

    def credentials(self) -> CredentialSettings:
        """The plain settings of the cloud's credentials (clouds.yaml must have been read)."""
        assert not isinstance(self.auth, CloudsYamlAuth), "resolve_clouds_yaml() runs when the config loads"
        return self.auth.to_settings()

    def settings(self) -> CloudSettings:
        """The plain settings credentials and region discovery use (clouds.yaml must have been read)."""
        return CloudSettings(
            name=self.name,
            auth=self.credentials(),
            tls=self.tls,
            regions=tuple(self.regions) if isinstance(self.regions, list) else None,
            discovery=self.discovery.to_settings(),
            services=tuple(self.services) if isinstance(self.services, list) else self.services,
            watches_schemas=bool(self.schemas),
            endpoint=self.base_url_template,
            allow_http=self.allow_http,
        )
