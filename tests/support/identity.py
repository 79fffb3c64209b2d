"""A fake OpenStack Keystone v3 / Huawei Cloud IAM identity service for demos and integration tests.

:class:`IdentitySimulator` serves, on loopback, the part of the Keystone v3 API that a schema poller needs
(`Identity API v3 <https://docs.openstack.org/api-ref/identity/v3/>`_), in Keystone's wire format, so
that ``keystoneauth1`` authenticates against it unchanged:

``GET /v3`` (and ``/v3/``)
    The version document. ``GET /`` answers 300 with the list of versions (Keystone's root discovery
    document), so keystoneauth's *generic* plugins can discover ``/v3`` from the bare base URL.
``POST /v3/auth/tokens``
    Password authentication (user by ``id``, or by ``name`` plus ``domain`` ``{"id"|"name"}``) or
    application-credential authentication (by ``id``, or by ``name`` plus ``user``); scoped to a project
    (``{"id"}`` or ``{"name", "domain": {"id"|"name"}}``), to a domain (``{"id"|"name"}``), or unscoped
    (no scope, or ``"unscoped"``). An application credential is always scoped to its own project and
    refuses an explicit scope. Success is 201 with the token in ``X-Subject-Token`` and a ``{"token":
    ...}`` body; wrong credentials, an unknown project or domain, an unsupported method or scope answer
    401; a body that is not a Keystone auth request answers 400. Error bodies are Keystone's ``{"error":
    {"code", "title", "message"}}`` with fixed messages that never echo anything submitted.
``GET /v3/auth/projects``
    With a valid ``X-Auth-Token``: every project (Huawei IAM's list of regions/projects), else 401.

Any other route answers a 404 error. Faults (:meth:`IdentitySimulator.set_fault`) apply to every route.

Catalog: only project-scoped tokens carry a ``catalog`` (domain-scoped and unscoped ones carry none, and
``?nocatalog`` leaves it out as Keystone does). For each service type given to
:meth:`IdentitySimulator.set_catalog` it lists, per region, the endpoint on the chosen interface with the
given URL and a decoy on one other interface (``internal``, or ``public`` when the chosen interface is
``internal``) whose URL is the given URL plus ``/<decoy interface>-not-used`` — so a client that picks the
wrong interface ends up on a path the region simulator answers 404.

The region simulator (:mod:`tests.support.regions`) can enforce the credentials issued here through
:func:`region_authorizer`: Keystone tokens (:meth:`IdentitySimulator.validate_token`) and Huawei Cloud
AK/SK signatures (:meth:`IdentitySimulator.verify_aksk`, an independent implementation of the documented
SDK-HMAC-SHA256 algorithm).

Standard library only. Nothing submitted (passwords, secrets, tokens) is logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final, TypedDict, TypeVar, cast
from urllib.parse import unquote

from monitor.demo.loopback import LoopbackHandler, LoopbackServer, TrackingServer
from tests.support.sockets import peer_closed

FAULTS: Final = frozenset({"down", "hang", "status"})
"""Every fault name :meth:`IdentitySimulator.set_fault` accepts."""

DEFAULT_DOMAIN: Final = "Default"
"""Name of the domain that always exists; its id is ``default`` (as in Keystone)."""

AKSK_ALGORITHM: Final = "SDK-HMAC-SHA256"
AKSK_MAX_SKEW_S: Final = 15 * 60
"""How far ``X-Sdk-Date`` may be from the verifier's clock, either way."""

JSON_TYPE: Final = "application/json"
VERSION_ID: Final = "v3.14"

_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_UNRESERVED: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_MAX_BODY: Final = 1024 * 1024
_HANG_POLL_S: Final = 0.05
_ROLE: Final = {"id": "9fe2ff9ee4384b1894a90878d3e92bab", "name": "member"}

_MESSAGES: Final[Mapping[int, str]] = {
    400: "The request you have made is not a valid Keystone authentication request.",
    401: "The request you have made requires authentication.",
    404: "The resource could not be found.",
    503: "The service is temporarily unavailable.",
}


class TokenInfo(TypedDict):
    """What :meth:`IdentitySimulator.validate_token` knows about a live token."""

    user_id: str
    project_id: str | None
    project_name: str | None
    expires_at: float
    """Unix time (wall clock)."""


# --------------------------------------------------------------------------------------------------
# State


@dataclass(frozen=True)
class _User:
    id: str
    name: str
    password: str
    domain_id: str


@dataclass(frozen=True)
class _Project:
    id: str
    name: str
    domain_id: str


_InDomainT = TypeVar("_InDomainT", _User, _Project)


@dataclass(frozen=True)
class _AppCred:
    id: str
    name: str
    secret: str
    user_id: str
    project_id: str


@dataclass(frozen=True)
class _Token:
    user_id: str
    project_id: str | None
    expires_at: float


@dataclass(frozen=True)
class _Service:
    id: str
    interface: str
    endpoints: Mapping[str, tuple[str, str, str]]  # region -> (url, endpoint id, decoy endpoint id)


@dataclass(frozen=True)
class _FaultPlan:
    fault: str | None
    options: Mapping[str, Any]
    release: threading.Event


class _BadRequest(Exception):
    """The body is not a Keystone auth request (answered 400)."""


def _new_id() -> str:
    return uuid.uuid4().hex


def _isotime(timestamp: float) -> str:
    """Keystone's timestamp format: ``2024-05-01T12:00:00.000000Z``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _same(presented: str, expected: str) -> bool:
    """Constant-time comparison of two strings of any content."""
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


class IdentitySimulator(LoopbackServer):
    """A Keystone v3 / Huawei IAM identity server on loopback; see the module docstring for the routes.

    Thread-safe: tests may add users, change the catalog, set faults etc. while requests are served.
    The socket is bound in :meth:`start` (``port=0`` picks a free port); :attr:`base_url` is available
    from then on, and keystoneauth's ``auth_url`` is :attr:`auth_url` (``base_url + "/v3"``).
    :meth:`stop` releases hanging requests (they are closed unanswered); it can be followed by another
    :meth:`start`, and users, projects and tokens survive it. The lifecycle (:meth:`start`, :meth:`stop`,
    use as a context manager, :attr:`base_url`) is :class:`monitor.demo.loopback.LoopbackServer`'s.

    Every user may scope to every project (there are no role assignments); tokens carry the role
    ``member``.
    """

    thread_name = "identity-simulator"
    queue_size = 128
    server_label = "identity simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: float = 3600.0,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls`` (a server-side context) serves HTTPS, like a real identity service."""
        super().__init__(host, port, tls=tls)
        self._lock = threading.Lock()
        self._token_lifetime = 0.0
        self.token_lifetime = token_lifetime
        self._domains: dict[str, str] = {DEFAULT_DOMAIN: "default"}  # name -> id
        self._users: dict[str, _User] = {}
        self._projects: dict[str, _Project] = {}
        self._app_creds: dict[str, _AppCred] = {}
        self._aksk: dict[str, tuple[str, str | None]] = {}  # access key -> (secret key, security token)
        self._services: dict[str, _Service] = {}  # service type -> service
        self._tokens: dict[str, _Token] = {}
        self._issued: list[str] = []  # every token ever issued, for tests that grep outputs for them
        self._fault: str | None = None
        self._fault_options: dict[str, Any] = {}
        self._token_requests: Counter[str | None] = Counter()  # requested project name -> count
        self._project_list_requests = 0

    # -- lifecycle: start, stop and base_url are LoopbackServer's ----------------------------------

    @property
    def auth_url(self) -> str:
        """keystoneauth's ``auth_url``: ``<base_url>/v3``."""
        return f"{self.base_url}/v3"

    # -- configuration -----------------------------------------------------------------------------

    @property
    def token_lifetime(self) -> float:
        """Seconds from issue to expiry of tokens issued from now on (tokens already issued keep theirs)."""
        with self._lock:
            return self._token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf:
            raise ValueError("token_lifetime must be a finite, non-negative number of seconds")
        with self._lock:
            self._token_lifetime = float(seconds)

    def domain_id(self, name: str) -> str:
        """The id of domain ``name`` (``"default"`` for ``"Default"``). Raises KeyError for an unknown one.

        Domains come into existence when a user or project is added to them.
        """
        with self._lock:
            return self._domains[name]

    def add_user(self, name: str, password: str, *, domain: str = DEFAULT_DOMAIN, user_id: str | None = None) -> str:
        """Add a user to domain ``domain`` (by name; created if new); returns the user id.

        Raises ValueError for a duplicate id, or a duplicate name within the domain.
        """
        return self._add_to_domain(
            self._users, "user", user_id, name, domain, lambda uid, did: _User(uid, name, password, did)
        )

    def add_project(self, name: str, *, domain: str = DEFAULT_DOMAIN, project_id: str | None = None) -> str:
        """Add a project (Huawei IAM: one per region, named like the region, e.g. ``cn-north-4``; any name
        works, e.g. ``MOS`` or ``cn-north-4_sub``); returns the project id.

        Raises ValueError for a duplicate id, or a duplicate name within the domain.
        """
        return self._add_to_domain(
            self._projects, "project", project_id, name, domain, lambda pid, did: _Project(pid, name, did)
        )

    def add_application_credential(
        self, user_id: str, secret: str, *, project_id: str, app_cred_id: str | None = None, name: str | None = None
    ) -> str:
        """Add an application credential of ``user_id`` scoped to ``project_id``; returns its id.

        ``name`` defaults to ``app-cred-<first 8 characters of the id>``. Raises ValueError for an unknown
        user or project or a duplicate id.
        """
        app_cred_id = app_cred_id or _new_id()
        with self._lock:
            if user_id not in self._users:
                raise ValueError("unknown user id")
            if project_id not in self._projects:
                raise ValueError("unknown project id")
            if app_cred_id in self._app_creds:
                raise ValueError("duplicate application credential id")
            cred_name = name or f"app-cred-{app_cred_id[:8]}"
            self._app_creds[app_cred_id] = _AppCred(app_cred_id, cred_name, secret, user_id, project_id)
        return app_cred_id

    def add_aksk(self, access_key: str, secret_key: str, *, security_token: str | None = None) -> None:
        """Accept AK/SK signatures by ``access_key`` (replacing an earlier pair with the same AK).

        With a ``security_token`` (temporary credentials), a request must also carry it, signed, in
        ``X-Security-Token``.
        """
        if not access_key or not secret_key:
            raise ValueError("access key and secret key must not be empty")
        with self._lock:
            self._aksk[access_key] = (secret_key, security_token)

    def set_catalog(
        self, region_endpoints: Mapping[str, str], *, service_type: str = "image", interface: str = "public"
    ) -> None:
        """Set the endpoints of ``service_type`` (region -> URL) in the catalog of tokens issued from now on.

        Replaces that service type's previous endpoints (other service types are kept); an empty mapping
        removes the service. Each region also gets a decoy endpoint on another interface (see the module
        docstring). Endpoint ids stay the same while a region's URL does not change.
        """
        if interface not in ("public", "internal", "admin"):
            raise ValueError("interface must be public, internal or admin")
        with self._lock:
            previous = self._services.get(service_type)
            if not region_endpoints:
                self._services.pop(service_type, None)
                return
            endpoints: dict[str, tuple[str, str, str]] = {}
            for region, url in region_endpoints.items():
                old = previous.endpoints.get(region) if previous and previous.interface == interface else None
                endpoints[region] = old if old and old[0] == url else (url, _new_id(), _new_id())
            self._services[service_type] = _Service(previous.id if previous else _new_id(), interface, endpoints)

    def set_fault(self, fault: str | None, **options: Any) -> None:
        """Make every identity request misbehave (None restores normal service).

        ``"down"``: 503 with a Keystone error body. ``"hang"``: read the request, then answer nothing
        until :meth:`stop` (the connection is closed unanswered) or until the fault is changed (the held
        requests are then answered according to the new fault, or normally). ``"status"`` with
        ``code=`` (400..599, default 503): that status with a Keystone error body.
        Raises ValueError for an unknown fault, option or code.
        """
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(sorted(FAULTS))}")
        allowed = {"code"} if fault == "status" else set()
        if unknown := set(options) - allowed:
            raise ValueError(f"fault {fault!r} takes no option {sorted(unknown)[0]!r}")
        code = options.get("code", 503)
        if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
            raise ValueError("option code must be an int between 400 and 599")
        with self._lock:
            self._fault, self._fault_options = fault, dict(options)

    def fault(self) -> str | None:
        """The fault currently set (None for normal service)."""
        with self._lock:
            return self._fault

    def revoke_all(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._tokens.clear()

    # -- counters ----------------------------------------------------------------------------------

    def token_requests(self, project: str | None = None) -> int:
        """How many ``POST /v3/auth/tokens`` requests arrived — failed ones and ones answered by a fault
        included. With ``project``, only those scoped to the project of that *name* (scope by project id,
        and application credentials, are attributed to the name of a known project)."""
        with self._lock:
            if project is None:
                return sum(self._token_requests.values())
            return self._token_requests[project]

    def issued_tokens(self) -> list[str]:
        """Every token issued so far, expired and revoked ones included."""
        with self._lock:
            return list(self._issued)

    def project_list_requests(self) -> int:
        """How many ``GET /v3/auth/projects`` requests arrived (401s and faulted ones included)."""
        with self._lock:
            return self._project_list_requests

    # -- validation (used by region_authorizer) ----------------------------------------------------

    def validate_token(self, token: str) -> TokenInfo | None:
        """The token's info when it was issued here, has not expired (wall clock) and was not revoked."""
        with self._lock:
            record = self._tokens.get(token)
            if record is None:
                return None
            if time.time() >= record.expires_at:
                del self._tokens[token]
                return None
            project = self._projects.get(record.project_id) if record.project_id else None
            return TokenInfo(
                user_id=record.user_id,
                project_id=record.project_id,
                project_name=project.name if project else None,
                expires_at=record.expires_at,
            )

    def verify_aksk(
        self,
        method: str,
        path_and_query: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        now: float | None = None,
    ) -> str | None:
        """The access key when the request carries a valid Huawei Cloud ``SDK-HMAC-SHA256`` signature by
        a key added with :meth:`add_aksk`; None otherwise.

        ``path_and_query`` is the request target as sent (percent-encoded path, optional ``?query``);
        ``headers`` are looked up case-insensitively; ``now`` (Unix time) replaces the clock for the
        ``X-Sdk-Date`` freshness check (±15 minutes). Header values are taken as http.server delivers
        them (ISO-8859-1-decoded bytes) and re-read as UTF-8 when possible, which is how the Huawei SDK
        sends non-ASCII values. The payload hash is ``UNSIGNED-PAYLOAD`` when the signed header
        ``X-Sdk-Content-Sha256`` says so (and the body is not empty), else the SHA-256 of ``body``.

        This is an independent implementation of the documented algorithm
        (https://support.huaweicloud.com/intl/en-us/devg-apisign/api-sign-algorithm.html), so that tests
        check the production signer against the specification rather than against itself.
        """
        lowered = {name.lower(): _header_text(str(value)) for name, value in headers.items()}
        parsed = _parse_authorization(lowered.get("authorization", ""))
        if parsed is None:
            return None
        access_key, signed_headers, signature = parsed
        if "x-sdk-date" not in signed_headers or any(name not in lowered for name in signed_headers):
            return None
        date = lowered["x-sdk-date"]
        if not _fresh(date, time.time() if now is None else now):
            return None
        with self._lock:
            pair = self._aksk.get(access_key)
        if pair is None:
            return None
        secret_key, security_token = pair
        if security_token is not None and not (
            "x-security-token" in signed_headers and _same(lowered["x-security-token"], security_token)
        ):
            return None
        canonical = _canonical_request(method, path_and_query, lowered, signed_headers, body)
        string_to_sign = f"{AKSK_ALGORITHM}\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        return access_key if _same(signature, expected) else None

    # -- used by the request handler ---------------------------------------------------------------

    def _ensure_domain(self, name: str) -> str:
        """The id of domain ``name``, creating it; caller holds the lock."""
        if name not in self._domains:
            self._domains[name] = _new_id()
        return self._domains[name]

    def _add_to_domain(
        self,
        records: dict[str, _InDomainT],
        kind: str,
        record_id: str | None,
        name: str,
        domain: str,
        make: Callable[[str, str], _InDomainT],
    ) -> str:
        """Add ``make(id, domain id)`` to ``records`` (the domain is created if new); returns the id.

        Raises ValueError for a duplicate id, or a duplicate name within the domain.
        """
        record_id = record_id or _new_id()
        with self._lock:
            domain_id = self._ensure_domain(domain)
            if record_id in records:
                raise ValueError(f"duplicate {kind} id")
            if any(r.name == name and r.domain_id == domain_id for r in records.values()):
                raise ValueError(f"duplicate {kind} name in that domain")
            records[record_id] = make(record_id, domain_id)
        return record_id

    def _domain_name(self, domain_id: str) -> str:
        return next((name for name, did in self._domains.items() if did == domain_id), domain_id)

    def _fault_plan(self) -> _FaultPlan:
        with self._lock:
            return _FaultPlan(self._fault, dict(self._fault_options), self._release)

    def _count_token_request(self, payload: Any) -> None:
        with self._lock:
            self._token_requests[self._attributed_project(payload)] += 1

    def _count_project_list_request(self) -> None:
        with self._lock:
            self._project_list_requests += 1

    def _attributed_project(self, payload: Any) -> str | None:
        """Best-effort name of the project a token request asks for; caller holds the lock."""
        try:
            auth = payload["auth"]
            scope = auth.get("scope")
            if isinstance(scope, dict) and isinstance(scope.get("project"), dict):
                wanted = scope["project"]
                if isinstance(wanted.get("name"), str):
                    return cast(str, wanted["name"])
                project = self._projects.get(wanted.get("id"))
                return project.name if project else None
            identity = auth["identity"]
            if identity.get("methods") == ["application_credential"]:
                cred = self._find_app_cred(identity["application_credential"])
                return self._projects[cred.project_id].name if cred else None
        except (KeyError, TypeError, AttributeError, _BadRequest):
            pass
        return None

    def _issue(self, payload: Any, include_catalog: bool) -> tuple[str, dict[str, Any]] | None:
        """Authenticate a token request: (token, response body), or None for 401. Raises _BadRequest."""
        auth = _obj(_obj(payload).get("auth"))
        identity = _obj(auth.get("identity"))
        methods = identity.get("methods")
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise _BadRequest
        scope = auth.get("scope")
        with self._lock:
            cred: _AppCred | None = None
            if methods == ["password"]:
                user = self._password_user(_obj(identity.get("password")))
            elif methods == ["application_credential"]:
                wanted = _obj(identity.get("application_credential"))
                presented = _str(wanted.get("secret"))
                cred = self._find_app_cred(wanted)
                if cred is None or scope is not None or not _same(presented, cred.secret):
                    return None  # Keystone refuses an explicit scope with an application credential
                user = self._users.get(cred.user_id)
            else:
                return None
            if user is None:
                return None
            if cred is not None:
                project, domain_id = self._projects.get(cred.project_id), None
            else:
                resolved = self._resolve_scope(scope)
                if resolved is None:
                    return None
                project, domain_id = resolved
            return self._new_token(user, methods, project, domain_id, cred, include_catalog)

    def _password_user(self, password: dict[str, Any]) -> _User | None:
        wanted = _obj(password.get("user"))
        presented = _str(wanted.get("password"))
        if "id" in wanted:
            user = self._users.get(_str(wanted["id"]))
        else:
            name = _str(wanted.get("name"))
            domain_id = self._resolve_domain(wanted.get("domain"))
            user = next((u for u in self._users.values() if u.name == name and u.domain_id == domain_id), None)
        if user is None:
            _same(presented, presented)  # about the same work as a real comparison
            return None
        return user if _same(presented, user.password) else None

    def _find_app_cred(self, wanted: dict[str, Any]) -> _AppCred | None:
        if "id" in wanted:
            return self._app_creds.get(_str(wanted["id"]))
        name = _str(wanted.get("name"))
        user_ref = _obj(wanted.get("user"))
        if "id" in user_ref:
            user_id: str | None = _str(user_ref["id"])
        else:
            user_name, domain_id = _str(user_ref.get("name")), self._resolve_domain(user_ref.get("domain"))
            user_id = next(
                (u.id for u in self._users.values() if u.name == user_name and u.domain_id == domain_id), None
            )
        return next((c for c in self._app_creds.values() if c.name == name and c.user_id == user_id), None)

    def _resolve_domain(self, ref: Any) -> str | None:
        """The id of a ``{"id"}`` or ``{"name"}`` domain reference, None when unknown."""
        ref = _obj(ref)
        if "id" in ref:
            domain_id = _str(ref["id"])
            return domain_id if domain_id in self._domains.values() else None
        return self._domains.get(_str(ref.get("name")))

    def _resolve_scope(self, scope: Any) -> tuple[_Project | None, str | None] | None:
        """(project, domain id) of a scope — both None when unscoped; None when unknown or unsupported."""
        if scope is None or scope == "unscoped":
            return None, None
        scope = _obj(scope)
        if set(scope) == {"project"}:
            wanted = _obj(scope["project"])
            if "id" in wanted:
                project = self._projects.get(_str(wanted["id"]))
            else:
                name, domain_id = _str(wanted.get("name")), self._resolve_domain(wanted.get("domain"))
                project = next(
                    (p for p in self._projects.values() if p.name == name and p.domain_id == domain_id), None
                )
            return (project, None) if project else None
        if set(scope) == {"domain"}:
            domain_id = self._resolve_domain(scope["domain"])
            return (None, domain_id) if domain_id else None
        return None  # system, trust and multiple scopes are not supported

    def _new_token(
        self,
        user: _User,
        methods: list[str],
        project: _Project | None,
        domain_id: str | None,
        cred: _AppCred | None,
        include_catalog: bool,
    ) -> tuple[str, dict[str, Any]]:
        """Record a token and build its response body; caller holds the lock."""
        issued = time.time()
        expires = issued + self._token_lifetime
        token = secrets.token_urlsafe(48)
        self._tokens[token] = _Token(user.id, project.id if project else None, expires)
        self._issued.append(token)
        body: dict[str, Any] = {
            "methods": list(methods),
            "user": {
                "id": user.id,
                "name": user.name,
                "domain": {"id": user.domain_id, "name": self._domain_name(user.domain_id)},
                "password_expires_at": None,
            },
            "audit_ids": [secrets.token_urlsafe(16)],
            "issued_at": _isotime(issued),
            "expires_at": _isotime(expires),
        }
        if project is not None:
            body["project"] = {
                "id": project.id,
                "name": project.name,
                "domain": {"id": project.domain_id, "name": self._domain_name(project.domain_id)},
            }
            body["is_domain"] = False
            body["roles"] = [dict(_ROLE)]
            if include_catalog:
                body["catalog"] = self._catalog()
        elif domain_id is not None:
            body["domain"] = {"id": domain_id, "name": self._domain_name(domain_id)}
            body["roles"] = [dict(_ROLE)]
        if cred is not None:
            body["application_credential"] = {"id": cred.id, "name": cred.name, "restricted": True}
        return token, {"token": body}

    def _catalog(self) -> list[dict[str, Any]]:
        """The catalog as Keystone renders it; caller holds the lock."""
        catalog = []
        for service_type, service in self._services.items():
            decoy = "public" if service.interface == "internal" else "internal"
            endpoints = [
                {"id": endpoint_id, "interface": interface, "region": region, "region_id": region, "url": href}
                for region, (url, main_id, decoy_id) in service.endpoints.items()
                for endpoint_id, interface, href in (
                    (main_id, service.interface, url),
                    (decoy_id, decoy, f"{url.rstrip('/')}/{decoy}-not-used"),
                )
            ]
            name = "glance" if service_type == "image" else service_type
            catalog.append({"type": service_type, "name": name, "id": service.id, "endpoints": endpoints})
        return catalog

    def _projects_body(self, token: str | None) -> dict[str, Any] | None:
        """The ``/v3/auth/projects`` body, or None when ``token`` is not valid."""
        if token is None or self.validate_token(token) is None:
            return None
        with self._lock:
            projects = [
                {
                    "id": p.id,
                    "name": p.name,
                    "domain_id": p.domain_id,
                    "enabled": True,
                    "is_domain": False,
                    "parent_id": p.domain_id,
                    "description": "",
                }
                for p in self._projects.values()
            ]
        return {"projects": projects, "links": {"self": f"{self.base_url}/v3/auth/projects"}}

    def _version(self) -> dict[str, Any]:
        return {
            "id": VERSION_ID,
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.auth_url}/"}],
            "media-types": [{"base": JSON_TYPE, "type": "application/vnd.openstack.identity-v3+json"}],
        }


def _obj(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _BadRequest
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _BadRequest
    return value


# --------------------------------------------------------------------------------------------------
# AK/SK signature (SDK-HMAC-SHA256)


def _header_text(value: str) -> str:
    """A header value as the signer saw it: http.server decodes header bytes as ISO-8859-1, the Huawei
    SDK sends values UTF-8-encoded."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """(access key, signed header names, signature) of ``SDK-HMAC-SHA256 Access=.., SignedHeaders=..,
    Signature=..``; None when malformed. Signed header names must be lower-case and unique."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != AKSK_ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep or key in fields:
            return None
        fields[key] = item.strip()
    access, signed, signature = fields.get("Access"), fields.get("SignedHeaders"), fields.get("Signature")
    if not access or not signed or not signature:
        return None
    names = signed.split(";")
    if any(not name or name != name.lower() for name in names) or len(set(names)) != len(names):
        return None
    return access, names, signature


def _fresh(date: str, now: float) -> bool:
    try:
        signed_at = datetime.strptime(date, _DATE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return False
    return abs(now - signed_at) <= AKSK_MAX_SKEW_S


def _encode(text: str) -> str:
    """Percent-encode everything but the unreserved characters ``A-Za-z0-9-_.~`` (UTF-8, upper-case hex)."""
    return "".join(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode("utf-8"))


def _canonical_request(
    method: str, path_and_query: str, headers: Mapping[str, str], signed_headers: list[str], body: bytes
) -> str:
    """The canonical request of the SDK-HMAC-SHA256 algorithm; ``headers`` has lower-case names."""
    path, _, query = path_and_query.partition("#")[0].partition("?")
    uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(
        (unquote(key), unquote(value))
        for key, _, value in (piece.partition("=") for piece in query.split("&") if piece)
    )
    canonical_query = "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    unsigned = bool(body) and "x-sdk-content-sha256" in signed_headers
    payload_hash = (
        "UNSIGNED-PAYLOAD"
        if unsigned and headers["x-sdk-content-sha256"] == "UNSIGNED-PAYLOAD"
        else hashlib.sha256(body).hexdigest()
    )
    return "\n".join((method.upper(), uri, canonical_query, canonical_headers, ";".join(signed_headers), payload_hash))


# --------------------------------------------------------------------------------------------------
# Region authorizer


class RegionAuthorizer:
    """An :data:`tests.support.regions.Authorizer` accepting credentials issued by an :class:`IdentitySimulator`.

    A schema request of region R is allowed when

    (a) its ``X-Auth-Token`` is a live token of the identity service and — with ``per_region_projects``
        (Huawei IMS is project-scoped per region) — the token is scoped to the project named R; or
    (b) it carries a valid AK/SK signature (:meth:`IdentitySimulator.verify_aksk`; no body) and — when
        ``project_ids`` is given — its ``X-Project-Id`` header equals ``project_ids[R]`` (a region
        missing from ``project_ids`` is refused).

    Counts the requests it refuses, per region (:meth:`rejected`). Thread-safe.
    """

    def __init__(
        self,
        identity: IdentitySimulator,
        *,
        per_region_projects: bool = True,
        project_ids: Mapping[str, str] | None = None,
    ) -> None:
        self._identity = identity
        self._per_region_projects = per_region_projects
        self._project_ids = dict(project_ids) if project_ids is not None else None
        self._lock = threading.Lock()
        self._rejected: Counter[str] = Counter()

    def __call__(self, region: str, method: str, target: str, headers: Mapping[str, str]) -> bool:
        lowered = {name.lower(): value for name, value in headers.items()}
        allowed = self._token_ok(region, lowered.get("x-auth-token")) or self._aksk_ok(region, method, target, lowered)
        if not allowed:
            with self._lock:
                self._rejected[region] += 1
        return allowed

    def rejected(self, region: str | None = None) -> int:
        """How many requests (of ``region``, or of all regions) were refused."""
        with self._lock:
            return self._rejected[region] if region is not None else sum(self._rejected.values())

    def _token_ok(self, region: str, token: str | None) -> bool:
        info = self._identity.validate_token(token) if token else None
        if info is None:
            return False
        return not self._per_region_projects or info["project_name"] == region

    def _aksk_ok(self, region: str, method: str, target: str, headers: Mapping[str, str]) -> bool:
        if "authorization" not in headers or self._identity.verify_aksk(method, target, headers) is None:
            return False
        if self._project_ids is None:
            return True
        expected = self._project_ids.get(region)
        presented = headers.get("x-project-id")
        return expected is not None and presented is not None and _same(presented, expected)


def region_authorizer(
    identity: IdentitySimulator, *, per_region_projects: bool = True, project_ids: Mapping[str, str] | None = None
) -> RegionAuthorizer:
    """Build the authorizer for ``tests.support.regions.Simulator(..., authorizer=...)``; see
    :class:`RegionAuthorizer`."""
    return RegionAuthorizer(identity, per_region_projects=per_region_projects, project_ids=project_ids)


# --------------------------------------------------------------------------------------------------
# HTTP request handler


class _Handler(LoopbackHandler):
    """Routes identity requests; never logs anything about them. A request whose body cannot be read
    (chunked, or too large) is answered 400 and closes the connection (``Connection: close``)."""

    server_version = "Identity-Simulator/1.0"

    @property
    def identity(self) -> IdentitySimulator:
        return cast(TrackingServer[IdentitySimulator], self.server).owner

    # -- routing -----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        route = (self.command, tuple(part for part in path.split("/") if part))
        body = self._read_body()
        identity = self.identity
        payload: Any = None
        if route == ("POST", ("v3", "auth", "tokens")):
            payload = _json_or_none(body)
            identity._count_token_request(payload)
        elif route == ("GET", ("v3", "auth", "projects")):
            identity._count_project_list_request()
        if not self._survive_faults():
            return
        if body is None:
            self._error(400)
        elif route == ("POST", ("v3", "auth", "tokens")):
            self._issue_token(payload, "nocatalog" not in query.split("&"))
        elif route == ("GET", ("v3", "auth", "projects")):
            self._list_projects()
        elif route in (("GET", ("v3",)), ("HEAD", ("v3",))):
            self._send_json(200, {"version": identity._version()})
        elif route in (("GET", ()), ("HEAD", ())):
            self._send_json(300, {"versions": {"values": [identity._version()]}})
        else:
            self._error(404)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def _read_body(self) -> bytes | None:
        """The request body (b"" when there is none); None when it cannot be read (connection closed)."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def _survive_faults(self) -> bool:
        """Apply the current fault: True when the request should then be served normally."""
        while True:
            plan = self.identity._fault_plan()
            if plan.fault is None:
                return True
            if plan.fault == "down":
                self._error(503)
                return False
            if plan.fault == "status":
                self._error(int(plan.options.get("code", 503)))
                return False
            if not self._hang(plan.release):  # "hang"
                return False

    def _hang(self, release: threading.Event) -> bool:
        """Answer nothing while the fault is ``hang``: False (connection closed unanswered) on stop() or
        when the client gives up, True when the fault was changed."""
        while not release.wait(_HANG_POLL_S):
            if self.identity.fault() != "hang":
                return True
            if peer_closed(self.connection):
                break
        self.close_connection = True
        return False

    def _issue_token(self, payload: Any, include_catalog: bool) -> None:
        try:
            issued = self.identity._issue(payload, include_catalog)
        except _BadRequest:
            self._error(400)
            return
        if issued is None:
            self._error(401)
            return
        token, body = issued
        self._send_json(201, body, {"X-Subject-Token": token})

    def _list_projects(self) -> None:
        body = self.identity._projects_body(self.headers.get("X-Auth-Token"))
        if body is None:
            self._error(401)
        else:
            self._send_json(200, body)

    # -- response helpers --------------------------------------------------------------------------

    def _send_json(self, status: int, document: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "X-Auth-Token")
        self.send_header("x-openstack-request-id", f"req-{uuid.uuid4()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status == 401:
            self.send_header("WWW-Authenticate", f'Keystone uri="{self.identity.base_url}"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int) -> None:
        """A Keystone error body with a fixed message (never anything from the request)."""
        message = _MESSAGES.get(status, _phrase(status))
        self._send_json(status, {"error": {"code": status, "title": _phrase(status), "message": message}})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Simulated error"


def _json_or_none(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


IdentitySimulator.handler_class = _Handler  # assigned here because _Handler is defined after IdentitySimulator
