"""The read API: JSON on the daemon's HTTP port, next to ``/metrics``; its contract is ``monitor.openapi``.

Routes (all answer ``application/json``; errors are ``{"error": "<message>"}``):

* ``GET  /api/openapi.json`` — the OpenAPI 3.0.3 document of this API, with the configured labels as enums;
* ``GET  /api/targets`` — every configured target with its current state;
* ``GET  /api/targets/{cloud}/{region}/{schema}/snapshots`` — a target's snapshots, oldest first;
* ``GET  /api/targets/{cloud}/{region}/{schema}/diff`` — the changes between two snapshots, in a report format;
* ``POST /api/targets/{cloud}/{region}/{schema}/ack`` — acknowledge changes or approve the current document;
* ``GET  /api/documents/{sha256}`` — a stored canonical document, byte for byte (its SHA-256 is the path);
* ``GET  /api/changes`` — stored changes, newest first, filtered, paged by ``before_id`` (``next`` link);
* ``GET  /api/compare`` — the cross-region (or cross-cloud) comparison with each deviating region's changes.

Threads: ``Api.handle`` runs in the status server's request threads. Database reads go through the
``Repository`` (one short session per call); the in-memory state of ``Intelligence`` (current documents,
rollouts, unacknowledged drift) is read with plain dict lookups and copied. The one write, acknowledging,
goes through ``IntelligenceStore`` and then calls ``on_change``, with which the daemon recomputes drift on
its event loop, so ``schemadrift_drift_unacknowledged`` follows promptly.

Path labels must name a configured target (404 otherwise); nothing is looked up by an arbitrary string.
Every value the OpenAPI document accepts is answered without a 400: the document carries the configured
clouds, regions and schemas as enums, and a combination that names nothing configured is a 404.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from monitor.compare import MAJORITY, compare_regions, comparison_json
from monitor.config import Config
from monitor.diffing import classify
from monitor.domain import Severity, TargetKey, TargetSpec, change_json, utcnow
from monitor.intelligence import Intelligence
from monitor.metrics import Metrics
from monitor.openapi import (
    DEFAULT_LIMIT,
    FINGERPRINT_PATTERN,
    JSON_TYPE,
    MAX_ACTOR,
    MAX_BODY,
    MAX_COMMENT,
    MAX_EXPIRY,
    MAX_FINGERPRINTS,
    MAX_ID,
    MAX_LIMIT,
    SHA256_PATTERN,
    TEXT_PATTERN,
    openapi_document,
)
from monitor.reports import FORMATS, Comparison, render
from monitor.store.intelligence import Baseline
from monitor.store.repository import HistoryFilter, Repository, SnapshotRecord, StoreError, TargetState

log = logging.getLogger(__name__)

ACK_FIELDS: Final = frozenset({"fingerprints", "approve", "comment", "by", "expires_in_seconds"})

_TARGET_PATH: Final = "/api/targets/(?P<cloud>[^/]+)/(?P<region>[^/]+)/(?P<schema>[^/]+)"
_TEXT_RE: Final = re.compile(TEXT_PATTERN)


class ApiError(Exception):
    """A request answered with ``status`` and ``{"error": message}``; ``headers`` go out with it."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = tuple(headers)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """What the HTTP server sends: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON_TYPE


@dataclass(frozen=True, slots=True)
class Request:
    """One matched request: percent-decoded path parameters, the raw query, lower-case headers, the body."""

    params: Mapping[str, str]
    query: str
    headers: Mapping[str, str]
    body: bytes = b""


Handler = Callable[[Request], Any]


@dataclass(frozen=True, slots=True)
class Route:
    """``method`` on paths matching ``pattern`` (whole path) is answered by ``handler``."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    reads_body: bool = False


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the API reads and writes; built by the composition root (``app.build_api``)."""

    config: Config
    repository: Repository
    intelligence: Intelligence
    metrics: Metrics
    on_change: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True, slots=True)
class AckRequest:
    """A validated acknowledgement: ``fingerprints`` or ``approve``, with who and why."""

    fingerprints: tuple[str, ...]
    approve: bool
    comment: str
    actor: str
    expires_in: float | None


@dataclass(frozen=True, slots=True)
class _Live:
    """In-memory state read once per ``/api/targets`` request."""

    deviating: frozenset[TargetKey]
    flapping: frozenset[TargetKey]


class Api:
    """Answers ``/api/...`` requests; thread-safe (see the module doc)."""

    def __init__(self, context: ApiContext) -> None:
        self._ctx = context
        self._references = {cloud.name: cloud.reference for cloud in context.config.clouds}
        self._ids: dict[TargetKey, int] = {}  # target ids never change; a race only repeats a lookup
        self.set_targets(context.config.targets())
        self._routes = (
            Route("GET", re.compile(r"/api/openapi\.json"), self._get_openapi),
            Route("GET", re.compile(r"/api/targets"), self._get_targets),
            Route("GET", re.compile(_TARGET_PATH + "/snapshots"), self._get_snapshots),
            Route("GET", re.compile(_TARGET_PATH + "/diff"), self._get_diff),
            Route("POST", re.compile(_TARGET_PATH + "/ack"), self._post_ack, reads_body=True),
            Route("GET", re.compile(r"/api/documents/(?P<sha256>[^/]+)"), self._get_document),
            Route("GET", re.compile(r"/api/changes"), self._get_changes),
            Route("GET", re.compile(r"/api/compare"), self._get_compare),
        )

    # --- dispatch ------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], read: Callable[[int], bytes]) -> ApiResponse:
        """Answer one request; ``headers`` have lower-case names, ``read(n)`` reads the request body.

        Never raises: errors become JSON responses (503 for a database failure, 500 for a bug, logged).
        """
        url = urlsplit(target)
        path = url.path
        try:
            route, params = self._match(method, path)
            body = _read_body(headers, read) if route.reads_body else b""
            return _respond(200, route.handler(Request(params, url.query, headers, body)))
        except ApiError as exc:
            return _respond(exc.status, {"error": str(exc)}, exc.headers)
        except StoreError as exc:
            log.error("api: %s %s: database error: %s", method, path, exc)
            return _respond(503, {"error": "the database is not available; see the monitor's log"})
        except Exception:
            log.exception("api: %s %s failed", method, path)
            return _respond(500, {"error": "internal error; see the monitor's log"})

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` and ``path`` with its decoded parameters; raises ApiError 404/405."""
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route, {name: unquote(value) for name, value in found.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405, f"method {method} is not allowed here; use {', '.join(allowed)}", [("Allow", ", ".join(allowed))]
            )
        raise ApiError(404, f"no such API route: {path[:200]}; see /api/openapi.json")

    # --- GET /api/openapi.json, /api/targets -----------------------------------------------------

    def set_targets(self, specs: Sequence[TargetSpec]) -> None:
        """Answer for these targets from now on (discovery added or removed regions)."""
        self._specs: dict[TargetKey, TargetSpec] = {spec.key: spec for spec in specs}
        self._openapi = _dump(openapi_document(list(self._specs)))

    def _get_openapi(self, request: Request) -> bytes:
        return self._openapi

    def _get_targets(self, request: Request) -> dict[str, Any]:
        """Every configured target: database state (snapshot, polls, baseline) and in-memory intelligence."""
        _query(request, ())
        ids = {key: self._target_id(key) for key in self._specs}
        states = self._ctx.repository.load_states(list(ids.values()))
        baselines = self._ctx.intelligence.store.baselines()
        live = _Live(self._deviating(), self._flapping())
        return {
            "targets": [
                self._target_json(spec, states.get(ids[key]), baselines.get(ids[key]), live)
                for key, spec in self._specs.items()
            ]
        }

    def _target_json(
        self, spec: TargetSpec, state: TargetState | None, baseline: Baseline | None, live: _Live
    ) -> dict[str, Any]:
        key = spec.key
        state = state or TargetState(target_id=0)
        pending = list(self._ctx.intelligence.unacknowledged(key))
        return {
            **_labels(key),
            "url": spec.url,
            "snapshot_id": state.snapshot_id,
            "sha256": state.document.sha256 if state.document else None,
            "last_poll_at": _iso(state.last_poll_at),
            "last_success_at": _iso(state.last_success_at),
            "last_change_at": _iso(state.last_change_at),
            "poll_ok": state.last_poll_ok,
            "baseline_snapshot_id": baseline.snapshot_id if baseline else None,
            "baseline_sha256": baseline.sha256 if baseline else None,
            "deviates": key in live.deviating,
            "unacknowledged": {s.value: sum(1 for _, c in pending if c.severity is s) for s in Severity},
            "flapping": key in live.flapping,
        }

    def _deviating(self) -> frozenset[TargetKey]:
        """Targets serving another document than their (cloud, schema)'s reference, as the gauges say."""
        found: set[TargetKey] = set()
        for cloud, schema in {(key.cloud, key.schema) for key in self._specs}:
            current = self._ctx.intelligence.fleet.current(cloud, schema)
            if current:
                comparison = compare_regions(current, self._default_reference(cloud, current))
                found.update(TargetKey(cloud, region, schema) for region in comparison.deviating)
        return frozenset(found)

    def _flapping(self) -> frozenset[TargetKey]:
        """Targets flapping now, as the flapping tracker last judged them."""
        return self._ctx.intelligence.flapping.active()

    def _default_reference(self, cloud: str, current: Mapping[str, str]) -> str:
        """The cloud's configured reference while it has a document, else the majority (as the gauges do)."""
        configured = self._references.get(cloud, MAJORITY)
        return configured if configured in current else MAJORITY

    # --- targets, snapshots, documents -----------------------------------------------------------

    def _key(self, params: Mapping[str, str]) -> TargetKey:
        """The configured target the path names; raises ApiError 404."""
        key = TargetKey(params["cloud"], params["region"], params["schema"])
        if key not in self._specs:
            raise ApiError(404, f"no configured target {str(key)[:200]}; see /api/targets")
        return key

    def _target_id(self, key: TargetKey) -> int:
        """The database id of a configured target (registered at start-up); raises ApiError 404, StoreError."""
        target_id = self._ids.get(key)
        if target_id is None:
            target_id = self._ctx.repository.target_id(key)
            if target_id is None:
                raise ApiError(404, f"target {key} is not in the database yet")
            self._ids[key] = target_id
        return target_id

    def _get_snapshots(self, request: Request) -> dict[str, Any]:
        key = self._key(request.params)
        _query(request, ())
        snapshots = self._ctx.repository.snapshots(self._target_id(key))
        return {**_labels(key), "snapshots": [_snapshot_json(s) for s in snapshots]}

    def _get_document(self, request: Request) -> bytes:
        """The canonical document text as stored, so its SHA-256 is the one in the path."""
        sha = request.params["sha256"]
        if not re.fullmatch(SHA256_PATTERN, sha):
            raise ApiError(400, "sha256 must be 64 hexadecimal digits")
        _query(request, ())
        document = self._ctx.repository.document(sha.lower())
        if document is None:
            raise ApiError(404, f"no stored document {sha.lower()}")
        return document.body.encode("utf-8")

    def _parsed_document(self, sha: str, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """A stored document, parsed once per request; raises ApiError 404 when it is missing."""
        if sha not in cache:
            document = self._ctx.repository.document(sha)
            if document is None:
                raise ApiError(404, f"no stored document {sha}")
            cache[sha] = json.loads(document.body)
        return cache[sha]

    # --- GET /api/changes ------------------------------------------------------------------------

    def _get_changes(self, request: Request) -> dict[str, Any]:
        """Stored changes, newest first; ``next`` pages to older ones (``before_id``) while there are more."""
        query = _query(request, ("cloud", "region", "schema", "severity", "since", "limit", "before_id"))
        limit = _integer(query, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
        where = HistoryFilter(
            cloud=_choice(query, "cloud", {k.cloud for k in self._specs}),
            region=_choice(query, "region", {k.region for k in self._specs}),
            schema=_choice(query, "schema", {k.schema for k in self._specs}),
            min_severity=_severity(query),
            since=_since(query),
            limit=limit + 1,  # one more tells whether there is a next page
            before_id=_integer(query, "before_id", 1, MAX_ID),
        )
        records = list(reversed(self._ctx.repository.history(where)))
        page = records[:limit]
        more = len(records) > limit
        return {
            "changes": [record.as_json() for record in page],
            "next": "/api/changes?" + urlencode({**query, "before_id": str(page[-1].id)}) if more else None,
        }

    # --- GET .../diff ----------------------------------------------------------------------------

    def _get_diff(self, request: Request) -> Any:
        """The changes between two snapshots of the target (default: its last two), rendered in ``format``."""
        key = self._key(request.params)
        query = _query(request, ("from", "to", "format"))
        fmt = _choice(query, "format", set(FORMATS)) or "json"
        snapshots = {s.id: s for s in self._ctx.repository.snapshots(self._target_id(key))}
        from_id, to_id = _pick_snapshots(
            sorted(snapshots), _integer(query, "from", 1, MAX_ID), _integer(query, "to", 1, MAX_ID)
        )
        cache: dict[str, dict[str, Any]] = {}
        old = self._parsed_document(snapshots[from_id].document_sha256, cache)
        new = self._parsed_document(snapshots[to_id].document_sha256, cache)
        text = render(fmt, [Comparison(f"{key}: snapshot {from_id} → {to_id}", old, new, classify(old, new))])
        return json.loads(text) if fmt in ("json", "jsonpatch") else {"format": fmt, "body": text}

    # --- GET /api/compare ------------------------------------------------------------------------

    def _get_compare(self, request: Request) -> dict[str, Any]:
        """The regions of one (cloud, schema) grouped by document, each deviating one's changes, rollouts.

        With ``other_cloud`` the regions of both clouds are compared, labelled ``cloud/region``.
        """
        query = _query(request, ("cloud", "schema", "reference", "other_cloud"))
        clouds_known = {key.cloud for key in self._specs}
        cloud = _required_choice(query, "cloud", clouds_known)
        schema = _required_choice(query, "schema", {key.schema for key in self._specs})
        other = _choice(query, "other_cloud", clouds_known)
        clouds = [cloud] if other in (None, cloud) else [cloud, str(other)]
        labels, current = self._compared(clouds, schema)
        reference = self._compare_reference(query, clouds, labels, current)
        comparison = compare_regions(current, reference)
        cache: dict[str, dict[str, Any]] = {}
        reference_doc = self._parsed_document(comparison.reference, cache)
        deviations = []
        for region in comparison.deviating:
            document = self._parsed_document(current[region], cache)
            changes = [change_json(c) for c in classify(reference_doc, document)]
            deviations.append({"region": region, "sha256": current[region], "changes": changes})
        rollouts = [
            {"cloud": c, "schema": schema, **rollout}
            for c in clouds
            if (rollout := self._ctx.intelligence.fleet.rollout(c, schema)) is not None
        ]
        return {
            "cloud": cloud,
            "schema": schema,
            "other_cloud": clouds[1] if len(clouds) > 1 else None,
            "comparison": comparison_json(comparison, labels),
            "deviations": deviations,
            "rollouts": rollouts,
        }

    def _compared(self, clouds: Sequence[str], schema: str) -> tuple[list[str], dict[str, str]]:
        """Every region label of ``schema`` in ``clouds``, and label → current sha of those with a document.

        Labels are regions for one cloud, ``cloud/region`` for several. Raises ApiError 404 for a cloud
        without that schema, 409 when no region has a document yet.
        """
        labels: list[str] = []
        current: dict[str, str] = {}
        for cloud in clouds:
            regions = [k.region for k in self._specs if k.cloud == cloud and k.schema == schema]
            if not regions:
                raise ApiError(404, f"no configured targets for cloud {cloud[:100]!r} and schema {schema[:100]!r}")
            several = len(clouds) > 1
            labels += [_region_label(cloud, r, several) for r in regions]
            served = self._ctx.intelligence.fleet.current(cloud, schema)
            current.update({_region_label(cloud, r, several): sha for r, sha in served.items()})
        if not current:
            raise ApiError(409, f"no region of schema {schema} has a document yet")
        return labels, current

    def _compare_reference(
        self, query: Mapping[str, str], clouds: Sequence[str], labels: Sequence[str], current: Mapping[str, str]
    ) -> str:
        """The reference asked for (default: the cloud's configured one); raises ApiError 404/409."""
        reference = query.get("reference")
        if reference is None:
            return self._default_reference(clouds[0], current) if len(clouds) == 1 else MAJORITY
        if reference != MAJORITY and reference not in labels:
            raise ApiError(404, f"reference {reference[:100]!r} is not a compared region: {', '.join(labels)}")
        if reference != MAJORITY and reference not in current:
            raise ApiError(409, f"reference region {reference} has no document yet")
        return reference

    # --- POST .../ack ----------------------------------------------------------------------------

    def _post_ack(self, request: Request) -> dict[str, Any]:
        """Acknowledge fingerprints (optionally until an expiry) or approve the current document."""
        self._authorize(request.headers)
        key = self._key(request.params)
        _query(request, ())
        ack = parse_ack(_json_body(request.body))
        target_id = self._target_id(key)
        now = utcnow()
        result = self._approve(key, target_id, ack, now) if ack.approve else self._acknowledge(key, target_id, ack, now)
        self._notify()
        return result

    def _authorize(self, headers: Mapping[str, str]) -> None:
        """Raises ApiError 403 when no token is configured, 401 when the bearer token is missing or wrong."""
        token = self._ctx.config.api.token
        if token is None:
            raise ApiError(403, "write endpoints are disabled: set api.token")
        scheme, _, given = headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode("utf-8")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            raise ApiError(
                401,
                "a valid bearer token is required (Authorization: Bearer <api.token>)",
                [("WWW-Authenticate", 'Bearer realm="schema-drift-monitor"')],
            )

    def _acknowledge(self, key: TargetKey, target_id: int, ack: AckRequest, now: datetime) -> dict[str, Any]:
        pending = {fp for fp, _ in list(self._ctx.intelligence.unacknowledged(key))}
        expires_at = now + timedelta(seconds=ack.expires_in) if ack.expires_in is not None else None
        self._ctx.intelligence.store.acknowledge(
            target_id, ack.fingerprints, comment=ack.comment, actor=ack.actor, now=now, expires_at=expires_at
        )
        log.info("api: %r acknowledged %d change(s) of %s: %r", ack.actor, len(ack.fingerprints), key, ack.comment)
        return {
            **_labels(key),
            "acknowledged": list(ack.fingerprints),
            "not_pending": [fp for fp in ack.fingerprints if fp not in pending],
            "approved_snapshot_id": None,
            "expires_at": _iso(expires_at),
        }

    def _approve(self, key: TargetKey, target_id: int, ack: AckRequest, now: datetime) -> dict[str, Any]:
        if not self._ctx.repository.snapshots(target_id):
            raise ApiError(409, f"target {key} has no snapshot to approve yet")
        snapshot_id = self._ctx.intelligence.store.approve_current(
            target_id, comment=ack.comment, actor=ack.actor, now=now
        )
        log.info("api: %r approved snapshot %d as the baseline of %s: %r", ack.actor, snapshot_id, key, ack.comment)
        return {
            **_labels(key),
            "acknowledged": [],
            "not_pending": [],
            "approved_snapshot_id": snapshot_id,
            "expires_at": None,
        }

    def _notify(self) -> None:
        """Tell the daemon the acknowledgements changed; a failure only delays the gauges to the next refresh."""
        try:
            self._ctx.on_change()
        except Exception:
            log.exception("api: could not schedule a drift refresh; it follows at the next periodic refresh")


# --- request parsing ------------------------------------------------------------------------------


def _query(request: Request, allowed: Sequence[str]) -> dict[str, str]:
    """The query parameters, each at most once and each one of ``allowed``; raises ApiError 400."""
    try:
        pairs = parse_qsl(request.query, keep_blank_values=True, errors="strict", max_num_fields=20)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the query string cannot be parsed") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise ApiError(400, f"unknown query parameter {name[:100]!r}; expected: {expected}")
        if name in query:
            raise ApiError(400, f"query parameter {name!r} is given twice")
        query[name] = value
    return query


def _choice(query: Mapping[str, str], name: str, allowed: Iterable[str]) -> str | None:
    """The parameter when given, which must be one of ``allowed``; raises ApiError 400."""
    value = query.get(name)
    known = sorted(allowed)
    if value is not None and value not in known:
        raise ApiError(400, f"{name} must be one of: {', '.join(known)}")
    return value


def _required_choice(query: Mapping[str, str], name: str, allowed: Iterable[str]) -> str:
    """Like ``_choice``, and the parameter must be given; raises ApiError 400."""
    value = _choice(query, name, allowed)
    if value is None:
        raise ApiError(400, f"query parameter {name!r} is required")
    return value


def _integer(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    """The parameter as a decimal integer in ``low..high`` when given; raises ApiError 400."""
    value = query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}")
    return int(value)


def _severity(query: Mapping[str, str]) -> Severity | None:
    value = _choice(query, "severity", {s.value for s in Severity})
    return Severity(value) if value else None


def _since(query: Mapping[str, str]) -> datetime | None:
    """``since`` as an aware UTC datetime (RFC 3339; a naive one means UTC); raises ApiError 400."""
    value = query.get("since")
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        raise ApiError(400, "since must be an RFC 3339 date-time, e.g. 2026-01-31T00:00:00Z") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: as early/late as can be
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def _pick_snapshots(ids: Sequence[int], from_id: int | None, to_id: int | None) -> tuple[int, int]:
    """Resolve ``from``/``to`` against a target's snapshot ids (ascending); raises ApiError 404/409.

    ``to`` defaults to the latest snapshot, ``from`` to the one before ``to``.
    """
    for given in (from_id, to_id):
        if given is not None and given not in ids:
            raise ApiError(404, f"snapshot {given} does not belong to this target; see its snapshots")
    if to_id is None:
        if not ids:
            raise ApiError(409, "the target has no snapshot yet; a diff needs two")
        to_id = ids[-1]
    if from_id is None:
        earlier = [i for i in ids if i < to_id]
        if not earlier:
            raise ApiError(409, f"no snapshot before {to_id} (the target has {len(ids)}); a diff needs two")
        from_id = earlier[-1]
    return from_id, to_id


def _read_body(headers: Mapping[str, str], read: Callable[[int], bytes]) -> bytes:
    """The request body (Content-Length bytes, at most MAX_BODY); raises ApiError 400/413."""
    if "transfer-encoding" in headers:
        raise ApiError(400, "send the request body with a Content-Length, not chunked")
    length = headers.get("content-length", "0").strip()
    if not (length.isascii() and length.isdigit()):
        raise ApiError(400, "invalid Content-Length")
    if int(length) > MAX_BODY:
        raise ApiError(413, f"the request body is larger than {MAX_BODY} bytes")
    return read(int(length)) if int(length) else b""


def _json_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (NaN and Infinity refused); raises ApiError 400."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(body.decode("utf-8"), parse_constant=refuse)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body must be a JSON object") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return value


def parse_ack(body: Mapping[str, Any]) -> AckRequest:
    """Validate an acknowledgement body (see ``AckRequest`` in the OpenAPI document); raises ApiError 400."""
    unknown = sorted(set(body) - ACK_FIELDS)
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(u[:50] for u in unknown)}")
    fingerprints = _fingerprints(body.get("fingerprints"))
    approve = body.get("approve")
    if approve not in (None, True):
        raise ApiError(400, "approve must be true when given")
    if (fingerprints is None) == (approve is None):
        raise ApiError(400, 'give either "fingerprints" (a list) or "approve": true')
    expires = _expiry(body.get("expires_in_seconds"))
    if approve and expires is not None:
        raise ApiError(400, "expires_in_seconds applies to fingerprints, not to approving a document")
    comment = _text(body.get("comment"), "comment", MAX_COMMENT)
    actor = _text(body.get("by", "api"), "by", MAX_ACTOR)
    return AckRequest(fingerprints or (), bool(approve), comment, actor, expires)


def _fingerprints(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_FINGERPRINTS:
        raise ApiError(400, f"fingerprints must be a list of 1 to {MAX_FINGERPRINTS} fingerprints")
    if not all(isinstance(fp, str) and re.fullmatch(FINGERPRINT_PATTERN, fp) for fp in value):
        raise ApiError(400, "each fingerprint is 64 lower-case hexadecimal digits (see /api/changes)")
    return tuple(dict.fromkeys(value))


def _expiry(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, "expires_in_seconds must be a number")
    if not 0 < value <= MAX_EXPIRY:
        raise ApiError(400, f"expires_in_seconds must be above 0 and at most {MAX_EXPIRY}")
    return float(value)


def _text(value: Any, name: str, max_length: int) -> str:
    """A required, non-blank string of at most ``max_length`` characters, storable by every database."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"{name} is required and must be a non-empty string")
    if len(value) > max_length or not _TEXT_RE.match(value):
        raise ApiError(400, f"{name} must be at most {max_length} characters, without NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{name} is not valid Unicode text") from None
    return value


# --- response building ----------------------------------------------------------------------------


def _respond(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> ApiResponse:
    """``value`` as a JSON response; bytes are sent as they are (already JSON)."""
    body = value if isinstance(value, bytes) else _dump(value)
    return ApiResponse(status, body, tuple(headers))


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _region_label(cloud: str, region: str, several_clouds: bool) -> str:
    """A region's label in a comparison: ``region``, or ``cloud/region`` when clouds are compared."""
    return f"{cloud}/{region}" if several_clouds else region


def _labels(key: TargetKey) -> dict[str, str]:
    return {"cloud": key.cloud, "region": key.region, "schema": key.schema}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _snapshot_json(snapshot: SnapshotRecord) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "sha256": snapshot.document_sha256,
        "first_seen": snapshot.first_seen.isoformat(),
        "last_seen": snapshot.last_seen.isoformat(),
    }
