"""The configuration file's sections as frozen pydantic models, and :class:`Config`, the whole file.

The clouds and the poll settings are :mod:`monitor.config.cloud`; the auth section :mod:`monitor.config.auth`;
:meth:`Config.targets` expands the clouds into targets (:mod:`monitor.config.targets`).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.config import targets as expansion
from monitor.config.cloud import CloudConfig, Defaults
from monitor.config.consumers import ConsumerConfig
from monitor.config.errors import FieldProblem
from monitor.config.targets import Discovered
from monitor.config.types import ChannelName, Duration, Model, PositiveDuration, parse_duration, require_unique
from monitor.domain import MetricsDetail, TargetKey, TargetSpec

DEFAULT_DATABASE_URL = "sqlite:///./data/schemadrift.db"
DEFAULT_LISTEN = "127.0.0.1:9478"


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
            raise ValueError("must start with sqlite://, postgresql:// or postgresql+psycopg://")
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


class PollingConfig(Model):
    """Process-wide polling limits."""

    max_concurrency: Annotated[int, Field(ge=1, le=10000)] = 100
    shutdown_grace: Duration = 10.0
    conditional: bool = True  # quote the ETag / Last-Modified a server sent (monitor.poll.conditional)


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


class MetricsConfig(Model):
    """What ``/metrics`` exports per target (docs/metrics-and-alerts.md#series-per-target).

    ``basic`` (default): the series the shipped alerts and dashboard use, 9 per target; ``full`` adds the
    detail series (polls, last poll time and duration, document size and properties, every severity at zero,
    each API version's status and minimum microversion): 20 per target.
    """

    detail: MetricsDetail = "basic"


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
    metrics: MetricsConfig = MetricsConfig()
    api: ApiConfig = ApiConfig()
    ui: UiConfig = UiConfig()
    ha: HaConfig = HaConfig()
    clouds: list[CloudConfig] = Field(default_factory=list)
    consumers: list[ConsumerConfig] = Field(default_factory=list)  # checked against the clouds when loaded

    @field_validator("clouds")
    @classmethod
    def _unique_clouds(cls, value: list[CloudConfig]) -> list[CloudConfig]:
        require_unique([c.name for c in value], "cloud")
        return value

    @field_validator("consumers")
    @classmethod
    def _unique_consumers(cls, value: list[ConsumerConfig]) -> list[ConsumerConfig]:
        require_unique([c.name for c in value], "consumer")
        return value

    @model_validator(mode="after")
    def _windows_name_known_targets(self) -> Config:
        clouds = {c.name: {s.name for s in c.schemas} for c in self.clouds}
        for window in self.changes.expected:
            if window.cloud not in clouds:
                raise FieldProblem("changes.expected", f"unknown cloud {window.cloud!r}")
            if window.schema_name is not None and window.schema_name not in clouds[window.cloud]:
                raise FieldProblem("changes.expected", f"cloud {window.cloud!r} has no schema {window.schema_name!r}")
        return self

    def notification_settings(self) -> NotificationsConfig:
        """``notifications`` with its effective ``link_template``: the configured one; else, when the UI is on
        and ``ui.base_url`` is set, the change permalink ``<ui.base_url>/ui/changes/{change_id}``; else None."""
        if self.notifications.link_template is not None or not self.ui.enabled or self.ui.base_url is None:
            return self.notifications
        permalink = f"{self.ui.base_url}/ui/changes/{{change_id}}"
        return self.notifications.model_copy(update={"link_template": permalink})

    def targets(self, discovered: Discovered | None = None) -> list[TargetSpec]:
        """Every (cloud, region, schema) with its effective settings, in config order.

        ``discovered`` maps a cloud name to its regions' endpoints as found in the identity service
        (:mod:`monitor.targets.discovery`): under :data:`~monitor.config.settings.BASE` the base URL of its schemas,
        under a service type that service's catalog endpoint (for ``services``: :mod:`monitor.config.catalog`
        derives their targets). A cloud whose regions or URLs come from there has no targets until it is given.
        """
        return expansion.expand(self.defaults, self.clouds, discovered)

    def watches(self, cloud: str, schema: str) -> bool:
        """Whether ``cloud`` has targets called ``schema``: listed, or derived from its catalog (``services``)."""
        return expansion.watches(self.clouds, cloud, schema)

    def spec_for(self, key: TargetKey) -> TargetSpec:
        """The settings of ``key`` for read-only commands, even for a discovered region (URL may be empty).

        Raises LookupError when the cloud or schema is not configured, or the region is not one of a
        cloud's listed regions.
        """
        return expansion.spec_for(self.defaults, self.clouds, key)
