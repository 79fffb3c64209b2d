"""The region simulator of the tests: the demo's IMS / Glance region server plus faults and a control API.

:class:`Simulator` extends :class:`monitor.demo.server.RegionServer` (one loopback HTTP server playing
every configured region: ``GET /<region>/v2/schemas/<schema>`` answers with that region's copy of the
``images``, ``image``, ``members`` or ``member`` schema). Each region can be switched into a *fault* (see
:data:`FAULTS` and shared/FAULTS.md) that misbehaves the way real endpoints do: error statuses, hangs,
trickling bytes, oversized or gzip-bomb bodies, HTML pages, malformed JSON, redirects, flakiness.

Request handling, in order, for a schema route:

1. an unknown region or schema answers 404 (IMS error JSON) and is not counted;
2. the request is counted (:meth:`Simulator.requests`), whatever happens next;
3. when an *authorizer* is configured (see :data:`Authorizer`), it decides: a False answer, or an
   exception, answers 401; otherwise, when a token is configured, a missing or wrong ``X-Auth-Token``
   answers 401. Either way faults are not applied to a 401: the simulated gateway authenticates first.
   (:func:`tests.support.identity.region_authorizer` builds an authorizer that accepts Keystone tokens and
   AK/SK signatures issued by the fake identity service.)
4. the region's fault, if any, decides the response; otherwise the document is served, gzip-compressed
   when the client accepts gzip. Not faults in the strict sense: ``validators`` serves the document with an
   ``ETag`` and/or ``Last-Modified`` and answers a request quoting them with ``304 Not Modified`` (options:
   ``etag="content"`` derives it from the bytes served, any other value is sent as it is, however the document
   changes; ``last_modified="per_request"`` is a new date at every request, as OpenStack placement sends;
   ``honour=False`` never answers 304), and ``not_modified`` answers 304 to every request.
   The validators each request quoted are logged (:meth:`Simulator.quoted`).

A control API on the same server (never authenticated) lets subprocess tests drive it:
``POST /_sim/<region>/fault``, ``PUT /_sim/<region>/schemas/<schema>``, ``POST /_sim/<region>/mutate``
and ``GET /_sim/<region>/requests``. A control request that fails (400, 404) closes the connection, as
its body may be left unread, and says so (``Connection: close``).

Standard library only. Run ``python -m tests.support.regions --regions a,b --port 8000 [--token T]`` from the
repository root.
"""

from __future__ import annotations

import argparse
import copy
import email.utils
import functools
import gzip
import hashlib
import io
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from typing import Any, Final, Unpack, cast
from urllib.parse import urlsplit

from monitor.demo.loopback import TrackingServer
from monitor.demo.server import (
    JSON_TYPE,
    SCHEMAS,
    RegionHandler,
    RegionServer,
    ServerOptions,
    UnknownRegionError,
    accepts_gzip,
    default_document,
    encode_document,
    mutate_breaking,
)
from tests.support.sockets import peer_closed

__all__ = [  # the region server's documents and errors are part of the simulator's interface
    "FAULTS",
    "OVERSIZED_MODES",
    "SCHEMAS",
    "Authorizer",
    "Simulator",
    "UnknownRegionError",
    "default_document",
    "main",
    "mutate_breaking",
]

OVERSIZED_MODES: Final = ("content_length", "chunked", "close")
"""Framing options of the ``oversized`` fault."""

HTML_TYPE: Final = "text/html; charset=UTF-8"
HTML_PAGE: Final = b"<html><body>Service maintenance</body></html>"

_MIB: Final = 1024 * 1024
_MAX_SIZE: Final = 1024 * _MIB  # guards the size options against typos that would exhaust memory
_MAX_CONTROL_BODY: Final = 8 * _MIB

_FIXED_BODIES: Final[Mapping[str, bytes]] = {
    "not_object": b"[1, 2, 3]",
    "not_schema": b'{"hello": "world"}',
    "deep": b"[" * 10_000 + b"]" * 10_000,
    "nan": b'{"type": "object", "properties": {"x": {"default": NaN}}}',
    "duplicate_keys": b'{"type": "object", "type": "array", "properties": {}}',
}

# Allowed options per fault: name -> accepted Python types (bool only where listed, never for a number).
_OPTION_TYPES: Final[Mapping[str, Mapping[str, tuple[type, ...]]]] = {
    "status": {"code": (int,), "retry_after": (int, str)},
    "trickle": {"interval": (int, float)},
    "slow": {"delay": (int, float)},
    "oversized": {"size": (int,), "mode": (str,)},
    "gzip_bomb": {"size": (int,)},
    "redirect": {"location": (str,), "code": (int,)},
    "flaky": {"failures": (int,), "retry_after": (int, str)},
    "validators": {"etag": (str,), "last_modified": (str,), "honour": (bool,)},
}


Authorizer = Callable[[str, str, str, Mapping[str, str]], bool]
"""Decides whether a schema request may be served: ``authorizer(region, method, target, headers)``.

``region`` is the region path segment, ``method`` the HTTP method (``"GET"``), ``target`` the request
target exactly as received (path and query string, still percent-encoded) and ``headers`` a read-only,
case-insensitive mapping of the request headers (iteration yields lower-cased names; of a repeated header
only the first value is seen). Called from the server's handler threads, so it must be thread-safe.
"""


class _RequestHeaders(Mapping[str, str]):
    """Read-only, case-insensitive request headers: lower-cased names, first value of a repeated header."""

    def __init__(self, items: Iterable[tuple[str, object]]) -> None:
        self._headers: dict[str, str] = {}
        for name, value in items:
            self._headers.setdefault(name.lower(), str(value))

    def __getitem__(self, name: str) -> str:
        return self._headers[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


# --------------------------------------------------------------------------------------------------
# Documents served by faults


def _reverse_order(value: Any, key: str | None = None) -> Any:
    """``value`` with every object's keys, and every ``enum`` array, in reverse order."""
    if isinstance(value, dict):
        return {k: _reverse_order(v, k) for k, v in reversed(value.items())}
    if isinstance(value, list):
        items = [_reverse_order(v) for v in value]
        return items[::-1] if key == "enum" else items
    return value


def _encode_reordered(document: Mapping[str, Any]) -> bytes:
    """Same canonical content as :func:`encode_document`, different bytes (order and whitespace)."""
    text = json.dumps(_reverse_order(document), indent="\t", separators=(" ,  ", " :\t"), ensure_ascii=False)
    return f"\n  {text}\n\n".encode()


def _padded_json_chunks(size: int, chunk_size: int = 64 * 1024, fill: bytes = b"x") -> Iterator[bytes]:
    """``{"properties": {}, "pad": "xxx…"}`` of exactly ``size`` bytes (or the bare minimum), in chunks."""
    head, tail = b'{"properties": {}, "pad": "', b'"}'
    remaining = max(size - len(head) - len(tail), 0)
    block = fill * chunk_size
    yield head
    while remaining > 0:
        piece = block[: min(remaining, chunk_size)]
        remaining -= len(piece)
        yield piece
    yield tail


def _padded_json_length(size: int) -> int:
    return max(size, len(b'{"properties": {}, "pad": ""}'))


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    """gzip of ``{"properties": {}, "pad": "000…"}`` inflating to ``size`` bytes; built once per size."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as archive:
        for piece in _padded_json_chunks(size, chunk_size=_MIB, fill=b"0"):
            archive.write(piece)
    return buffer.getvalue()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Simulated error"


# --------------------------------------------------------------------------------------------------
# Fault validation


def _check_fault(fault: str | None, options: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``fault`` and ``options`` are something the handlers can serve."""
    if fault is None:
        if options:
            raise ValueError("options given without a fault")
        return
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(sorted(FAULTS))}")
    allowed = _OPTION_TYPES.get(fault, {})
    for name, value in options.items():
        if name not in allowed:
            raise ValueError(f"fault {fault!r} takes no option {name!r}")
        if (isinstance(value, bool) and bool not in allowed[name]) or not isinstance(value, allowed[name]):
            raise ValueError(f"option {name!r} of fault {fault!r} has the wrong type")
    _check_ranges(fault, options)


def _check_ranges(fault: str, options: Mapping[str, Any]) -> None:
    code = options.get("code")
    if code is not None and not (300 <= code <= 399 if fault == "redirect" else 100 <= code <= 599):
        raise ValueError(f"option code={code} is out of range for fault {fault!r}")
    if not 0 <= options.get("size", 0) <= _MAX_SIZE:
        raise ValueError(f"option size must be between 0 and {_MAX_SIZE}")
    if options.get("mode", "content_length") not in OVERSIZED_MODES:
        raise ValueError(f"option mode must be one of {', '.join(OVERSIZED_MODES)}")
    if options.get("interval", 1) <= 0:
        raise ValueError("option interval must be positive")
    if options.get("failures", 0) < 0:
        raise ValueError("option failures must not be negative")


# --------------------------------------------------------------------------------------------------
# State


@dataclass
class _FaultState:
    """The fault state of one simulated region; guarded by the simulator's lock."""

    fault: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    flaky_left: int = 0
    requests: int = 0


@dataclass(frozen=True)
class _Plan:
    """Everything a fault handler needs to answer one request, captured under the lock."""

    path: str
    fault: str | None
    options: Mapping[str, Any]
    document: Mapping[str, Any]  # shared, never mutated: set_document replaces documents wholesale
    release: threading.Event  # set by stop(); long-running handlers give up when it is set


class Simulator(RegionServer):
    """The demo's region server with faults, request counts, an authorizer hook and a control API; see
    the module docstring for the routes.

    Thread-safe: tests may call :meth:`set_fault`, :meth:`set_document` etc. while requests are served.
    The listening socket is bound in :meth:`start` (``port=0`` picks a free port); ``base_url`` is
    available from then on. :meth:`stop` releases hanging, trickling and slow handlers; it can be
    followed by another :meth:`start`. The lifecycle (:meth:`start`, :meth:`stop`, use as a context
    manager, :attr:`base_url`) and :meth:`mutate` are :class:`~monitor.demo.server.RegionServer`'s.
    """

    thread_name = "ims-simulator"
    server_label = "simulator"

    def __init__(
        self, regions: Sequence[str], *, authorizer: Authorizer | None = None, **options: Unpack[ServerOptions]
    ) -> None:
        """Raises ValueError for no regions, a duplicate, or a name unusable as a path segment.

        ``options`` are :class:`~monitor.demo.server.RegionServer`'s: ``token``, ``host``, ``port`` and
        ``tls``, a server-side context to serve HTTPS instead of HTTP (the handshake happens in the
        request's thread, so a client that never completes it holds no one). ``authorizer``, when given,
        replaces the ``token`` check (``token`` is then not consulted); see step 3 of the module docstring.
        """
        super().__init__(regions, **options)
        self._authorizer = authorizer
        self._faults = {name: _FaultState() for name in regions}
        self._log: list[tuple[float, str, str]] = []  # (time.monotonic(), region, target path) of every request
        self._quoted: list[tuple[str, str | None, str | None]] = []  # (region, If-None-Match, If-Modified-Since)
        self._clock = 0  # requests answered by validators(last_modified="per_request")

    # -- state -------------------------------------------------------------------------------------

    def set_document(self, region: str, schema: str, document: dict[str, Any]) -> None:
        """Serve a deep copy of ``document`` for ``schema`` in ``region`` from now on.

        Raises UnknownRegionError, or ValueError for an unknown schema or a non-object document.
        """
        documents = self._region_documents(region)
        if schema not in SCHEMAS:
            raise ValueError(f"unknown schema {schema!r}")
        if not isinstance(document, dict):
            raise ValueError("a schema document must be a JSON object")
        snapshot = copy.deepcopy(document)
        with self._lock:
            documents[schema] = snapshot

    def document(self, region: str, schema: str) -> dict[str, Any]:
        """A deep copy of the document currently served. Raises UnknownRegionError or KeyError."""
        documents = self._region_documents(region)
        with self._lock:
            return copy.deepcopy(documents[schema])

    def set_fault(self, region: str, fault: str | None, **options: Any) -> None:
        """Make every schema of ``region`` answer with ``fault`` (None restores normal service).

        Options per fault: status(code=503, retry_after=None), trickle(interval=0.5),
        oversized(size=6 MiB, mode="content_length"|"chunked"|"close"), gzip_bomb(size=50 MiB),
        redirect(location, code=302), flaky(failures=1, retry_after=None). Setting a fault replaces
        the previous one (and restarts a flaky count). Raises UnknownRegionError, or ValueError for an
        unknown fault, option, option type or out-of-range value.
        """
        state = self._fault_state(region)
        _check_fault(fault, options)
        with self._lock:
            state.fault, state.options = fault, dict(options)
            state.flaky_left = int(options.get("failures", 1)) if fault == "flaky" else 0

    def fault(self, region: str) -> str | None:
        """The fault currently set for ``region`` (None for normal service)."""
        state = self._fault_state(region)
        with self._lock:
            return state.fault

    def requests(self, region: str | None = None) -> int:
        """How many schema requests ``region`` (or all regions) received: every request to a known
        region and schema counts, including ones answered 401 or by a fault."""
        with self._lock:
            if region is None:
                return sum(state.requests for state in self._faults.values())
            return self._fault_state(region).requests

    def request_times(self, region: str, schema: str) -> list[float]:
        """``time.monotonic()`` of every request to ``schema`` of ``region``, oldest first (the request log)."""
        suffix = f"/{region}/v2/schemas/{schema}"
        with self._lock:
            return [at for at, logged, path in self._log if logged == region and path.split("?")[0] == suffix]

    def quoted(self, region: str) -> list[tuple[str | None, str | None]]:
        """The ``If-None-Match`` and ``If-Modified-Since`` of every schema request of ``region``, oldest first."""
        with self._lock:
            return [(etag, since) for logged, etag, since in self._quoted if logged == region]

    # -- used by the request handler ---------------------------------------------------------------

    def admitted(self, region: str, method: str, target: str, headers: Message) -> bool:
        """Count and log the request, then ask the authorizer (False when it raises) or check the token."""
        with self._lock:
            self._faults[region].requests += 1
            self._log.append((time.monotonic(), region, target))
            self._quoted.append((region, headers.get("If-None-Match"), headers.get("If-Modified-Since")))
        if self._authorizer is None:
            return super().admitted(region, method, target, headers)
        try:
            return bool(self._authorizer(region, method, target, _RequestHeaders(headers.items())))
        except Exception:  # fail closed: a broken authorizer must not open the gateway
            return False

    def _tick(self) -> int:
        with self._lock:
            self._clock += 1
            return self._clock

    def _fault_state(self, region: str) -> _FaultState:
        try:
            return self._faults[region]
        except KeyError:
            raise UnknownRegionError(region) from None

    def _plan(self, region: str, schema: str, path: str) -> _Plan:
        """Capture what to answer, consuming one failure of a ``flaky`` fault."""
        with self._lock:
            state = self._faults[region]
            fault, options = state.fault, dict(state.options)
            if fault == "flaky":
                fault, options = self._resolve_flaky(state)
            return _Plan(path, fault, options, self._documents[region][schema], self._release)

    @staticmethod
    def _resolve_flaky(state: _FaultState) -> tuple[str | None, dict[str, Any]]:
        if state.flaky_left <= 0:
            return None, {}
        state.flaky_left -= 1
        options: dict[str, Any] = {"code": 503}
        if "retry_after" in state.options:
            options["retry_after"] = state.options["retry_after"]
        return "status", options


# --------------------------------------------------------------------------------------------------
# HTTP request handler


_FaultHandler = Callable[["_Handler", _Plan], None]


class _Handler(RegionHandler):
    """Adds the control API to the schema routes; the per-fault behaviour lives in :data:`_FAULT_HANDLERS`."""

    @property
    def simulator(self) -> Simulator:
        return cast(TrackingServer[Simulator], self.server).owner

    # -- routing -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        match self.segments():
            case ["_sim", region, "requests"]:
                self._control(lambda: {"region": region, "requests": self.simulator.requests(region)})
            case _:
                super().do_GET()

    def do_POST(self) -> None:
        match self.segments():
            case ["_sim", region, "fault"]:
                self._control(lambda: self._apply_fault(region, self._read_json()))
            case ["_sim", region, "mutate"]:
                self._control(lambda: self._apply_mutate(region))
            case _:
                self.send_ims_error(404, "Resource not found")

    def do_PUT(self) -> None:
        match self.segments():
            case ["_sim", region, "schemas", schema]:
                self._control(lambda: self._apply_document(region, schema, self._read_json()))
            case _:
                self.send_ims_error(404, "Resource not found")

    def serve_admitted(self, region: str, schema: str) -> None:
        """The region's fault decides the response; without one the document is served."""
        plan = self.simulator._plan(region, schema, urlsplit(self.path).path)
        _FAULT_HANDLERS.get(plan.fault or "", _serve_document)(self, plan)

    # -- control API -------------------------------------------------------------------------------

    def _control(self, action: Callable[[], dict[str, Any]]) -> None:
        """Run a control action and answer 200 with its result, 404 or 400 with an IMS error (and close
        the connection: a request body may be left unread)."""
        try:
            result = action()
        except UnknownRegionError as exc:
            self.close_connection = True
            self.send_ims_error(404, f"Unknown region {exc.args[0]!r}")
        except (ValueError, KeyError, TypeError) as exc:
            self.close_connection = True
            self.send_ims_error(400, f"Invalid control request: {exc}")
        else:
            self.send_body(200, json.dumps(result).encode("utf-8"))

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= _MAX_CONTROL_BODY:
            raise ValueError(f"a JSON body of 1..{_MAX_CONTROL_BODY} bytes with Content-Length is required")
        return json.loads(self.rfile.read(length))

    def _apply_fault(self, region: str, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or "fault" not in payload:
            raise ValueError('expected {"fault": <name or null>, ...options}')
        options = {k: v for k, v in payload.items() if k != "fault"}
        self.simulator.set_fault(region, payload["fault"], **options)
        return {"region": region, "fault": payload["fault"], "options": options}

    def _apply_document(self, region: str, schema: str, payload: Any) -> dict[str, Any]:
        self.simulator.set_document(region, schema, payload)
        return {"region": region, "schema": schema}

    def _apply_mutate(self, region: str) -> dict[str, Any]:
        self.simulator.mutate(region)
        return {"region": region, "schema": "images", "mutation": "breaking"}


Simulator.handler_class = _Handler  # assigned here because _Handler is defined after Simulator


# --------------------------------------------------------------------------------------------------
# Fault handlers: one small function per fault, dispatched by name


def _serve_document(handler: _Handler, plan: _Plan) -> None:
    """Normal service: the document, gzip-compressed when the client accepts gzip."""
    handler.send_json_document(encode_document(plan.document))


def _fault_status(handler: _Handler, plan: _Plan) -> None:
    code = int(plan.options.get("code", 503))
    headers = {}
    if (retry_after := plan.options.get("retry_after")) is not None:
        headers["Retry-After"] = str(retry_after)
    handler.send_ims_error(code, _phrase(code), headers=headers)


def _fault_hang(handler: _Handler, plan: _Plan) -> None:
    """Read the request, then say nothing until stop() or until the client gives up; the connection is
    then closed unanswered. (Watching for the client keeps abandoned polls from piling up threads.)"""
    handler.close_connection = True
    while not plan.release.wait(0.2):
        if peer_closed(handler.connection):
            return


def _fault_trickle(handler: _Handler, plan: _Plan) -> None:
    """Announce the full Content-Length, then send the real body one byte per ``interval``."""
    body = encode_document(plan.document)
    interval = float(plan.options.get("interval", 0.5))
    handler.send_head(200, {"Content-Type": JSON_TYPE, "Content-Length": str(len(body))})
    for index in range(len(body)):
        handler.wfile.write(body[index : index + 1])
        if plan.release.wait(interval):
            handler.close_connection = True
            return


def _fault_html(handler: _Handler, plan: _Plan) -> None:
    handler.send_body(200, HTML_PAGE, content_type=HTML_TYPE)


def _fault_html_as_json(handler: _Handler, plan: _Plan) -> None:
    handler.send_body(200, HTML_PAGE)


def _fault_truncated(handler: _Handler, plan: _Plan) -> None:
    body = encode_document(plan.document)
    handler.send_body(200, body[: len(body) // 2])


def _fault_fixed_body(handler: _Handler, plan: _Plan) -> None:
    """not_object, not_schema, deep, nan, duplicate_keys: a fixed 200 JSON-typed body."""
    handler.send_body(200, _FIXED_BODIES[cast(str, plan.fault)])


def _fault_oversized(handler: _Handler, plan: _Plan) -> None:
    """``size`` bytes of valid JSON, framed by Content-Length, chunked encoding, or connection close."""
    size = int(plan.options.get("size", 6 * _MIB))
    mode = str(plan.options.get("mode", "content_length"))
    chunks = _padded_json_chunks(size)
    if mode == "chunked":
        handler.send_head(200, {"Content-Type": JSON_TYPE, "Transfer-Encoding": "chunked"})
        _write_chunked(handler, chunks, plan.release)
        return
    if mode == "close":
        handler.send_head(200, {"Content-Type": JSON_TYPE, "Connection": "close"})
        handler.close_connection = True
    else:
        handler.send_head(200, {"Content-Type": JSON_TYPE, "Content-Length": str(_padded_json_length(size))})
    _write_all(handler, chunks, plan.release)


def _write_all(handler: _Handler, chunks: Iterator[bytes], release: threading.Event) -> None:
    for piece in chunks:
        if release.is_set():
            handler.close_connection = True
            return
        handler.wfile.write(piece)


def _write_chunked(handler: _Handler, chunks: Iterator[bytes], release: threading.Event) -> None:
    """HTTP/1.1 chunked transfer coding by hand; empty pieces are skipped (they would end the body)."""
    framed = (b"%x\r\n%b\r\n" % (len(piece), piece) for piece in chunks if piece)
    _write_all(handler, framed, release)
    if not release.is_set():
        handler.wfile.write(b"0\r\n\r\n")


def _fault_gzip_bomb(handler: _Handler, plan: _Plan) -> None:
    """A small gzip body that inflates to ``size`` bytes, sent whatever the client accepts."""
    body = _gzip_bomb(int(plan.options.get("size", 50 * _MIB)))
    handler.send_body(200, body, headers={"Content-Encoding": "gzip"})


def _fault_redirect(handler: _Handler, plan: _Plan) -> None:
    location = str(plan.options.get("location", f"http://redirect.invalid{plan.path}"))
    handler.send_body(int(plan.options.get("code", 302)), b"", headers={"Location": location})


def _fault_redirect_loop(handler: _Handler, plan: _Plan) -> None:
    handler.send_body(302, b"", headers={"Location": plan.path})


def _fault_slow(handler: _Handler, plan: _Plan) -> None:
    """Wait ``delay`` seconds (default 2; cut short by stop()), then serve the document normally."""
    if not plan.release.wait(float(plan.options.get("delay", 2.0))):
        _serve_document(handler, plan)


def _fault_reordered(handler: _Handler, plan: _Plan) -> None:
    handler.send_json_document(_encode_reordered(plan.document))


_EPOCH: Final = 1_767_225_600  # 2026-01-01T00:00:00Z: the Last-Modified of validators(last_modified="per_request")


def _fault_validators(handler: _Handler, plan: _Plan) -> None:
    """The document with an ETag and/or Last-Modified; 304 without a body when the request quotes them."""
    body = encode_document(plan.document)
    validators = {}
    if (etag := plan.options.get("etag")) is not None:
        validators["ETag"] = f'"{hashlib.sha256(body).hexdigest()[:16]}"' if etag == "content" else str(etag)
    if (modified := plan.options.get("last_modified")) is not None:
        per_request = modified == "per_request"
        validators["Last-Modified"] = (
            email.utils.formatdate(_EPOCH + handler.simulator._tick(), usegmt=True) if per_request else str(modified)
        )
    if plan.options.get("honour", True) and _is_fresh(handler, validators):
        handler.send_head(304, validators)
        return
    headers = {"Vary": "Accept-Encoding", **validators}
    if accepts_gzip(handler.headers.get("Accept-Encoding")):
        body, headers["Content-Encoding"] = gzip.compress(body, mtime=0), "gzip"
    handler.send_body(200, body, headers=headers)


def _is_fresh(handler: _Handler, validators: Mapping[str, str]) -> bool:
    """Whether the request's validators match (If-None-Match first; If-Modified-Since only without it)."""
    quoted_etag, since = handler.headers.get("If-None-Match"), handler.headers.get("If-Modified-Since")
    if quoted_etag is not None:
        return "ETag" in validators and validators["ETag"] in [tag.strip() for tag in quoted_etag.split(",")]
    return since is not None and validators.get("Last-Modified") == since


def _fault_not_modified(handler: _Handler, plan: _Plan) -> None:
    handler.send_head(304, {})


_FAULT_HANDLERS: Final[Mapping[str, _FaultHandler]] = {
    "status": _fault_status,
    "hang": _fault_hang,
    "trickle": _fault_trickle,
    "html": _fault_html,
    "html_as_json": _fault_html_as_json,
    "truncated": _fault_truncated,
    **dict.fromkeys(_FIXED_BODIES, _fault_fixed_body),
    "oversized": _fault_oversized,
    "gzip_bomb": _fault_gzip_bomb,
    "redirect": _fault_redirect,
    "redirect_loop": _fault_redirect_loop,
    "reordered": _fault_reordered,
    "slow": _fault_slow,
    "validators": _fault_validators,
    "not_modified": _fault_not_modified,
    # "flaky" never reaches dispatch: Simulator._plan resolves it to "status" 503 or normal service.
}

FAULTS: Final = frozenset({*_FAULT_HANDLERS, "flaky"})
"""Every fault name :meth:`Simulator.set_fault` accepts (see shared/FAULTS.md)."""


# --------------------------------------------------------------------------------------------------
# Command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.regions", description="Serve simulated IMS schema endpoints."
    )
    parser.add_argument("--regions", required=True, help="comma-separated region names, e.g. a,b,c")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one")
    parser.add_argument("--token", default=None, help="require this X-Auth-Token on schema requests")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM, printing the endpoint template first.

    Returns 0 after a signal, 2 when the regions are invalid or the address cannot be bound.
    """
    args = _parse_args(argv)
    regions = [name.strip() for name in args.regions.split(",") if name.strip()]
    try:
        simulator = Simulator(regions, token=args.token, host=args.host, port=args.port)
    except ValueError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in _STOP_SIGNALS}
    try:
        return _serve_until(simulator, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _serve_until(simulator: Simulator, stop: threading.Event) -> int:
    try:
        simulator.start()
    except OSError as exc:
        print(f"simulator: cannot listen: {exc}", file=sys.stderr)
        return 2
    try:
        print(simulator.endpoint_template(), flush=True)
        while not stop.wait(0.5):  # a bounded wait keeps the main thread responsive to signals
            pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
