"""The ``auth:`` section of a cloud: one model per auth type, discriminated by ``type``.

Secrets are ``SecretStr`` and may come from ``${ENV}`` or a ``<key>_file``. ``{region}`` in the identity URL or the
project fields is replaced per region, so each region of a Huawei Cloud account authenticates against its own
project. Each model's ``to_settings()`` builds the plain settings (:mod:`monitor.config.settings`) the credentials
use at runtime: :mod:`monitor.auth` never sees these models.

Whether ``auth_url`` may be plain ``http://`` depends on the cloud's ``allow_http``: :class:`~monitor.config.cloud.
CloudConfig` checks it with the cloud's other URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, model_validator

from monitor.config.errors import FieldProblem
from monitor.config.settings import (
    REGION_PLACEHOLDER,
    TOKEN_RE,
    AkSkSettings,
    ApplicationCredentialSettings,
    NoAuthSettings,
    PasswordSettings,
    Secret,
    TokenSettings,
)
from monitor.config.types import Model, PositiveDuration


def _secret(value: SecretStr | None) -> Secret | None:
    return Secret(value.get_secret_value()) if value is not None else None


class NoAuth(Model):
    """No credentials (a public schema endpoint, or the simulator without a token)."""

    type: Literal["none"]

    def to_settings(self) -> NoAuthSettings:
        return NoAuthSettings()


class TokenAuth(Model):
    """A static token sent as ``X-Auth-Token``; give ``token`` (``${ENV}`` allowed) or ``token_file``."""

    type: Literal["token"]
    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TokenAuth:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("give exactly one of token or token_file")
        return self

    def to_settings(self) -> TokenSettings:
        return TokenSettings(token=_secret(self.token), token_file=self.token_file)

    def resolve(self) -> str:
        """The token text; raises ValueError when the file cannot be read or the token is unusable."""
        return self.to_settings().resolve()


class KeystoneAuth(Model):
    """What every Keystone v3 / Huawei IAM auth type shares: where to authenticate and the scope.

    Scope: ``project_id``, or ``project_name`` with ``project_domain_name``/``_id`` (defaulting to the
    user's domain), or ``domain_name``/``domain_id``. ``{region}`` in ``auth_url``, ``project_name`` and
    ``project_id`` is replaced by the region being polled.
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
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _valid_scope(self) -> KeystoneAuth:
        project = self.project_name is not None or self.project_id is not None
        domain = self.domain_name is not None or self.domain_id is not None
        if project and domain:
            raise ValueError("give a project scope or a domain scope, not both")
        return self

    @property
    def per_region(self) -> bool:
        """True when the identity URL or the project scope differs per region."""
        return any(REGION_PLACEHOLDER in (v or "") for v in (self.auth_url, self.project_name, self.project_id))

    def _keystone_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in KeystoneAuth.model_fields}


class PasswordAuth(KeystoneAuth):
    """Keystone v3 password authentication (OpenStack Keystone, Huawei Cloud IAM)."""

    type: Literal["password"]
    username: str | None = None
    user_id: str | None = None
    password: SecretStr
    password_file: Path | None = None
    secret_files = ("password",)

    @model_validator(mode="after")
    def _one_user(self) -> PasswordAuth:
        if (self.username is None) == (self.user_id is None):
            raise ValueError("give exactly one of username or user_id")
        if self.username is not None and self.user_domain_name is None and self.user_domain_id is None:
            raise ValueError("username needs user_domain_name or user_domain_id (Huawei Cloud: the account name)")
        if not self.password.get_secret_value():
            raise FieldProblem("password", "is empty")
        return self

    def to_settings(self) -> PasswordSettings:
        return PasswordSettings(
            **self._keystone_fields(),
            username=self.username,
            user_id=self.user_id,
            password=Secret(self.password.get_secret_value()),
        )


class ApplicationCredentialAuth(KeystoneAuth):
    """Keystone v3 application credential: its id (or name with the user) and secret."""

    type: Literal["application_credential"]
    application_credential_id: str | None = None
    application_credential_name: str | None = None
    username: str | None = None
    user_id: str | None = None
    application_credential_secret: SecretStr
    application_credential_secret_file: Path | None = None
    secret_files = ("application_credential_secret",)

    @model_validator(mode="after")
    def _identified(self) -> ApplicationCredentialAuth:
        scope = ("project_name", "project_id", "project_domain_name", "project_domain_id", "domain_name", "domain_id")
        given = [name for name in scope if getattr(self, name) is not None]
        if given:
            raise ValueError(f"an application credential carries its own scope; remove {', '.join(given)}")
        if self.application_credential_id is None:
            if self.application_credential_name is None:
                raise ValueError("give application_credential_id, or application_credential_name with the user")
            if self.username is None and self.user_id is None:
                raise ValueError("application_credential_name needs username or user_id")
        if not self.application_credential_secret.get_secret_value():
            raise FieldProblem("application_credential_secret", "is empty")
        return self

    def to_settings(self) -> ApplicationCredentialSettings:
        return ApplicationCredentialSettings(
            **self._keystone_fields(),
            application_credential_id=self.application_credential_id,
            application_credential_name=self.application_credential_name,
            username=self.username,
            user_id=self.user_id,
            application_credential_secret=Secret(self.application_credential_secret.get_secret_value()),
        )


class AkSkAuth(Model):
    """Huawei Cloud access key / secret key request signing (SDK-HMAC-SHA256).

    ``project_id`` (``{region}`` allowed) or ``project_ids`` (per region) is sent as ``X-Project-Id``;
    ``security_token`` (temporary AK/SK) as ``X-Security-Token``.
    """

    type: Literal["aksk"]
    access_key: SecretStr
    access_key_file: Path | None = None
    secret_key: SecretStr
    secret_key_file: Path | None = None
    security_token: SecretStr | None = None
    security_token_file: Path | None = None
    project_id: str | None = None
    project_ids: dict[str, str] = {}
    secret_files = ("access_key", "secret_key", "security_token")

    @model_validator(mode="after")
    def _usable(self) -> AkSkAuth:
        for name in ("access_key", "secret_key", "security_token"):
            secret = getattr(self, name)
            if secret is not None and not TOKEN_RE.match(secret.get_secret_value()):
                raise FieldProblem(name, "is empty or contains whitespace or non-ASCII characters")
        if self.project_id is not None and self.project_ids:
            raise ValueError("give project_id or project_ids, not both")
        return self

    def to_settings(self) -> AkSkSettings:
        return AkSkSettings(
            access_key=Secret(self.access_key.get_secret_value()),
            secret_key=Secret(self.secret_key.get_secret_value()),
            security_token=_secret(self.security_token),
            project_id=self.project_id,
            project_ids=tuple(sorted(self.project_ids.items())),
        )


class CloudsYamlAuth(Model):
    """Everything from clouds.yaml (+ secure.yaml) as openstacksdk finds it; no ``cloud``: ``OS_CLOUD``/``OS_*``."""

    type: Literal["cloud"]
    cloud: str | None = None


DynamicAuth = PasswordAuth | ApplicationCredentialAuth
"""The auth types whose tokens come from an identity service (and are renewed)."""

AnyAuth = NoAuth | TokenAuth | PasswordAuth | ApplicationCredentialAuth | AkSkAuth | CloudsYamlAuth


def default_type(data: Any) -> Any:
    """``auth: {cloud: NAME}`` is short for ``auth: {type: cloud, cloud: NAME}``."""
    if isinstance(data, dict) and "type" not in data and set(data) == {"cloud"}:
        return {"type": "cloud", **data}
    return data
