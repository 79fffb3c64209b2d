"""What puts credentials on a poll's request: a static token, a Keystone/IAM token, or an AK/SK signature.

A :class:`Credentials` object belongs to one (cloud, region). ``await acquire()`` returns a
:class:`RequestSigner` (authenticating first when needed) whose ``headers(method, url)`` are added to
each request, redirects included. ``invalidate(signer)`` reports that the endpoint answered 401 to it:
a renewable token is dropped so the next ``acquire`` authenticates again.

Keystone tokens (:class:`KeystoneToken`) are obtained with keystoneauth1 in a worker thread and cached
until :func:`renew_margin` before they expire: 120 s (keystoneauth's own margin), or for tokens living
less than 20 minutes a tenth of the lifetime (at least 1 s, at most half of it). The expiry is measured
on this machine's clock from the token's own lifetime (``expires_at - issued_at``), so a skewed
identity-service clock cannot make a token look valid when it is not. After a failed authentication
no new attempt is made for a backoff that doubles from ``BACKOFF_BASE`` to ``BACKOFF_MAX``; polls
meanwhile fail at once with reason ``auth``.

No message of an :class:`AuthError` contains a credential: they are built from fixed texts, HTTP status
codes and exception class names only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from monitor.auth.models import AkSkAuth, ApplicationCredentialAuth, PasswordAuth, TokenAuth

log = logging.getLogger(__name__)

RENEW_MARGIN_MAX = 120.0  # keystoneauth's MIN_TOKEN_LIFE_SECONDS
BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0

AttemptHook = Callable[[bool, float | None], None]
"""Called after every identity request: (succeeded, token expiry as Unix time or None)."""


class AuthError(Exception):
    """Credentials could not be obtained; the message is safe to log and store."""


class RequestSigner(ABC):
    """The credential headers of one request."""

    @abstractmethod
    def headers(self, method: str, url: httpx.URL) -> dict[str, str]:
        """Headers to add to a ``method`` request of ``url``."""


class Credentials(ABC):
    """The credentials of one (cloud, region)."""

    renewable = False
    """True when a 401 may be cured by authenticating again."""

    @abstractmethod
    async def acquire(self) -> RequestSigner:
        """A signer for the next request; raises AuthError."""

    def invalidate(self, signer: RequestSigner) -> None:  # noqa: B027 - most credentials cannot renew
        """The endpoint refused ``signer``'s credentials (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class _TokenHeader(RequestSigner):
    token: str

    def headers(self, method: str, url: httpx.URL) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    def __repr__(self) -> str:  # never show the token
        return "_TokenHeader(<token>)"


class StaticToken(Credentials):
    """``auth: token``: the configured token (a ``token_file`` is re-read on every poll)."""

    def __init__(self, auth: TokenAuth) -> None:
        self._auth = auth

    async def acquire(self) -> RequestSigner:
        try:
            return _TokenHeader(self._auth.resolve())
        except ValueError as exc:
            raise AuthError(str(exc)) from None


class AkSk(Credentials):
    """``auth: aksk``: every request is signed with huaweicloudsdkcore's SDK-HMAC-SHA256 signer."""

    def __init__(self, auth: AkSkAuth, region: str) -> None:
        self._signer = _AkSkSigner(auth, auth.project_for(region))

    async def acquire(self) -> RequestSigner:
        return self._signer


class _AkSkSigner(RequestSigner):
    def __init__(self, auth: AkSkAuth, project_id: str | None) -> None:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.signer.signer import Signer

        self._signer = Signer(BasicCredentials(auth.access_key.get_secret_value(), auth.secret_key.get_secret_value()))
        self._extra = {"X-Project-Id": project_id} if project_id else {}
        if auth.security_token is not None:
            self._extra["X-Security-Token"] = auth.security_token.get_secret_value()

    def headers(self, method: str, url: httpx.URL) -> dict[str, str]:
        from huaweicloudsdkcore.sdk_request import SdkRequest

        host = url.host if url.port is None else f"{url.host}:{url.port}"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        request = SdkRequest(
            method=method,
            schema=url.scheme,
            host=host,
            resource_path=url.path,
            query_params=list(url.params.multi_items()),
            header_params={"X-Sdk-Date": stamp, "Host": host, **self._extra},
            body="",
        )
        signed: dict[str, str] = self._signer.sign(request).header_params
        return dict(signed)

    def __repr__(self) -> str:
        return "_AkSkSigner(<credentials>)"


KeystoneAuthConfig = PasswordAuth | ApplicationCredentialAuth


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    renew_at: float  # time.time() from which the token is renewed before use
    expires_at: float  # local estimate of the expiry, as Unix time
    access: Any  # keystoneauth1.access.AccessInfoV3: the catalog, project, expiry


class KeystoneToken(Credentials):
    """``auth: password`` / ``application_credential``: a cached, renewed Keystone v3 / IAM token."""

    renewable = True

    def __init__(
        self,
        auth: KeystoneAuthConfig,
        *,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        executor: Executor | None = None,
        on_attempt: AttemptHook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth = auth
        self._verify = verify
        self._cert = cert
        self._executor = executor
        self._on_attempt = on_attempt or (lambda ok, expiry: None)
        self._clock = clock
        self._token: _Token | None = None
        self._lock: asyncio.Lock | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._session: Any = None

    async def acquire(self) -> RequestSigner:
        return _TokenHeader((await self.token()).value)

    async def access(self, *, fresh: bool = False) -> Any:
        """The keystoneauth ``AccessInfo`` of a valid token (catalog, project); raises AuthError.

        ``fresh`` asks for a new token, whose catalog is current (discovery).
        """
        return (await self.token(fresh=fresh)).access

    async def token(self, *, fresh: bool = False) -> _Token:
        """A token valid for at least the renewal margin; authenticates at most once for all waiters."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            token = self._token
            if not fresh and token is not None and self._clock() < token.renew_at:
                return token
            return await self._authenticate()

    async def list_projects(self) -> list[str]:
        """Names of the projects the user can access (``GET /v3/auth/projects``); raises AuthError."""
        token = await self.token()
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._get_projects, token.value), timeout=self._auth.timeout + 1.0
            )
        except TimeoutError:
            raise AuthError(f"project list: no answer within {self._auth.timeout:g}s") from None

    def _get_projects(self, token: str) -> list[str]:
        from keystoneauth1 import exceptions as ksa_exc

        base = self._auth.auth_url.rstrip("/")
        url = (base if base.endswith("/v3") else base + "/v3") + "/auth/projects"
        try:
            response = self._session.get(url, headers={"X-Auth-Token": token}, authenticated=False, log=False)
            projects = response.json().get("projects", [])
        except ksa_exc.HttpError as exc:
            raise AuthError(f"project list: {_http_message(exc.http_status)}") from None
        except (ksa_exc.ClientException, ValueError, AttributeError) as exc:
            raise AuthError(f"project list: {type(exc).__name__}") from None
        return [str(p["name"]) for p in projects if isinstance(p, dict) and "name" in p]

    def invalidate(self, signer: RequestSigner) -> None:
        token = self._token
        if token is not None and isinstance(signer, _TokenHeader) and signer.token == token.value:
            log.info("token for %s was refused (HTTP 401): authenticating again", self._auth.scope_label())
            self._token = None

    @property
    def expires_at(self) -> float | None:
        """The cached token's expiry (local estimate, Unix time), or None."""
        return self._token.expires_at if self._token else None

    async def _authenticate(self) -> _Token:
        now = time.monotonic()
        if now < self._retry_at:
            raise AuthError(
                f"identity service not asked again for {self._retry_at - now:.0f}s after "
                f"{self._failures} failure(s); last: {self._last_error}"
            )
        started = self._clock()
        loop = asyncio.get_running_loop()
        try:
            access = await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._request), timeout=self._auth.timeout + 1.0
            )
            token = _token_from(access, started, self._clock())
        except (AuthError, TimeoutError) as exc:
            message = str(exc) if isinstance(exc, AuthError) else f"no answer within {self._auth.timeout:g}s"
            self._fail(message)
            raise AuthError(message) from None
        self._failures, self._retry_at, self._token = 0, 0.0, token
        self._on_attempt(True, token.expires_at)
        log.debug("new token for %s, expires in %.0fs", self._auth.scope_label(), token.expires_at - self._clock())
        return token

    def _fail(self, message: str) -> None:
        self._failures += 1
        self._last_error = message
        self._retry_at = time.monotonic() + min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self._failures - 1))
        self._on_attempt(False, None)
        log.warning("authentication for %s failed: %s", self._auth.scope_label(), message)

    def _request(self) -> Any:
        """POST /v3/auth/tokens through keystoneauth1 (runs in a worker thread); raises AuthError."""
        from keystoneauth1 import exceptions as ksa_exc
        from keystoneauth1 import session as ksa_session

        if self._session is None:
            self._session = ksa_session.Session(verify=self._verify, cert=self._cert, timeout=self._auth.timeout)
        try:
            return _plugin(self._auth).get_auth_ref(self._session)
        except ksa_exc.HttpError as exc:
            raise AuthError(_http_message(exc.http_status)) from None
        except ksa_exc.SSLError:
            raise AuthError("identity service: TLS verification failed") from None
        except (ksa_exc.ConnectTimeout, ksa_exc.ConnectFailure) as exc:
            raise AuthError(f"identity service unreachable ({type(exc).__name__})") from None
        except ksa_exc.ClientException as exc:
            raise AuthError(f"identity service: {type(exc).__name__}") from None


def _http_message(status: int | None) -> str:
    if status == 401:
        return "identity service refused the credentials (HTTP 401)"
    return f"identity service answered HTTP {status}"


def _token_from(access: Any, started: float, now: float) -> _Token:
    """Cache entry for ``access``; its lifetime is taken from the identity service's own clock."""
    value, expires, issued = access.auth_token, access.expires, access.issued
    if not value or expires is None:
        raise AuthError("identity service answered without a token or expiry")
    lifetime = (expires - issued).total_seconds() if issued is not None else expires.timestamp() - now
    if lifetime <= 0:
        raise AuthError("identity service issued an already expired token")
    expires_at = started + lifetime
    return _Token(value, expires_at - renew_margin(lifetime), expires_at, access)


def renew_margin(lifetime: float) -> float:
    """Seconds before expiry a token is renewed: 120 s, or a tenth of a short lifetime (1 s to half of it)."""
    return min(RENEW_MARGIN_MAX, max(lifetime / 10, min(1.0, lifetime / 2)))


def _plugin(auth: KeystoneAuthConfig) -> Any:
    """The keystoneauth1 v3 plugin for ``auth`` (a project name is looked up in the user's domain by default)."""
    from keystoneauth1.identity import v3

    scope: Mapping[str, Any] = {
        "project_id": auth.project_id,
        "project_name": auth.project_name,
        "project_domain_id": auth.project_domain_id,
        "project_domain_name": auth.project_domain_name,
        "domain_id": auth.domain_id,
        "domain_name": auth.domain_name,
    }
    if auth.project_name and not (auth.project_domain_id or auth.project_domain_name):
        scope = {**scope, "project_domain_id": auth.user_domain_id, "project_domain_name": auth.user_domain_name}
    common = {"auth_url": auth.auth_url, "include_catalog": True, **scope}
    if isinstance(auth, PasswordAuth):
        return v3.Password(
            username=auth.username,
            user_id=auth.user_id,
            user_domain_id=auth.user_domain_id,
            user_domain_name=auth.user_domain_name,
            password=auth.password.get_secret_value(),
            **common,
        )
    return v3.ApplicationCredential(
        application_credential_id=auth.application_credential_id,
        application_credential_name=auth.application_credential_name,
        application_credential_secret=auth.application_credential_secret.get_secret_value(),
        username=auth.username,
        user_id=auth.user_id,
        user_domain_id=auth.user_domain_id,
        user_domain_name=auth.user_domain_name,
        **common,
    )
