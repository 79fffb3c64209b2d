"""What puts credentials on a poll's request: a static token, a Keystone/IAM token, or an AK/SK signature.

A :class:`Credentials` object belongs to one (cloud, region). ``await acquire()`` returns a
:class:`RequestSigner` (authenticating first when needed) whose ``headers(method, url)`` are added to
each request, redirects included. ``invalidate(signer)`` reports that the endpoint answered 401 to it:
a renewable token is dropped so the next ``acquire`` authenticates again.

Keystone tokens (:class:`KeystoneToken`) are obtained with keystoneauth1 in a worker thread and cached
until :func:`renew_margin` before they expire (keystoneauth's 120 s). The expiry is measured on this
machine's monotonic clock from the token's own lifetime (``expires_at - issued_at``), so a skewed or
jumping clock cannot make a token look valid when it is not. After a failed authentication no new
attempt is made for a backoff that doubles from ``BACKOFF_BASE`` to ``BACKOFF_MAX``; polls meanwhile
fail at once with reason ``auth`` — unless the current token is still valid, which is then used.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from monitor.config.settings import AkSkSettings, KeystoneCredentials, PasswordSettings, TokenSettings
from monitor.domain import exponential_backoff

log = logging.getLogger(__name__)

RENEW_MARGIN_MAX = 120.0  # keystoneauth's MIN_TOKEN_LIFE_SECONDS
BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0
REFUSAL_HOLD = 30.0  # a fresh token refused again: no new token for this long, doubling

AttemptHook = Callable[[bool, float], None]
"""Called after every token request: (succeeded, the cached token's expiry as Unix time, 0 for none)."""
_T = TypeVar("_T")


class AuthError(Exception):
    """Credentials could not be obtained; the message is safe to log and store."""


class RequestSigner(ABC):
    """The credential headers of one request."""

    @abstractmethod
    def headers(self, method: str, url: str) -> dict[str, str]:
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

    def headers(self, method: str, url: str) -> dict[str, str]:
        return {"X-Auth-Token": self.token}

    def __repr__(self) -> str:  # never show the token
        return "_TokenHeader(<token>)"


class StaticToken(Credentials):
    """``auth: token``: the configured token (a ``token_file`` is re-read on every poll)."""

    def __init__(self, auth: TokenSettings) -> None:
        self._auth = auth

    async def acquire(self) -> RequestSigner:
        try:
            return _TokenHeader(self._auth.resolve())
        except ValueError as exc:
            raise AuthError(str(exc)) from None


class AkSk(Credentials):
    """``auth: aksk``: every request is signed with huaweicloudsdkcore's SDK-HMAC-SHA256 signer."""

    def __init__(self, auth: AkSkSettings, region: str) -> None:
        self._signer = _AkSkSigner(auth, auth.project_for(region))

    async def acquire(self) -> RequestSigner:
        return self._signer


class _AkSkSigner(RequestSigner):
    def __init__(self, auth: AkSkSettings, project_id: str | None) -> None:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkcore.signer.signer import Signer

        self._signer = Signer(BasicCredentials(auth.access_key.get_secret_value(), auth.secret_key.get_secret_value()))
        self._extra = {"X-Project-Id": project_id} if project_id else {}
        if auth.security_token is not None:
            self._extra["X-Security-Token"] = auth.security_token.get_secret_value()

    def headers(self, method: str, url: str) -> dict[str, str]:
        from huaweicloudsdkcore.sdk_request import SdkRequest

        parts = urlsplit(url)  # the URL as sent: IDNA-encoded host, IPv6 in brackets, port only if not default
        host = parts.netloc
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        request = SdkRequest(
            method=method,
            schema=parts.scheme,
            host=host,
            resource_path=unquote(parts.path),
            query_params=parse_qsl(parts.query, keep_blank_values=True),
            header_params={"X-Sdk-Date": stamp, "Host": host, **self._extra},
            body="",
        )
        signed: dict[str, str] = self._signer.sign(request).header_params
        return dict(signed)

    def __repr__(self) -> str:
        return "_AkSkSigner(<credentials>)"


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    renew_at: float  # time.monotonic() from which the token is renewed before use
    expires_at: float  # time.monotonic() of its expiry (measured from its lifetime, on this machine)
    expires_wall: float  # the same as Unix time, for the metric
    access: Any = field(repr=False)  # keystoneauth1.access.AccessInfoV3: the catalog, project, expiry
    after_refusal: bool = False  # obtained because the endpoint refused the previous token


class _Refused(AuthError):
    """The identity service answered 401 to a request made with a token (not to the credentials)."""


class KeystoneToken(Credentials):
    """``auth: password`` / ``application_credential``: a cached, renewed Keystone v3 / IAM token.

    ``gate`` limits concurrent identity requests (shared by one cloud's regions); a request's timeout
    starts once it passes the gate, so waiting for a busy identity service is not counted as a failure.
    """

    renewable = True

    def __init__(
        self,
        auth: KeystoneCredentials,
        *,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        executor: Executor | None = None,
        gate: asyncio.Semaphore | None = None,
        on_attempt: AttemptHook | None = None,
    ) -> None:
        self._auth = auth
        self._verify = verify
        self._cert = cert
        self._executor = executor
        self._gate = gate
        self._on_attempt = on_attempt or (lambda ok, expiry: None)
        self._token: _Token | None = None
        self._lock: asyncio.Lock | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._refused = False  # the last token was refused: the next one is obtained "after refusal"
        self._refusals = 0  # fresh tokens refused in a row
        self._hold_until = 0.0  # until then a refused fresh token is kept, not replaced
        self._session: Any = None

    async def acquire(self) -> RequestSigner:
        return _TokenHeader((await self.token()).value)

    async def access(self, *, fresh: bool = False) -> Any:
        """The keystoneauth ``AccessInfo`` of a valid token (catalog, project); raises AuthError.

        ``fresh`` asks for a new token, whose catalog is current (discovery).
        """
        return (await self.token(fresh=fresh)).access

    async def token(self, *, fresh: bool = False) -> _Token:
        """A token valid for at least the renewal margin; authenticates at most once for all waiters.

        When renewing fails while the current token has not expired yet, the current one is used.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            token = self._token
            if not fresh and token is not None and time.monotonic() < token.renew_at:
                return token
            try:
                return await self._authenticate()
            except AuthError:
                if fresh or token is None or time.monotonic() >= token.expires_at:
                    raise
                return token

    async def list_projects(self) -> list[str]:
        """Names of the projects the user can access (``GET /v3/auth/projects``); raises AuthError.

        A token refused here is replaced once, as for a poll.
        """
        for attempt in range(2):
            token = await self.token()
            try:
                return await self._in_thread(self._get_projects, token.value)
            except _Refused:
                if attempt == 1:
                    raise
                self.invalidate(_TokenHeader(token.value))
        raise AssertionError("unreachable")

    def _get_projects(self, token: str) -> list[str]:
        from keystoneauth1 import exceptions as ksa_exc

        base = self._auth.auth_url.rstrip("/")
        url = (base if base.endswith("/v3") else base + "/v3") + "/auth/projects"
        try:
            response = self._session.get(url, headers={"X-Auth-Token": token}, authenticated=False, log=False)
            projects = response.json().get("projects", [])
        except ksa_exc.HttpError as exc:
            error = _Refused if exc.http_status == 401 else AuthError
            raise error(f"project list: {_http_message(exc.http_status)}") from None
        except Exception as exc:
            raise AuthError(f"project list: {type(exc).__name__}") from None
        return [str(p["name"]) for p in projects if isinstance(p, dict) and "name" in p]

    def invalidate(self, signer: RequestSigner) -> None:
        """Drop the token the endpoint refused — unless it was itself new after a refusal.

        A fresh token refused again means the credentials lack access (a role in the region's project),
        not an expired token: it is then kept for a backoff (30 s doubling to 5 min), so polls fail with
        ``auth`` without asking the identity service for a token each time.
        """
        token = self._token
        if token is None or not isinstance(signer, _TokenHeader) or signer.token != token.value:
            return  # already replaced (polls refused together share one new token)
        now = time.monotonic()
        if now < self._hold_until:
            return
        if token.after_refusal:
            self._refusals += 1
            hold = exponential_backoff(self._refusals, REFUSAL_HOLD, BACKOFF_MAX)
            self._hold_until = now + hold
            log.warning(
                "a new token for %s was refused too (HTTP 401): the credentials may lack access there; "
                "no new token for %.0fs", self._auth.scope_label(), hold,
            )  # fmt: skip
            return
        log.info("token for %s was refused (HTTP 401): authenticating again", self._auth.scope_label())
        self._token, self._refused = None, True

    async def _authenticate(self) -> _Token:
        now = time.monotonic()
        if now < self._retry_at:
            raise AuthError(
                f"identity service not asked again for {self._retry_at - now:.0f}s after "
                f"{self._failures} failure(s); last: {self._last_error}"
            )
        after_refusal, self._refused = self._refused, False
        try:
            token = await self._in_thread(self._new_token, after_refusal)
        except AuthError as exc:
            self._fail(str(exc))
            raise
        if not after_refusal:
            self._refusals = 0
        self._failures, self._retry_at, self._token = 0, 0.0, token
        self._on_attempt(True, token.expires_wall)
        log.debug("new token for %s, expires in %.0fs", self._auth.scope_label(), token.expires_at - time.monotonic())
        return token

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one identity request in the executor, after the gate; raises AuthError (also on timeout)."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(1)
        async with self._gate:
            loop = asyncio.get_running_loop()
            # requests' timeout bounds connecting and each read; this bounds the whole request
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(self._executor, fn, *args), timeout=2 * self._auth.timeout + 1.0
                )
            except TimeoutError:
                raise AuthError(f"identity service: no answer within {self._auth.timeout:g}s") from None

    def _fail(self, message: str) -> None:
        self._failures += 1
        self._last_error = message
        self._retry_at = time.monotonic() + exponential_backoff(self._failures, BACKOFF_BASE, BACKOFF_MAX)
        self._on_attempt(False, self._token.expires_wall if self._token else 0.0)
        log.warning("authentication for %s failed: %s", self._auth.scope_label(), message)

    def _new_token(self, after_refusal: bool) -> _Token:
        """POST /v3/auth/tokens through keystoneauth1 (runs in a worker thread); raises AuthError."""
        from keystoneauth1 import exceptions as ksa_exc
        from keystoneauth1 import session as ksa_session

        if self._session is None:
            self._session = ksa_session.Session(verify=self._verify, cert=self._cert, timeout=self._auth.timeout)
        started, started_wall = time.monotonic(), time.time()
        try:
            access = _plugin(self._auth).get_auth_ref(self._session)
        except ksa_exc.HttpError as exc:
            raise AuthError(_http_message(exc.http_status)) from None
        except ksa_exc.SSLError:
            raise AuthError("identity service: TLS verification failed") from None
        except (ksa_exc.ConnectTimeout, ksa_exc.ConnectFailure) as exc:
            raise AuthError(f"identity service unreachable ({type(exc).__name__})") from None
        except Exception as exc:
            raise AuthError(f"identity service: {type(exc).__name__}") from None
        return _token_from(access, started, started_wall, after_refusal)


def _http_message(status: int | None) -> str:
    if status == 401:
        return "identity service refused the credentials (HTTP 401)"
    return f"identity service answered HTTP {status}"


def _token_from(access: Any, started: float, started_wall: float, after_refusal: bool) -> _Token:
    """Cache entry for ``access``; its lifetime is taken from the identity service's own clock."""
    try:
        value, expires = access.auth_token, access.expires
    except (KeyError, ValueError, TypeError, AttributeError):
        raise AuthError("identity service answered without a usable token") from None
    try:
        issued = access.issued
    except (KeyError, ValueError, TypeError):  # issued_at is optional: then the local clock is trusted
        issued = None
    if not value or expires is None:
        raise AuthError("identity service answered without a token or expiry")
    lifetime = (expires - issued).total_seconds() if issued is not None else expires.timestamp() - time.time()
    if lifetime <= 0:
        raise AuthError("identity service issued an already expired token")
    return _Token(
        value,
        renew_at=started + lifetime - renew_margin(lifetime),
        expires_at=started + lifetime,
        expires_wall=started_wall + lifetime,
        access=access,
        after_refusal=after_refusal,
    )


def renew_margin(lifetime: float) -> float:
    """Seconds before expiry a token is renewed: keystoneauth's 120 s for tokens living 4 minutes or more.

    Shorter tokens (test setups) would be renewed on every use with 120 s; they get a tenth of their
    lifetime (at least 1 s, at most half of it).
    """
    if lifetime >= 2 * RENEW_MARGIN_MAX:
        return RENEW_MARGIN_MAX
    return max(lifetime / 10, min(1.0, lifetime / 2))


def _plugin(auth: KeystoneCredentials) -> Any:
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
    if isinstance(auth, PasswordSettings):
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
