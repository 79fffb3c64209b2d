"""YAML + environment → a frozen, typed configuration.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` whose message lists every
problem found, each as ``<file>: <field>: <what is wrong>``. ``${VAR}`` in any string is replaced from the
environment; keys ending in ``_file`` read a secret from a file. Secrets are held as ``SecretStr`` so that
no ``repr``, log line or error message shows them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.config import catalog
from monitor.config.auth import (
    REGION_PLACEHOLDER,
    AkSkAuth,
    ApplicationCredentialAuth,
    CloudsYamlAuth,
    KeystoneAuth,
    NoAuth,
    PasswordAuth,
    TokenAuth,
    default_type,
)
from monitor.config.types import (
    ChannelName,
    CloudName,
    Duration,
    Model,
    PositiveDuration,
    SchemaName,
    Size,
    check_region,
    parse_duration,
    require_unique,
)
from monitor.domain import IgnoreRules, Severity, TargetKey, TargetSpec, TlsSettings

DEFAULT_DATABASE_URL = "sqlite:///./data/schemadrift.db"
DEFAULT_LISTEN = "127.0.0.1:9478"
SCHEMA_PATH_PREFIX = "/v2/schemas/"
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one line per invalid entry."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


class DatabaseConfig(Model):
    """Where snapshots live. ``url`` (or ``url_file``) may embed a password; it is never logged unmasked."""

    url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    url_file: Path | None = None
    poll_retention: PositiveDuration = parse_duration("30d")
    secret_files = ("url",)

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        try:
            urlsplit(url).port  # noqa: B018 - parsing the port is the check
        except ValueError:
            raise ValueError("is not a valid database URL (check the host:port part)") from None
        return value


class HttpConfig(Model):
    """The daemon's own HTTP listener (/metrics, /healthz, /readyz).

    ``web_config_file`` names a Prometheus exporter-toolkit web configuration (TLS, basic auth, headers) for the
    whole port (:mod:`monitor.config.webconfig`); ``--web.config.file`` on the command line wins over it.
    """

    listen: str = DEFAULT_LISTEN
    web_config_file: Path | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


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


class PollingConfig(Model):
    """Process-wide polling limits."""

    max_concurrency: Annotated[int, Field(ge=1, le=10000)] = 100
    shutdown_grace: Duration = 10.0


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
    include: str | None = None
    exclude: str | None = None

    @field_validator("include", "exclude")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
        return value

    def wants(self, region: str) -> bool:
        """Whether a discovered region passes ``include`` and ``exclude``."""
        if self.include is not None and not re.fullmatch(self.include, region):
            return False
        return self.exclude is None or not re.fullmatch(self.exclude, region)


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
    regions: Annotated[list[str], Field(min_length=1)] | Literal["auto"] | None = None
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
    services: list[SchemaName] | Literal["all"] | None = None

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
        for label, url in self._urls():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{label} must be an https:// URL, got {url!r}")
            if url.startswith("http://") and not self.allow_http:
                raise ValueError(f"{label} uses plain http://; set allow_http: true to allow it")
        require_unique([s.name for s in self.schemas], "schema")
        if self.reference != "majority" and isinstance(self.regions, list) and self.reference not in self.regions:
            raise ValueError(f"reference must be 'majority' or one of the regions, got {self.reference!r}")
        for label, path in (("ca_bundle", self.ca_bundle), ("cert", self.cert), ("key", self.key)):
            if path is not None and not path.is_file():
                raise ValueError(f"{label} {str(path)!r} is not a readable file")
        if self.key is not None and self.cert is None:
            raise ValueError("key needs cert (the client certificate)")
        if isinstance(self.auth, CloudsYamlAuth):
            return self  # completed from clouds.yaml by resolve_clouds_yaml()
        return self._check_sources()

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


_SEVERITY_NAMES = Literal["breaking", "warning", "info", "cosmetic"]


class ChannelSettings(Model):
    """Common settings of a notification channel; ``url`` (or ``url_file``) may carry a secret."""

    name: ChannelName
    url: SecretStr
    url_file: Path | None = None
    min_severity: _SEVERITY_NAMES = "info"
    secret_files = ("url", "secret")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class WebhookChannel(ChannelSettings):
    """Generic JSON webhook; with ``secret`` each body is signed (``X-Schemadrift-Signature``)."""

    type: Literal["webhook"]
    secret: SecretStr | None = None
    secret_file: Path | None = None


class SlackChannel(ChannelSettings):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    type: Literal["slack"]


class AlertmanagerChannel(ChannelSettings):
    """Pushes alerts to Alertmanager's ``/api/v2/alerts``; re-sent while active, then resolved."""

    type: Literal["alertmanager"]
    active_for: PositiveDuration = 3600.0
    resend_interval: PositiveDuration = 60.0


ChannelConfig = Annotated[WebhookChannel | SlackChannel | AlertmanagerChannel, Field(discriminator="type")]


class NotificationsConfig(Model):
    """Built-in notifications, for teams without Alertmanager (or to push into one directly)."""

    grouping_window: Duration = 30.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    retry_backoff: PositiveDuration = 5.0
    retry_backoff_max: PositiveDuration = 600.0
    request_timeout: PositiveDuration = 10.0
    link_template: str | None = None
    channels: list[ChannelConfig] = Field(default_factory=list)

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, value: list[ChannelConfig]) -> list[ChannelConfig]:
        require_unique([c.name for c in value], "channel")
        return value


class ApiConfig(Model):
    """The read API on the daemon's HTTP port; write endpoints (acknowledge) need ``token``."""

    enabled: bool = True
    token: SecretStr | None = None
    token_file: Path | None = None
    secret_files = ("token",)


class HaConfig(Model):
    """Several replicas on one PostgreSQL share the targets (see docs/high-availability.md).

    Each replica heartbeats every ``heartbeat``; a target's lease lives ``lease_ttl`` and is renewed at every
    heartbeat, so a replica that dies loses its targets after at most ``lease_ttl``. ``replica`` names this
    process (default: host name and pid; in Kubernetes the pod name). ``expected_replicas`` is exported for the
    "fewer replicas than expected" alert. On SQLite there is one process per database file, always.
    """

    replica: str | None = None
    lease_ttl: PositiveDuration = 30.0
    heartbeat: PositiveDuration = 2.0
    expected_replicas: Annotated[int, Field(ge=1, le=100)] = 1

    @field_validator("replica")
    @classmethod
    def _valid_replica(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}", value):
            raise ValueError(f"invalid replica name {value!r}: letters, digits, '.', '_', ':' or '-' (max 63)")
        return value

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> HaConfig:
        if self.heartbeat * 3 > self.lease_ttl:
            raise ValueError("heartbeat must be at most a third of lease_ttl (a lease is renewed at every heartbeat)")
        return self


class UiConfig(Model):
    """The web UI under ``/ui/`` on the daemon's HTTP port (it shows what the read API shows, never a credential).

    ``base_url`` is how people reach it (``https://drift.example.org``); notifications and alert links use it.
    """

    enabled: bool = True
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


class ExpectedWindowConfig(Model):
    """A window in which changes to a cloud (and schema) are expected: recorded, acknowledged, not paged."""

    cloud: str
    schema_name: str | None = Field(default=None, alias="schema")
    start: datetime
    end: datetime
    comment: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> ExpectedWindowConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a time zone, e.g. 2026-12-01T02:00:00Z")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ChangesConfig(Model):
    """How recorded changes become drift, deviations, rollouts and flapping."""

    flapping_window: PositiveDuration = 3600.0
    flapping_threshold: Annotated[int, Field(ge=2, le=100)] = 3
    drift_refresh: PositiveDuration = 15.0
    expected: list[ExpectedWindowConfig] = Field(default_factory=list)


class Config(Model):
    """The whole configuration file."""

    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    defaults: Defaults = Defaults()
    polling: PollingConfig = PollingConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    changes: ChangesConfig = ChangesConfig()
    api: ApiConfig = ApiConfig()
    ui: UiConfig = UiConfig()
    ha: HaConfig = HaConfig()
    clouds: list[CloudConfig] = Field(default_factory=list)

    @field_validator("clouds")
    @classmethod
    def _unique_clouds(cls, value: list[CloudConfig]) -> list[CloudConfig]:
        require_unique([c.name for c in value], "cloud")
        return value

    @model_validator(mode="after")
    def _windows_name_known_targets(self) -> Config:
        clouds = {c.name: {s.name for s in c.schemas} for c in self.clouds}
        for window in self.changes.expected:
            if window.cloud not in clouds:
                raise ValueError(f"changes.expected: unknown cloud {window.cloud!r}")
            if window.schema_name is not None and window.schema_name not in clouds[window.cloud]:
                raise ValueError(f"changes.expected: cloud {window.cloud!r} has no schema {window.schema_name!r}")
        return self

    def notification_settings(self) -> NotificationsConfig:
        """``notifications`` with its effective ``link_template``: the configured one; else, when the UI is on
        and ``ui.base_url`` is set, the change permalink ``<ui.base_url>/ui/changes/{change_id}``; else None."""
        if self.notifications.link_template is not None or not self.ui.enabled or self.ui.base_url is None:
            return self.notifications
        permalink = f"{self.ui.base_url}/ui/changes/{{change_id}}"
        return self.notifications.model_copy(update={"link_template": permalink})

    def targets(self, discovered: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None) -> list[TargetSpec]:
        """Every (cloud, region, schema) with its effective settings, in config order.

        ``discovered`` maps a cloud name to its regions' endpoints as found in the identity service
        (:mod:`monitor.targets.discovery`): under :data:`BASE` the base URL of its schemas, under a service type
        that service's catalog endpoint (for ``services``: :mod:`monitor.config.catalog` derives their targets). A
        cloud whose regions or URLs come from there has no targets until it is given.
        """
        discovered = discovered or {}
        specs: list[TargetSpec] = []
        for cloud in self.clouds:
            found = discovered.get(cloud.name)
            if found is None and not cloud.static:
                continue
            regions = list(found) if found is not None else cloud.regions
            assert isinstance(regions, list)
            for region in regions:
                endpoints = (found or {}).get(region, {})
                if cloud.schemas and (cloud.base_url(region) or endpoints.get(BASE)):
                    specs += [_spec(self.defaults, cloud, region, schema, endpoints.get(BASE))
                              for schema in cloud.schemas]  # fmt: skip
                specs += [_surface_spec(self.defaults, cloud, region, document)
                          for service, url in sorted(endpoints.items()) if service != BASE
                          for document in catalog.documents(service, url)]  # fmt: skip
        return specs

    def watches(self, cloud: str, schema: str) -> bool:
        """Whether ``cloud`` has targets called ``schema``: listed, or derived from its catalog (``services``)."""
        found = next((c for c in self.clouds if c.name == cloud), None)
        if found is None:
            return False
        return any(s.name == schema for s in found.schemas) or (
            found.services is not None and _surface_schema(schema) is not None
        )

    def spec_for(self, key: TargetKey) -> TargetSpec:
        """The settings of ``key`` for read-only commands, even for a discovered region (URL may be empty).

        Raises LookupError when the cloud or schema is not configured, or the region is not one of a
        cloud's listed regions.
        """
        cloud = next((c for c in self.clouds if c.name == key.cloud), None)
        schema = next((s for s in cloud.schemas if s.name == key.schema), None) if cloud else None
        if cloud is not None and schema is None and cloud.services is not None:
            schema = _surface_schema(key.schema)
        listed = cloud is not None and (not isinstance(cloud.regions, list) or key.region in cloud.regions)
        if cloud is None or schema is None or not listed:
            raise LookupError(f"{key} is not a target in the configuration")
        return _spec(self.defaults, cloud, key.region, schema, "")


def _spec(defaults: Defaults, cloud: CloudConfig, region: str, schema: SchemaConfig, base: str | None) -> TargetSpec:
    assert not isinstance(cloud.auth, CloudsYamlAuth), "resolve_clouds_yaml() runs first"
    return TargetSpec(
        key=TargetKey(cloud.name, region, schema.name),
        url=_url(cloud, region, schema, base),
        allow_http=cloud.allow_http,
        tls=cloud.tls,
        auth=cloud.auth,
        ignore=_ignore_rules(cloud.ignore, schema.ignore),
        kind=schema.kind,
        service=schema.service or (schema.name if schema.kind == "versions" else None),
        keep_hosts=schema.keep_hosts,
        **_effective(defaults, cloud, schema),
    )


BASE = "_schemas"
"""The key of a region's discovered endpoints under which the base URL of its schemas is."""


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


# --- loading ---------------------------------------------------------------------------------------


def _substitute_env(node: Any, path: str, problems: list[str]) -> Any:
    """Replace ``${VAR}`` in every string; ``*_file`` keys are left for the models to read."""
    if isinstance(node, dict):
        return {k: _substitute_env(v, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_env(v, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_RE.sub(repl, node)
    return node


_UNION_TAGS = frozenset({"none", "token", "password", "application_credential", "aksk", "cloud"})


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or str(part).startswith("function-before["):
            continue  # pydantic's names for union branches and wrappers: not fields the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_error(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{_format_location(tuple(error['loc']))}: {message}"


def _secret_problems(config: Config) -> list[str]:
    problems = []
    for i, cloud in enumerate(config.clouds):
        if isinstance(cloud.auth, TokenAuth):
            try:
                cloud.auth.resolve()
            except ValueError as exc:
                problems.append(f"clouds[{i}].auth: {exc}")
    return problems


@dataclass(frozen=True, slots=True)
class CloudsYamlCloud:
    """What clouds.yaml (+ secure.yaml, or ``OS_*``) says about one cloud; built by :mod:`monitor.auth.clouds`.

    ``where`` names the cloud and the file it came from, for messages.
    """

    where: str
    auth: PasswordAuth | ApplicationCredentialAuth | TokenAuth
    regions: list[str]
    endpoint_override: str | None = None
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False
    interface: str | None = None


CloudsYamlReader = Callable[[str | None], CloudsYamlCloud]
"""Reads one cloud of clouds.yaml by name (None: ``OS_CLOUD`` / ``OS_*``); raises ValueError without secrets.

:func:`monitor.auth.clouds.resolve` is the one implementation; it needs openstacksdk, so the caller passes it in.
"""

NO_CLOUDS_YAML = "type cloud needs openstacksdk: pip install 'schema-drift-monitor[openstack]'"


def resolve_clouds_yaml(config: Config, reader: CloudsYamlReader | None) -> tuple[Config, list[str]]:
    """Replace every ``auth: {type: cloud}`` by what ``reader`` finds in clouds.yaml; returns problems found."""
    problems: list[str] = []
    clouds = list(config.clouds)
    for i, cloud in enumerate(clouds):
        if not isinstance(cloud.auth, CloudsYamlAuth):
            continue
        try:
            if reader is None:
                raise ValueError(NO_CLOUDS_YAML)
            clouds[i] = apply_clouds_yaml(cloud, reader(cloud.auth.cloud))
        except ValueError as exc:
            problems.append(f"clouds[{i}].auth: {exc}")
    return config.model_copy(update={"clouds": clouds}), problems


def apply_clouds_yaml(cloud: CloudConfig, found: CloudsYamlCloud) -> CloudConfig:
    """``cloud`` with its ``auth: {type: cloud}`` replaced by ``found``, validated like any other cloud.

    Regions, endpoint, TLS settings and the discovery interface are taken from clouds.yaml only where the
    config leaves them unset. Raises ValueError (without a secret) when the completed cloud is invalid.
    """
    completed = cloud.model_copy(update=_clouds_yaml_update(cloud, found))
    try:
        # model_copy() does not validate: every check of CloudConfig runs on the completed copy
        return CloudConfig.model_validate(dict(completed))
    except ValidationError as exc:
        raise ValueError(f"{found.where}: {'; '.join(_format_error(e) for e in exc.errors())}") from None


def _clouds_yaml_update(cloud: CloudConfig, found: CloudsYamlCloud) -> dict[str, Any]:
    """The CloudConfig fields to change: the auth, and whatever the config leaves unset."""
    update: dict[str, Any] = {"auth": found.auth}
    if cloud.regions is None and found.regions:
        update["regions"] = found.regions
    if found.endpoint_override and cloud.endpoint is None and cloud.endpoint_override is None:
        update["endpoint_override"] = found.endpoint_override
    if found.cacert and cloud.ca_bundle is None:
        update["ca_bundle"] = found.cacert
    if (found.cert or found.key) and cloud.cert is None and cloud.key is None:
        update["cert"], update["key"] = found.cert, found.key
    if found.insecure and "insecure" not in cloud.model_fields_set:
        update["insecure"] = True
    if found.interface is not None and "interface" not in cloud.discovery.model_fields_set:
        update["discovery"] = cloud.discovery.model_copy(update={"interface": found.interface})
    return update


def parse_config(data: Any, source: str = "<config>", clouds_yaml: CloudsYamlReader | None = None) -> Config:
    """Validate already-parsed YAML data; raises ConfigError listing every problem.

    ``clouds_yaml`` reads clouds for ``auth: {type: cloud}`` (without it, such a cloud is a problem).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of sections"])
    problems: list[str] = []
    substituted = _substitute_env(data, "", problems)
    try:
        config = Config.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(source, problems + [_format_error(e) for e in exc.errors()]) from None
    config, found = resolve_clouds_yaml(config, clouds_yaml)
    problems += found + _secret_problems(config)
    if not config.clouds:
        problems.append("clouds: at least one cloud is needed")
    if problems:
        raise ConfigError(source, problems)
    return config


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's excerpt of the line (it may hold a secret)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def load_config(path: str | Path, clouds_yaml: CloudsYamlReader | None = None) -> Config:
    """Read and validate the YAML file at ``path``; raises ConfigError (never a bare exception).

    ``clouds_yaml`` as for :func:`parse_config`.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {_yaml_problem(exc)}"]) from None
    return parse_config(data, source, clouds_yaml)
