"""Plain, frozen settings the configuration hands to the credentials and to region discovery; standard library only.

The pydantic models (:mod:`monitor.config.models`, :mod:`monitor.config.cloud`, :mod:`monitor.config.auth`) check
what the user wrote; what they build from it for :mod:`monitor.auth` and :mod:`monitor.targets.discovery` lives
here, as :class:`~monitor.domain.TargetSpec` does for the polls. So those packages import neither pydantic nor the
models (an import-linter contract holds it), and this module imports nothing but the standard library and the
domain.

Secrets are :class:`Secret`: ``repr``, ``str`` and ``format`` never show them; :meth:`Secret.get_secret_value` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Self

from monitor.domain import TlsSettings

REGION_PLACEHOLDER = "{region}"
"""Replaced by each region's name in endpoints, identity URLs and project fields."""

REGION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")  # OpenStack's default region is RegionOne
TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")  # what an HTTP header value can carry unencoded

BASE = "_schemas"
"""The key of a region's discovered endpoints under which the base URL of its schemas is."""


class Secret:
    """A secret string that never prints itself (``repr``, ``str``, f-strings, log arguments, tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself: only for the request that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))


@dataclass(frozen=True, slots=True)
class NoAuthSettings:
    """No credentials: a public endpoint, or a simulator without a token."""

    @property
    def type(self) -> str:
        return "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSettings:
    """A static token sent as ``X-Auth-Token``: ``token``, or ``token_file`` re-read at every :meth:`resolve`."""

    token: Secret | None = None
    token_file: Path | None = None

    @property
    def type(self) -> str:
        return "token"

    def resolve(self) -> str:
        """The token text; raises ValueError (never showing the token) when the file cannot be read, or the
        token is empty or holds characters an HTTP header cannot carry."""
        if self.token is not None:
            secret = self.token.get_secret_value()
        else:
            assert self.token_file is not None, "the configuration gives token or token_file"
            try:
                secret = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read token_file {str(self.token_file)!r}: {exc.strerror}") from None
        if not secret:
            raise ValueError("token is empty")
        if not TOKEN_RE.match(secret):
            # never echo the token: it may be a real secret with a stray newline or quote
            raise ValueError("token contains whitespace, control or non-ASCII characters")
        return secret


@dataclass(frozen=True, slots=True, kw_only=True)
class KeystoneSettings:
    """What Keystone v3 / Huawei IAM authentication needs besides the credential: where, scope, timeout.

    ``{region}`` in ``auth_url``, ``project_name`` and ``project_id`` is replaced by :meth:`for_region`.
    """

    auth_url: str
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_name: str | None = None
    project_id: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None
    domain_name: str | None = None
    domain_id: str | None = None
    timeout: float = 10.0

    @property
    def per_region(self) -> bool:
        """True when the identity URL or the project scope differs per region."""
        return any(REGION_PLACEHOLDER in (v or "") for v in (self.auth_url, self.project_name, self.project_id))

    def for_region(self, region: str) -> Self:
        """A copy with ``{region}`` replaced in the URL and the project fields."""
        return replace(
            self,
            auth_url=self.auth_url.replace(REGION_PLACEHOLDER, region),
            project_name=_fill(self.project_name, region),
            project_id=_fill(self.project_id, region),
        )

    def domain_scoped(self) -> Self:
        """A copy scoped to the user's domain instead of a project (to list the user's projects)."""
        return replace(
            self, project_name=None, project_id=None, domain_name=self.user_domain_name, domain_id=self.user_domain_id
        )

    def scope_label(self) -> str:
        """A short description of the scope for log lines (names and ids are not secrets)."""
        if self.project_id or self.project_name:
            return f"project {self.project_id or self.project_name}"
        if self.domain_id or self.domain_name:
            return f"domain {self.domain_id or self.domain_name}"
        return "unscoped"


def _fill(template: str | None, region: str) -> str | None:
    return template.replace(REGION_PLACEHOLDER, region) if template is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordSettings(KeystoneSettings):
    """Keystone v3 password authentication (OpenStack Keystone, Huawei Cloud IAM)."""

    username: str | None = None
    user_id: str | None = None
    password: Secret

    @property
    def type(self) -> str:
        return "password"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationCredentialSettings(KeystoneSettings):
    """A Keystone v3 application credential (its id, or its name with the user); its scope is its own."""

    application_credential_id: str | None = None
    application_credential_name: str | None = None
    username: str | None = None
    user_id: str | None = None
    application_credential_secret: Secret

    @property
    def type(self) -> str:
        return "application_credential"

    def scope_label(self) -> str:
        """The credential's id or name: its scope is fixed by the credential itself."""
        return f"application credential {self.application_credential_id or self.application_credential_name}"

    def domain_scoped(self) -> Self:
        """The same credential: an application credential cannot change its scope."""
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class AkSkSettings:
    """Huawei Cloud access key / secret key request signing; ``X-Project-Id`` per region, optional STS token."""

    access_key: Secret
    secret_key: Secret
    security_token: Secret | None = None
    project_id: str | None = None  # {region} allowed
    project_ids: tuple[tuple[str, str], ...] = ()  # (region, project id), instead of project_id

    @property
    def type(self) -> str:
        return "aksk"

    def project_for(self, region: str) -> str | None:
        """The ``X-Project-Id`` for ``region`` (None: none is sent)."""
        if self.project_ids:
            return dict(self.project_ids).get(region)
        return _fill(self.project_id, region)


KeystoneCredentials = PasswordSettings | ApplicationCredentialSettings
"""The credentials whose tokens come from an identity service (and are renewed)."""

CredentialSettings = NoAuthSettings | TokenSettings | PasswordSettings | ApplicationCredentialSettings | AkSkSettings
"""A target's credentials, as the configuration built them (the ``auth`` of a TargetSpec)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoverySettings:
    """Where ``regions: auto`` comes from (``catalog`` or ``projects``), how often, and which regions pass."""

    source: Literal["catalog", "projects"] = "catalog"
    service_type: str = "image"
    interface: str = "public"
    refresh: float = 600.0
    include: str | None = None
    exclude: str | None = None

    def wants(self, region: str) -> bool:
        """Whether a discovered region passes ``include`` and ``exclude`` (regular expressions, whole name)."""
        if self.include is not None and not re.fullmatch(self.include, region):
            return False
        return self.exclude is None or not re.fullmatch(self.exclude, region)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudSettings:
    """What credentials and discovery need of one cloud. ``regions`` None: ``regions: auto``.

    ``endpoint`` is the configured base URL template (``endpoint_override`` over ``endpoint``; None: from the
    catalog); ``services`` the API-surface service types (or ``all``); ``watches_schemas`` whether it lists
    any schema.
    """

    name: str
    auth: CredentialSettings
    tls: TlsSettings = field(default_factory=TlsSettings)
    regions: tuple[str, ...] | None = None
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    services: tuple[str, ...] | Literal["all"] | None = None
    watches_schemas: bool = True
    endpoint: str | None = None
    allow_http: bool = False

    def base_url(self, region: str) -> str | None:
        """The region's base URL from the config (None when it must come from the catalog)."""
        return self.endpoint.replace(REGION_PLACEHOLDER, region).rstrip("/") if self.endpoint else None


@dataclass(frozen=True, slots=True)
class CloudsYamlCloud:
    """What clouds.yaml (+ secure.yaml, or ``OS_*``) says about one cloud; read by :mod:`monitor.auth.clouds`.

    ``where`` names the cloud and the file it came from, for messages. ``auth`` is the ``auth:`` mapping the
    configuration then validates like one written in its own file (``type`` password, application_credential
    or token); it holds secrets, so it is left out of ``repr``.
    """

    where: str
    auth: Mapping[str, Any] = field(repr=False)
    regions: list[str] = field(default_factory=list)
    endpoint_override: str | None = None
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False
    interface: str | None = None
