"""HTTP fetching with httpx on aiohttp: one poll of one endpoint, bounded in time and size.

``Fetcher.fetch(spec)`` returns the decoded response body of a 2xx JSON response or raises
:class:`FetchError`, whose ``reason`` is one of the fixed :class:`~monitor.domain.FailureReason` values.
With ``conditional`` headers (``If-None-Match`` / ``If-Modified-Since``, from :mod:`monitor.poll.conditional`)
a ``304 Not Modified`` is an answer too: an empty :class:`Fetched` of status 304; a 304 to a request that
quoted no validators is a failure (``http_other``): there is nothing it could refer to.
Guarantees:

* the whole poll (connect, redirects, retries, reading the body) ends within ``spec.timeout``;
* at most ``spec.max_body_bytes`` are read, counted both on the wire and after gzip/deflate decoding;
* redirects are followed only within the same scheme, host and port, at most ``MAX_REDIRECTS`` times;
  so the auth token never leaves the configured origin;
* only transient failures (connect errors, timeouts, 429/502/503/504) are retried, with exponential
  backoff or the server's ``Retry-After`` capped at ``spec.retry_after_cap``, never past the deadline;
* TLS verification is on unless the cloud's config says ``insecure: true``; ``ca_bundle`` adds a custom
  CA to the usual trust store and ``cert``/``key`` present a client certificate;
* credentials come from a :class:`~monitor.auth.credentials.Credentials` object, are added to every
  hop, and a 401 answered to a renewable token makes one new authentication and one more attempt; a
  second 401, or no credentials to be had, fails with reason ``auth``;
* proxies and netrc from the environment and cookies are never used; there are never more connections
  open per TLS setting than fetches in flight, which the caller bounds (``polling.max_concurrency``).

The code speaks httpx (``httpx.Request``, ``httpx.Response``, an ``httpx.AsyncBaseTransport``); the engine
under it is aiohttp (:class:`_AiohttpConnection`): httpx's own transport cost several times its CPU per
request (``bench/bench_wire.py``). Nothing else in the monitor imports aiohttp.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp
import certifi
import httpx

from monitor import __version__
from monitor.auth.credentials import AuthError, Credentials, RequestSigner
from monitor.domain import FailureReason, TargetSpec, TlsSettings, exponential_backoff
from monitor.judge.kinds import get_kind

MAX_REDIRECTS = 5
BACKOFF_BASE = 0.5
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
NOT_MODIFIED = 304
USER_AGENT = f"schema-drift-monitor/{__version__}"
REQUEST_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
KEEPALIVE_S = 5.0  # an idle connection is closed after this long (httpx's default, shorter than most servers')
URL_CACHE_SIZE = 100_000  # parsed target URLs kept

_T = TypeVar("_T")
_NO_BODY = httpx.ByteStream(b"")


class FetchError(Exception):
    """A poll failed; ``reason`` is the metric label, ``transient`` whether a retry may help."""

    def __init__(
        self,
        reason: FailureReason,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched document: the decoded body, the HTTP status (2xx, or 300 for version discovery) and the
    response headers (lower-case names)."""

    body: bytes
    status: int
    headers: Mapping[str, str]


class _Clients(Generic[_T]):
    """Transports of one connection each, for one TLS setting; each request in flight borrows one.

    aiohttp's connector bounds the connections in use, not the idle ones: it would keep one idle socket
    per origin polled in the last few seconds, thousands in a fleet of regions. A transport holds one
    connection, so this set bounds them: there are never more transports than requests ever in flight
    at once (the caller's ``polling.max_concurrency`` at most). An idle transport goes preferably to a
    request for the origin it last served (its connection is still open), else the one idle longest (which
    closes its connection to the old origin); a new one is made only when none is idle.
    """

    def __init__(self, make: Callable[[], _T]) -> None:
        self._make = make
        self._idle: OrderedDict[_T, str] = OrderedDict()  # transport -> its origin, longest idle first
        self._by_origin: dict[str, list[_T]] = {}
        self.all: list[_T] = []

    def borrow(self, origin: str) -> _Borrowed[_T]:
        """A transport for a request to ``origin`` (``scheme://host:port``), returned when the block ends."""
        return _Borrowed(self, origin)

    def _give_back(self, client: _T, origin: str) -> None:
        self._idle[client] = origin
        self._by_origin.setdefault(origin, []).append(client)

    def _take(self, origin: str) -> _T:
        warm = self._by_origin.get(origin)
        if warm:
            client = warm.pop()
            del self._idle[client]
            return client
        if self._idle:
            client, last = self._idle.popitem(last=False)
            self._by_origin[last].remove(client)
            return client
        client = self._make()
        self.all.append(client)
        return client


class _Borrowed(Generic[_T]):
    """``async with clients.borrow(origin) as transport``: taken on entry, given back on exit (a class, not
    a generator: this runs for every request)."""

    __slots__ = ("_client", "_clients", "_origin")

    def __init__(self, clients: _Clients[_T], origin: str) -> None:
        self._clients = clients
        self._origin = origin

    async def __aenter__(self) -> _T:
        self._client = self._clients._take(self._origin)
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        self._clients._give_back(self._client, self._origin)


class Fetcher:
    """Fetches for every target, one connection per fetch in flight (:class:`_Clients`, one set per TLS
    setting); close with ``aclose``. How many fetches are in flight at once is the caller's limit
    (``polling.max_concurrency``, held by :class:`~monitor.poll.service.PollService`)."""

    def __init__(self, connection: Callable[[ssl.SSLContext], httpx.AsyncBaseTransport] | None = None) -> None:
        """``connection`` makes the transport of one connection for a TLS context (default: aiohttp's)."""
        self._connection = connection or _AiohttpConnection
        self._clients: dict[TlsSettings, _Clients[httpx.AsyncBaseTransport]] = {}
        self._urls: dict[str, tuple[httpx.URL, str]] = {}  # spec.url -> (its parsed URL, its origin)

    def _clients_for(self, tls: TlsSettings) -> _Clients[httpx.AsyncBaseTransport]:
        """The transports for ``tls``; raises FetchError(tls) when its CA or client certificate is unusable."""
        clients = self._clients.get(tls)
        if clients is None:
            try:
                context = _ssl_context(tls)
            except (ssl.SSLError, OSError) as exc:
                raise FetchError(FailureReason.TLS, f"cannot load the CA bundle or client certificate: {exc}") from None
            clients = _Clients(lambda: self._connection(context))
            self._clients[tls] = clients
        return clients

    async def aclose(self) -> None:
        """Close every pooled connection."""
        for clients in self._clients.values():
            for client in clients.all:
                await client.aclose()
        self._clients.clear()

    async def fetch(
        self, spec: TargetSpec, credentials: Credentials | None = None, conditional: Mapping[str, str] | None = None
    ) -> Fetched:
        """Fetch ``spec.url``; returns the decoded document or raises FetchError (see module docstring).

        A 2xx answer is a document, and so is any status the target's kind accepts (300 for version discovery);
        with ``conditional`` headers (sent on every attempt and hop) a 304 is an empty Fetched of status 304.
        """
        signer = await _acquire(credentials)
        try:
            return await self._fetch_timed(spec, signer, conditional)
        except FetchError as exc:
            if exc.status != 401 or credentials is None or signer is None or not credentials.renewable:
                raise
            credentials.invalidate(signer)
        signer = await _acquire(credentials)
        try:
            return await self._fetch_timed(spec, signer, conditional)
        except FetchError as exc:
            if exc.status == 401:
                raise FetchError(FailureReason.AUTH, "HTTP 401 again with a new token", status=401) from None
            raise

    async def _fetch_timed(
        self, spec: TargetSpec, signer: RequestSigner | None, conditional: Mapping[str, str] | None
    ) -> Fetched:
        deadline = time.monotonic() + spec.timeout
        try:
            async with asyncio.timeout(spec.timeout):
                return await self._with_retries(spec, signer, deadline, conditional)
        except TimeoutError:
            raise FetchError(
                FailureReason.TIMEOUT, f"no complete response within {spec.timeout:g}s", transient=True
            ) from None

    async def _with_retries(
        self, spec: TargetSpec, signer: RequestSigner | None, deadline: float, conditional: Mapping[str, str] | None
    ) -> Fetched:
        attempt = 0
        while True:
            try:
                return await self._follow(spec, signer, conditional)
            except FetchError as exc:
                delay = _retry_delay(exc, attempt, spec)
                if delay is None or time.monotonic() + delay >= deadline:
                    raise
            attempt += 1
            await asyncio.sleep(delay)

    async def _follow(
        self, spec: TargetSpec, signer: RequestSigner | None, conditional: Mapping[str, str] | None
    ) -> Fetched:
        clients = self._clients_for(spec.tls)
        url, origin = self._parsed(spec.url)
        async with clients.borrow(origin) as transport:
            return await _follow_with(transport, url, spec, signer, conditional)

    def _parsed(self, url: str) -> tuple[httpx.URL, str]:
        """``url`` parsed, and its origin; parsed once per URL (httpx's parser is a good part of a request's CPU)."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()  # targets come and go; the ones polled now come back at their next poll
            url_ = httpx.URL(url)
            parsed = self._urls[url] = (url_, f"{url_.scheme}://{url_.netloc.decode('ascii')}")
        return parsed


class _AiohttpConnection(httpx.AsyncBaseTransport):
    """An httpx transport on aiohttp that holds at most one connection, to the origin it last served.

    aiohttp (C parser, one protocol object per connection) costs a fraction of httpcore's CPU per request.
    What this transport does not do, the Fetcher does: it follows no redirects, decodes no body (it hands
    gzip/deflate over as sent, so the size limit applies to the decoded bytes), keeps no cookies, reads no
    proxy or netrc from the environment, and sets no timeout of its own: the caller's deadline
    (``asyncio.timeout``) bounds the whole poll, and a per-read timer would be re-armed at every read.
    aiohttp's exceptions come out as the httpx exceptions httpcore raises for the same failure.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._session: aiohttp.ClientSession | None = None
        self._origin: tuple[str, str, int | None] | None = None

    async def _session_for(self, url: httpx.URL) -> aiohttp.ClientSession:
        origin = (url.scheme, url.host, url.port)
        if self._session is not None and origin != self._origin:
            await self.aclose()  # its idle connection to the old origin goes: one connection per transport
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._context, limit=1, keepalive_timeout=KEEPALIVE_S),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(),
                trust_env=False,
            )
        self._origin = origin
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (no body); the response's stream yields the body as sent. Raises httpx.TransportError."""
        session = await self._session_for(request.url)
        encoding = request.headers.encoding
        headers = [(name.decode(encoding), value.decode(encoding)) for name, value in request.headers.raw]
        try:
            response = await session.request(request.method, str(request.url), headers=headers, allow_redirects=False)
        except (aiohttp.ClientError, ValueError) as exc:
            raise _httpx_error(exc) from _cause(exc)
        return httpx.Response(response.status, headers=response.raw_headers, stream=_Body(response), request=request)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """The body of an aiohttp response, chunk by chunk as it arrives; closing it before the end drops the
    connection. An iterator, not an async generator: no generator frame, no loop hook per response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._response.content.readany()
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc) from _cause(exc)
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._response.release()  # back to the pool when read to the end, else closed


def _httpx_error(exc: Exception) -> httpx.TransportError:
    """The httpx exception for an aiohttp one, as httpcore would raise it for the same failure.

    aiohttp's texts name the host, the OS error or the malformed response line (as httpcore's did), never a
    request header; a header aiohttp refuses to send (a control character: ValueError) is reported without
    its value, which may be the token.
    """
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, DNS, TLS handshake
        return httpx.ConnectError(str(exc))
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc))
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed head: its message, not its "400, ... url="
        return httpx.RemoteProtocolError(exc.message or type(exc).__name__)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    if isinstance(exc, aiohttp.ClientOSError):  # reset or broken pipe on an open connection
        return httpx.ReadError(str(exc))
    if isinstance(exc, aiohttp.ClientError):
        return httpx.TransportError(str(exc) or type(exc).__name__)
    return httpx.LocalProtocolError("a request header has a character HTTP forbids")


def _cause(exc: BaseException) -> BaseException:
    """What aiohttp wrapped (the ssl or socket error) when it did, so the TLS reason is found; else ``exc``."""
    return exc.__cause__ if isinstance(exc.__cause__, OSError) else exc


async def _follow_with(
    transport: httpx.AsyncBaseTransport,
    url: httpx.URL,
    spec: TargetSpec,
    signer: RequestSigner | None,
    conditional: Mapping[str, str] | None = None,
) -> Fetched:
    """GET ``url`` and the redirects it permits (same origin), at most ``MAX_REDIRECTS``."""
    seen = [url]  # a list: hashing an httpx.URL formats it, and most polls are never redirected
    for _ in range(MAX_REDIRECTS + 1):
        headers = {**REQUEST_HEADERS, **(signer.headers("GET", str(url)) if signer else {})}
        if conditional:
            headers.update(conditional)
        try:
            outcome = await _get_once(transport, url, headers, spec)
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise _translate(exc) from None
        if isinstance(outcome, Fetched):
            return outcome
        if outcome in seen:
            raise FetchError(FailureReason.REDIRECT, "redirect loop")
        seen.append(url := outcome)
    raise FetchError(FailureReason.REDIRECT, f"more than {MAX_REDIRECTS} redirects")


async def _get_once(
    transport: httpx.AsyncBaseTransport, url: httpx.URL, headers: Mapping[str, str], spec: TargetSpec
) -> Fetched | httpx.URL:
    """One request: the document of a final response, or the URL a permitted redirect points to."""
    # stream=: no body, so none of httpx's body encoding and header re-assembly (most of a Request's CPU);
    # aiohttp adds the Host header
    request = httpx.Request("GET", url, headers=headers, stream=_NO_BODY)
    response = await transport.handle_async_request(request)
    statuses = get_kind(spec.kind).statuses
    try:
        if response.status_code == NOT_MODIFIED:
            return _not_modified(response, conditional="If-None-Match" in headers or "If-Modified-Since" in headers)
        # 300 Multiple Choices is how Keystone, Cinder, Manila and Glance answer version discovery (with a
        # Location naming their preferred version): for that kind it is the document, not a redirect
        if response.is_redirect and response.status_code not in statuses:
            return _redirect_target(url, response, spec.allow_http)
        return await _read_response(response, spec.max_body_bytes, statuses)
    finally:
        await response.aclose()


async def _acquire(credentials: Credentials | None) -> RequestSigner | None:
    if credentials is None:
        return None
    try:
        return await credentials.acquire()
    except AuthError as exc:
        raise FetchError(FailureReason.AUTH, str(exc)) from None


def _ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The usual trust store plus ``ca_bundle``; a client certificate; no verification only if insecure."""
    context = ssl.create_default_context(cafile=certifi.where())
    if tls.ca_bundle is not None:  # in addition to the usual trust store, not instead of it
        context.load_verify_locations(cafile=str(tls.ca_bundle))
    if tls.cert is not None:
        context.load_cert_chain(str(tls.cert), str(tls.key) if tls.key else None)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _retry_delay(exc: FetchError, attempt: int, spec: TargetSpec) -> float | None:
    """Seconds to wait before the next attempt, or None when the failure must not be retried."""
    if not exc.transient or attempt >= spec.retries:
        return None
    if exc.retry_after is not None:
        return min(exc.retry_after, spec.retry_after_cap)
    return exponential_backoff(attempt + 1, BACKOFF_BASE, spec.timeout)


def _translate(exc: BaseException) -> FetchError:
    """A FetchError with a fixed reason for an httpx/ssl/socket exception (no secrets in the text)."""
    if isinstance(exc, httpx.TimeoutException):
        return FetchError(FailureReason.TIMEOUT, type(exc).__name__, transient=True)
    if _is_tls_error(exc):
        return FetchError(FailureReason.TLS, f"TLS failure: {_tls_detail(exc)}")
    if isinstance(exc, httpx.LocalProtocolError):
        # our own request was refused by the HTTP library; its text may quote a header value (the token)
        return FetchError(FailureReason.CONNECT, "invalid request (LocalProtocolError)")
    return FetchError(FailureReason.CONNECT, f"{type(exc).__name__}: {_short(exc)}", transient=True)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else "connection failed"


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts, innermost last (bounded)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_tls_error(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) for e in _causes(exc)) or "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _tls_detail(exc: BaseException) -> str:
    for e in _causes(exc):
        if isinstance(e, ssl.SSLError):
            return str(getattr(e, "reason", None) or type(e).__name__)
    return "certificate verify failed"


def _redirect_target(current: httpx.URL, response: httpx.Response, allow_http: bool) -> httpx.URL:
    """The next URL of a same-origin redirect; raises FetchError(redirect) for any other."""
    location = response.headers.get("Location")
    if not location:
        raise FetchError(FailureReason.REDIRECT, f"{response.status_code} redirect without Location")
    target = current.join(location)
    if (target.host, target.port) != (current.host, current.port):
        raise FetchError(FailureReason.REDIRECT, f"redirect to another host ({target.host}) not followed")
    if target.scheme != current.scheme and not (target.scheme == "https" or allow_http):
        raise FetchError(FailureReason.REDIRECT, "redirect from https to plain http not followed")
    return target


def _not_modified(response: httpx.Response, *, conditional: bool) -> Fetched:
    """A 304: an empty Fetched when the request quoted validators; else a failure (``http_other``)."""
    if not conditional:
        raise FetchError(FailureReason.HTTP_OTHER, "HTTP 304 Not Modified to a request that quoted no validators",
                         status=NOT_MODIFIED)  # fmt: skip
    return Fetched(b"", NOT_MODIFIED, dict(response.headers.items()))


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unparsable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_json_type(content_type: str | None) -> bool:
    if content_type is None:
        return True  # no claim either way: let the JSON parser decide
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _read_response(response: httpx.Response, limit: int, statuses: frozenset[int]) -> Fetched:
    """Check status (2xx, or one of ``statuses``) and content type, then read at most ``limit`` decoded bytes."""
    status = response.status_code
    if not (200 <= status < 300 or status in statuses):
        raise FetchError(
            FailureReason.for_status(status),
            f"HTTP {status}",
            status=status,
            transient=status in TRANSIENT_STATUSES,
            retry_after=_parse_retry_after(response.headers.get("Retry-After")),
        )
    headers = dict(response.headers.items())  # lower-case names; a repeated header's values joined by ", "
    content_type = headers.get("content-type")
    if not _is_json_type(content_type):
        media = (content_type or "").split(";", 1)[0].strip()[:60]
        raise FetchError(FailureReason.INVALID_JSON, f"content type {media!r} is not JSON", status=status)
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(FailureReason.TOO_LARGE, f"Content-Length {declared} over limit {limit}", status=status)
    decoder = _Decoder(headers.get("content-encoding", "identity"), limit, status)
    # the transport's stream as it is (what aiter_raw() wraps in a generator, a re-chunker and a context)
    assert isinstance(response.stream, httpx.AsyncByteStream)
    async for chunk in response.stream:
        decoder.feed(chunk)
    return Fetched(decoder.finish(), status, headers)


class _Decoder:
    """Decodes gzip/deflate/identity incrementally, refusing more than ``limit`` bytes either side."""

    def __init__(self, encoding: str, limit: int, status: int) -> None:
        self._limit = limit
        self._status = status
        self._raw = 0
        self._size = 0  # decoded bytes so far
        self._out: list[bytes] = []  # joined once at the end (a body that came in one piece is not copied)
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS)
        else:
            raise FetchError(
                FailureReason.INVALID_JSON, f"unsupported Content-Encoding {encoding[:30]!r}", status=status
            )

    def _too_large(self) -> FetchError:
        return FetchError(FailureReason.TOO_LARGE, f"body over limit {self._limit} bytes", status=self._status)

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise self._too_large()
        self._out.append(data)

    def feed(self, chunk: bytes) -> None:
        self._raw += len(chunk)
        if self._raw > self._limit:
            raise self._too_large()
        if self._zlib is None:
            self._add(chunk)
            return
        data = chunk
        try:
            while data:
                # never more than one byte past the limit at a time: a bomb is refused after inflating that much
                self._add(self._zlib.decompress(data, self._limit - self._size + 1))
                data = self._zlib.unconsumed_tail
        except zlib.error:
            raise FetchError(FailureReason.INVALID_JSON, "corrupt compressed body", status=self._status) from None

    def finish(self) -> bytes:
        if self._zlib is not None:
            try:
                self._add(self._zlib.flush())
            except zlib.error:
                raise FetchError(FailureReason.INVALID_JSON, "corrupt compressed body", status=self._status) from None
        return b"".join(self._out)
