"""The guarded port: TLS, basic authentication, response headers and a rate limit from the web configuration.

:class:`Guard` holds what :mod:`monitor.config.webconfig` read, built into an ``ssl.SSLContext`` and
credentials, and serves it through :class:`GuardMiddleware` (ASGI, outermost) and :attr:`Guard.context`
(the listening socket's TLS context). It re-reads the file and the files it names when their content changes
(:meth:`Guard.watch`) or when asked (:meth:`Guard.reload`, on SIGHUP): the new configuration is built
completely first and swapped in at once; a bad one is logged and the last good one stays.

* TLS (:mod:`monitor.web.tls`): the socket keeps one :class:`~monitor.web.tls.SwappableContext` whose
  ``wrap_bio`` hands each new connection the current context, so a renewed certificate, CA or client-auth
  policy applies from the next connection on without a restart (open keep-alive connections keep theirs).
  Turning TLS on or off needs a restart.
* Authentication: with ``basic_auth_users`` every route but :data:`HEALTH_PATHS` needs a valid user, or the
  API's bearer token (``api.token``), which authenticates a request on its own. Write routes check the bearer
  token themselves (:mod:`monitor.web.api`), so a basic-auth user can read but not write.
* bcrypt is slow on purpose (~60 ms at cost 10): as exporter-toolkit does, a verified (user, hash, password)
  is cached and bcrypt runs one at a time, on a worker thread (never on the server's event loop). The cache
  keys are HMAC-SHA256 digests under a key made at start, so no plaintext password is kept.
* Response headers from ``http_server_config.headers`` go on every response that does not set the header
  itself (the UI's own, stricter Content-Security-Policy and X-Frame-Options stay).

Nothing here logs, raises or shows a password, a hash, a token or a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Protocol

import bcrypt
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.config import ConfigError
from monitor.config.webconfig import RateLimit, WebSettings, load_web_config
from monitor.web.tls import ServerContext, SwappableContext, server_context

log = logging.getLogger(__name__)

HEALTH_PATHS: Final = frozenset({"/healthz", "/readyz", "/-/healthy", "/-/ready"})
"""Answered without credentials (and without the rate limit): probes and HEALTHCHECKs carry none."""
REALM: Final = "schema-drift-monitor"
CACHE_SIZE: Final = 100
WATCH_INTERVAL_S: Final = 2.0


# --- credentials ---------------------------------------------------------------------------------------------


class Secret(Protocol):
    """A secret held the way the configuration holds them (pydantic's ``SecretStr``): shown only on request."""

    def get_secret_value(self) -> str: ...


@cache
def _decoy_hash() -> bytes:
    """A hash of a random password, checked for unknown users so that timing does not tell which users exist."""
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(10))


class VerifiedCache:
    """Outcomes of bcrypt checks by an HMAC of (user, hash, password): bounded, least recently used out first.

    The HMAC key lives only in this process, so an entry reveals no password; a changed hash is another key.
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, bool] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # held for a lookup or an insert only: the event loop asks too
        self.bcrypt_lock = threading.Lock()  # one bcrypt at a time: it is CPU-bound and slow on purpose

    def digest(self, user: bytes, hashed: bytes, password: bytes) -> bytes:
        message = b"\0".join((user, hashed, password))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, digest: bytes) -> bool | None:
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:
                self._entries.move_to_end(digest)
            return found

    def put(self, digest: bytes, valid: bool) -> None:
        with self._lock:
            self._entries[digest] = valid
            self._entries.move_to_end(digest)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __repr__(self) -> str:
        return f"VerifiedCache({len(self._entries)} entries)"


class Credentials:
    """The basic-auth users of one web configuration and the API's bearer token.

    :meth:`cached` answers from the cache (fast, for the event loop); :meth:`verify` runs bcrypt (slow, for a
    worker thread). ``verifications`` counts bcrypt runs. The ``repr`` names the users only.
    """

    def __init__(self, users: Mapping[str, Secret], token: Secret | None, verified: VerifiedCache) -> None:
        self._hashes = {name: secret.get_secret_value().encode("ascii") for name, secret in users.items()}
        self._token = token.get_secret_value().encode("utf-8") if token is not None else None
        self._verified = verified
        self.verifications = 0

    @property
    def required(self) -> bool:
        """Whether requests need credentials at all (``basic_auth_users`` is not empty)."""
        return bool(self._hashes)

    def bearer(self, given: str) -> bool:
        """Whether ``given`` is the API token (compared in constant time)."""
        return self._token is not None and hmac.compare_digest(given.encode("utf-8"), self._token)

    def _digest(self, user: str, password: bytes) -> bytes:
        hashed = self._hashes.get(user, b"")
        return self._verified.digest(user.encode("utf-8"), hashed, password)

    def cached(self, user: str, password: bytes) -> bool | None:
        """The remembered outcome for this user and password, or None when bcrypt must run."""
        return self._verified.get(self._digest(user, password))

    def verify(self, user: str, password: bytes) -> bool:
        """bcrypt's verdict (one at a time; unknown users are checked against a decoy hash all the same)."""
        digest = self._digest(user, password)
        with self._verified.bcrypt_lock:
            known = self._verified.get(digest)  # a request just before this one may have checked the same
            if known is not None:
                return known
            hashed = self._hashes.get(user)
            self.verifications += 1
            try:
                valid = bcrypt.checkpw(password, hashed or _decoy_hash()) and hashed is not None
            except ValueError:  # longer than bcrypt's 72 bytes, or a hash bcrypt cannot read
                valid = False
            self._verified.put(digest, valid)
        return valid

    def __repr__(self) -> str:
        return f"Credentials(users={sorted(self._hashes)}, token={'set' if self._token else 'none'})"


class TokenBucket:
    """``rate_limit``: one request more every ``interval`` seconds, at most ``burst`` saved up (Go's rate)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._burst, self._clock = limit.interval, float(limit.burst), clock
        self._tokens, self._last = self._burst, clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) / self._interval)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


# --- the guard -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardState:
    """One web configuration, built: swapped whole on reload."""

    settings: WebSettings
    credentials: Credentials
    headers: tuple[tuple[str, str], ...]
    limiter: TokenBucket | None
    context: ServerContext | None


def _fingerprint(files: tuple[Path, ...]) -> tuple[tuple[str, str | None], ...]:
    """A digest of each file's content (None: unreadable): a change of any is a reason to reload."""
    found: list[tuple[str, str | None]] = []
    for path in files:
        try:
            found.append((str(path), hashlib.sha256(path.read_bytes()).hexdigest()))
        except OSError:
            found.append((str(path), None))
    return tuple(found)


class Guard:
    """The web configuration in force for the port, and its reloading; raises ConfigError when first built."""

    def __init__(self, settings: WebSettings, token: Secret | None, watch_interval: float = WATCH_INTERVAL_S) -> None:
        self._token = token
        self._verified = VerifiedCache()
        self._state = self._build(settings)
        self._fingerprint = _fingerprint(settings.files)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._interval = watch_interval
        self.context: SwappableContext | None = None
        if self._state.context is not None:
            self.context = SwappableContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.current = self._state.context
        self._failing: str | None = None  # the problem of the last reload while it stays unsolved
        self._last_logged: str | None = None
        self.reloads = 0
        self.failed_reloads = 0  # reloads that failed and said so in the log

    @classmethod
    def load(cls, path: str | Path, token: Secret | None, watch_interval: float = WATCH_INTERVAL_S) -> Guard:
        """The guard for the file at ``path``; raises ConfigError (naming the file) when it cannot be used."""
        return cls(load_web_config(path), token, watch_interval)

    def _build(self, settings: WebSettings) -> GuardState:
        context = server_context(settings.tls, settings.source) if settings.tls else None
        limiter = TokenBucket(settings.rate_limit) if settings.rate_limit else None
        credentials = Credentials(settings.users, self._token, self._verified)
        return GuardState(settings, credentials, settings.headers, limiter, context)

    @property
    def state(self) -> GuardState:
        return self._state

    @property
    def tls(self) -> bool:
        return self.context is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind this guard."""
        return GuardMiddleware(app, self)

    def describe(self) -> str:
        """One line for the log: what the port requires (no secret)."""
        settings = self._state.settings
        tls = settings.tls
        parts = [f"TLS {tls.min_version}..{tls.max_version}, client certificates {tls.client_auth}" if tls
                 else "plain HTTP"]  # fmt: skip
        users = len(settings.users)
        parts.append(f"basic auth for {users} user(s)" if users else "no basic auth")
        if settings.headers:
            parts.append(f"{len(settings.headers)} response header(s)")
        if settings.rate_limit:
            parts.append(f"rate limit 1 per {settings.rate_limit.interval:g}s, burst {settings.rate_limit.burst}")
        return f"web configuration {settings.source}: " + "; ".join(parts)

    def reload(self, why: str = "SIGHUP") -> bool:
        """Read the file again and swap it in; on a problem log it, keep the last good one and return False.

        A look of the watcher (``why`` "file changed" or "retry") does not log the same problem twice.
        """
        with self._lock:
            self._fingerprint = _fingerprint(self._state.settings.files)
            try:
                state = self._load()
            except ConfigError as exc:
                problem, self._failing = str(exc), str(exc)
                if why == "SIGHUP" or problem != self._last_logged:
                    self._last_logged = problem
                    self.failed_reloads += 1
                    log.error("reloading the web configuration (%s) failed; the last good one stays in force: %s",
                              why, problem)  # fmt: skip
                return False
            self._state, self._failing, self._last_logged = state, None, None
            self._fingerprint = _fingerprint(state.settings.files)
            if self.context is not None and state.context is not None:
                self.context.current = state.context
            self.reloads += 1
        log.info("reloaded (%s): %s", why, self.describe())
        return True

    def _load(self) -> GuardState:
        """The file built anew; raises ConfigError, also for a change between plain HTTP and TLS."""
        path = self._state.settings.source
        state = self._build(load_web_config(path))
        if (state.context is None) != (self.context is None):
            raise ConfigError(path, ["turning TLS on or off needs a restart of the monitor"])
        return state

    def check(self) -> bool:
        """Reload when the file or a file it names changed since the last look, or while the last reload
        failed (a certificate it names may have appeared since); returns whether it reloaded."""
        if self._failing is not None:
            return self.reload("retry")
        if _fingerprint(self._state.settings.files) == self._fingerprint:
            return False
        return self.reload("file changed")

    def watch(self) -> None:
        """Look for changes every ``watch_interval`` seconds on a thread of its own, until :meth:`close`."""
        self._thread = threading.Thread(target=self._watch, name="web-config-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception:  # a bug must not end the watching silently
                log.exception("checking the web configuration for changes failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --- the middleware ------------------------------------------------------------------------------------------


def _basic_pair(value: str) -> tuple[str, bytes] | None:
    """User and password of a Basic credential; None when it is not ``base64(user:password)``."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _with_headers(send: Send, headers: tuple[tuple[str, str], ...]) -> Send:
    """``send`` adding ``headers`` to the response start, unless the response sets that header itself."""
    if not headers:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = MutableHeaders(scope=message)
            for name, value in headers:
                if name not in present:
                    present[name] = value
        await send(message)

    return sending


def _unauthorized(path: str) -> Response:
    headers = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
    message = "authentication required: a basic-auth user of the web configuration, or the API bearer token"
    if path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=401, headers=headers)
    return PlainTextResponse(message + "\n", status_code=401, headers=headers)


def _too_many(path: str) -> Response:
    message = "too many requests (rate_limit of the web configuration)"
    if path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=429)
    return PlainTextResponse(message + "\n", status_code=429)


class GuardMiddleware:
    """ASGI: the rate limit and authentication of the guard's current state, and its response headers."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.guard.state
        send = _with_headers(send, state.headers)
        path = scope["path"]
        if path not in HEALTH_PATHS:
            if state.limiter is not None and not state.limiter.allow():
                await _too_many(path)(scope, receive, send)
                return
            if state.credentials.required and not await _authenticated(scope, state.credentials):
                await _unauthorized(path)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _authenticated(scope: Scope, credentials: Credentials) -> bool:
    """A valid basic-auth user, or the API's bearer token; bcrypt (on a cache miss) runs on a worker thread."""
    scheme, _, value = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.bearer(value.strip())
    pair = _basic_pair(value) if scheme.lower() == "basic" else None
    if pair is None:
        return False
    known = credentials.cached(*pair)
    if known is not None:
        return known
    return await run_in_threadpool(credentials.verify, *pair)
