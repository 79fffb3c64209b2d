"""YAML + environment → a frozen, typed configuration.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` whose message lists every
problem found, each as ``<file>: <field>: <what is wrong>``. ``${VAR}`` in any string is replaced from the
environment; keys ending in ``_file`` read a secret from a file. Secrets are held as ``SecretStr`` so that
no ``repr``, log line or error message shows them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url

from monitor.domain import IgnoreRules, Severity, TargetKey

DEFAULT_DATABASE_URL = "sqlite:///./data/schemadrift.db"
DEFAULT_LISTEN = "127.0.0.1:9478"
SCHEMA_PATH_PREFIX = "/v2/schemas/"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")  # what an HTTP header value can carry unencoded
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one line per invalid entry."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


def parse_duration(value: Any) -> float:
    """Seconds from ``300``, ``"300s"``, ``"5m"``, ``"1.5h"``, ``"250ms"`` or ``"30d"``; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 300s, 5m or 1h")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 300s, 5m or 1h, got {value!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: Any) -> int:
    """Bytes from ``5242880``, ``"5MiB"`` or ``"512KB"``; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 5242880 or 5MiB")
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like 5242880 or 5MiB, got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


def _require_unique(names: list[str], what: str) -> None:
    """Raises ValueError naming the first ``what`` listed twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is listed twice")
        seen.add(name)


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"invalid {what} name {value!r}: use lowercase letters, digits, '.', '_' or '-' (max 63)")
    return value


def _read_secret_files(data: Any, keys: tuple[str, ...]) -> Any:
    """For each ``key`` given as ``<key>_file``, read the file (stripped) into ``key``; raises ValueError."""
    if not isinstance(data, dict):
        return data
    for key in keys:
        path = data.get(f"{key}_file")
        if path is None:
            continue
        if data.get(key) is not None:
            raise ValueError(f"give {key} or {key}_file, not both")
        try:
            data = {**data, key: Path(path).read_text(encoding="utf-8").strip()}
        except OSError as exc:
            raise ValueError(f"cannot read {key}_file {str(path)!r}: {exc.strerror}") from None
    return data


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Model):
    """Where snapshots live. ``url`` (or ``url_file``) may embed a password; it is never logged unmasked."""

    url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    url_file: Path | None = None
    poll_retention: PositiveDuration = parse_duration("30d")

    @model_validator(mode="before")
    @classmethod
    def _read_url_file(cls, data: Any) -> Any:
        return _read_secret_files(data, ("url",))

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        try:
            make_url(url).port  # noqa: B018 - parsing the port is the check
        except Exception:
            raise ValueError("is not a valid database URL (check the host:port part)") from None
        return value


class HttpConfig(_Model):
    """The daemon's own HTTP listener (/metrics, /healthz, /readyz)."""

    listen: str = DEFAULT_LISTEN

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


class PollSettings(_Model):
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


class PollingConfig(_Model):
    """Process-wide polling limits."""

    max_concurrency: Annotated[int, Field(ge=1, le=10000)] = 100
    shutdown_grace: Duration = 10.0


class IgnoreConfig(_Model):
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
    """A schema endpoint: ``/v2/schemas/<name>`` unless ``path`` says otherwise."""

    name: str
    path: str | None = None
    ignore: IgnoreConfig | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value, "schema")

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


class NoAuth(_Model):
    type: Literal["none"]


class TokenAuth(_Model):
    """A static token sent as ``X-Auth-Token``; give ``token`` (``${ENV}`` allowed) or ``token_file``."""

    type: Literal["token"]
    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TokenAuth:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("give exactly one of token or token_file")
        return self

    def resolve(self) -> str:
        """The token text; raises ValueError when the file cannot be read or is empty."""
        if self.token is not None:
            secret = self.token.get_secret_value()
        else:
            assert self.token_file is not None
            try:
                secret = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read token_file {str(self.token_file)!r}: {exc.strerror}") from None
        if not secret:
            raise ValueError("token is empty")
        if not _TOKEN_RE.match(secret):
            # never echo the token: it may be a real secret with a stray newline or quote
            raise ValueError("token contains whitespace, control or non-ASCII characters")
        return secret


AuthConfig = Annotated[NoAuth | TokenAuth, Field(discriminator="type")]


class CloudConfig(PollSettings):
    """One cloud: an endpoint template, its regions and the schemas to watch in each."""

    name: str
    endpoint: str
    regions: Annotated[list[str], Field(min_length=1)]
    schemas: list[Annotated[SchemaConfig, BeforeValidator(_schema_from_string)]] = Field(
        default_factory=lambda: [SchemaConfig(name=n) for n in ("images", "image", "members", "member")]
    )
    auth: AuthConfig = NoAuth(type="none")
    allow_http: bool = False
    ca_bundle: Path | None = None
    ignore: IgnoreConfig | None = None
    reference: str = "majority"  # cross-region comparison: "majority" or one of the regions

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value, "cloud")

    @field_validator("regions")
    @classmethod
    def _valid_regions(cls, value: list[str]) -> list[str]:
        for region in value:
            _check_name(region, "region")
        _require_unique(value, "region")
        return value

    @model_validator(mode="after")
    def _endpoint_scheme(self) -> CloudConfig:
        if not self.endpoint.startswith(("https://", "http://")):
            raise ValueError(f"endpoint must be an https:// URL, got {self.endpoint!r}")
        if self.endpoint.startswith("http://") and not self.allow_http:
            raise ValueError("endpoint uses plain http://; set allow_http: true to allow it")
        _require_unique([s.name for s in self.schemas], "schema")
        if self.reference != "majority" and self.reference not in self.regions:
            raise ValueError(f"reference must be 'majority' or one of the regions, got {self.reference!r}")
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise ValueError(f"ca_bundle {str(self.ca_bundle)!r} is not a readable file")
        return self

    def url_for(self, region: str, schema: SchemaConfig) -> str:
        return self.endpoint.replace("{region}", region).rstrip("/") + schema.url_path


_SEVERITY_NAMES = Literal["breaking", "warning", "info", "cosmetic"]


class ChannelSettings(_Model):
    """Common settings of a notification channel; ``url`` (or ``url_file``) may carry a secret."""

    name: str
    url: SecretStr
    url_file: Path | None = None
    min_severity: _SEVERITY_NAMES = "info"

    @model_validator(mode="before")
    @classmethod
    def _read_url_file(cls, data: Any) -> Any:
        return _read_secret_files(data, ("url", "secret"))

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _check_name(value, "channel")

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


class NotificationsConfig(_Model):
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
        _require_unique([c.name for c in value], "channel")
        return value


class ApiConfig(_Model):
    """The read API on the daemon's HTTP port; write endpoints (acknowledge) need ``token``."""

    enabled: bool = True
    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_token_file(cls, data: Any) -> Any:
        return _read_secret_files(data, ("token",))


class ExpectedWindowConfig(_Model):
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


class ChangesConfig(_Model):
    """How recorded changes become drift, deviations, rollouts and flapping."""

    flapping_window: PositiveDuration = 3600.0
    flapping_threshold: Annotated[int, Field(ge=2, le=100)] = 3
    drift_refresh: PositiveDuration = 15.0
    expected: list[ExpectedWindowConfig] = Field(default_factory=list)


class Config(_Model):
    """The whole configuration file."""

    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    defaults: Defaults = Defaults()
    polling: PollingConfig = PollingConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    changes: ChangesConfig = ChangesConfig()
    api: ApiConfig = ApiConfig()
    clouds: list[CloudConfig] = Field(default_factory=list)

    @field_validator("clouds")
    @classmethod
    def _unique_clouds(cls, value: list[CloudConfig]) -> list[CloudConfig]:
        _require_unique([c.name for c in value], "cloud")
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

    def targets(self) -> list[TargetSpec]:
        """Every (cloud, region, schema) with its effective settings, in config order."""
        return [spec for cloud in self.clouds for spec in _cloud_targets(self.defaults, cloud)]


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A target with every setting resolved (schema over cloud over defaults)."""

    key: TargetKey
    url: str
    interval: float
    timeout: float
    jitter: float
    max_body_bytes: int
    retries: int
    retry_after_cap: float
    allow_http: bool
    ca_bundle: Path | None
    auth: NoAuth | TokenAuth
    confirm_reads: int = 1
    confirm_delay: float = 0.0
    ignore: IgnoreRules = field(default_factory=IgnoreRules)


def _cloud_targets(defaults: Defaults, cloud: CloudConfig) -> Iterator[TargetSpec]:
    for region in cloud.regions:
        for schema in cloud.schemas:
            yield TargetSpec(
                key=TargetKey(cloud.name, region, schema.name),
                url=cloud.url_for(region, schema),
                allow_http=cloud.allow_http,
                ca_bundle=cloud.ca_bundle,
                auth=cloud.auth,
                ignore=_ignore_rules(cloud.ignore, schema.ignore),
                **_effective(defaults, cloud, schema),
            )


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


def _format_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("none", "token", "function-before[_schema_from_string(), SchemaConfig]"):
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


def parse_config(data: Any, source: str = "<config>") -> Config:
    """Validate already-parsed YAML data; raises ConfigError listing every problem."""
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
    problems += _secret_problems(config)
    if not config.clouds:
        problems.append("clouds: at least one cloud is needed")
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML file at ``path``; raises ConfigError (never a bare exception)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    return parse_config(data, source)
