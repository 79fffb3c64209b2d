"""The ``auth:`` section of a cloud: one model per auth type, discriminated by ``type``.

Secrets are ``SecretStr`` and may come from ``${ENV}`` or a ``<key>_file``. ``{region}`` in the
identity URL or the project fields is replaced per region (:meth:`KeystoneAuth.for_region`), so each
region of a Huawei Cloud account authenticates against its own project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, model_validator

from monitor.config.types import TOKEN_RE, Model, PositiveDuration

REGION_PLACEHOLDER = "{region}"


class NoAuth(Model):
    """No credentials (a public schema endpoint, or the simulator without a token)."""

    type: Literal["none"]


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
        if not TOKEN_RE.match(secret):
            # never echo the token: it may be a real secret with a stray newline or quote
            raise ValueError("token contains whitespace, control or non-ASCII characters")
        return secret


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
        if not self.auth_url.startswith(("https://", "http://")):
            raise ValueError(f"auth_url must be an https:// URL, got {self.auth_url!r}")
        project = self.project_name is not None or self.project_id is not None
        domain = self.domain_name is not None or self.domain_id is not None
        if project and domain:
            raise ValueError("give a project scope or a domain scope, not both")
        return self

    @property
    def per_region(self) -> bool:
        """True when the identity URL or the project scope differs per region."""
        return any(REGION_PLACEHOLDER in (v or "") for v in (self.auth_url, self.project_name, self.project_id))

    def for_region(self, region: str) -> Any:
        """A copy (of the same type) with ``{region}`` replaced in the URL and project fields."""
        fields = ("auth_url", "project_name", "project_id")
        update = {
            f: getattr(self, f).replace(REGION_PLACEHOLDER, region) for f in fields if getattr(self, f) is not None
        }
        return self.model_copy(update=update)

    def scope_label(self) -> str:
        """A short description of the scope for log lines (names and ids are not secrets)."""
        if self.project_id or self.project_name:
            return f"project {self.project_id or self.project_name}"
        if self.domain_id or self.domain_name:
            return f"domain {self.domain_id or self.domain_name}"
        return "unscoped"


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
            raise ValueError("password is empty")
        return self


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

    def scope_label(self) -> str:
        """The credential's id or name: its scope is fixed by the credential itself."""
        return f"application credential {self.application_credential_id or self.application_credential_name}"

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
            raise ValueError("application_credential_secret is empty")
        return self


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
                raise ValueError(f"{name} is empty or contains whitespace or non-ASCII characters")
        if self.project_id is not None and self.project_ids:
            raise ValueError("give project_id or project_ids, not both")
        return self

    def project_for(self, region: str) -> str | None:
        """The ``X-Project-Id`` for ``region`` (None: none is sent)."""
        if self.project_ids:
            return self.project_ids.get(region)
        return self.project_id.replace(REGION_PLACEHOLDER, region) if self.project_id else None


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
