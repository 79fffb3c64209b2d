"""The read API under ``/api/``: each route parses its input, asks the read model, and shapes the answer.

Routes (all answer ``application/json``; errors are ``{"error": "<message>"}``):

* ``GET  /api/targets`` — every target with its current state;
* ``GET  /api/targets/{cloud}/{region}/{schema}/snapshots`` — a target's snapshots, oldest first;
* ``GET  /api/targets/{cloud}/{region}/{schema}/transitions`` — when its polls started failing, why, and recovered;
* ``GET  /api/targets/{cloud}/{region}/{schema}/diff`` — the changes between two snapshots, in a report format;
* ``POST /api/targets/{cloud}/{region}/{schema}/ack`` — acknowledge changes or approve the current document;
* ``GET  /api/documents/{sha256}`` — a stored canonical document, byte for byte;
* ``GET  /api/changes`` — stored changes, newest first, filtered, paged by ``before_id`` (``next`` link);
* ``GET  /api/changes/{id}`` — one stored change;
* ``GET  /api/compare`` — the cross-region (or cross-cloud) comparison with each deviating region's changes;
* ``GET  /api/surface`` — a cloud's API surface: versions and microversions per region, extension gaps.

Database reads are plain (not async) handlers, so they run on the server's thread pool and a locked database
never holds its event loop. Query parameters are strict: an unknown or repeated one is a 400, as is a label
no configured target has; a combination of labels that names nothing configured is a 404.
"""

import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response

from monitor.config import Config
from monitor.domain import Severity, TargetKey, TargetSpec, change_json, utcnow
from monitor.read.matrix import comparison_json
from monitor.read.model import ReadModel, TargetView
from monitor.read.reports import render
from monitor.store.drift import DriftStore
from monitor.store.records import HistoryFilter
from monitor.web import models

log = logging.getLogger(__name__)


class ApiError(HTTPException):
    """An answer ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, message, dict(headers or {}))


@dataclass
class ApiContext:
    """What the routes read and write; built by the composition root (``app.build_web``)."""

    config: Config
    read: ReadModel
    intelligence: DriftStore
    on_change: Callable[[], None] = field(default=lambda: None)
    labels: dict[str, list[str]] = field(default_factory=dict)  # the configured label values, for validation

    def set_targets(self, specs: Iterable[TargetSpec]) -> None:
        """Validate labels against these targets from now on (discovery added or removed regions)."""
        keys = [spec.key for spec in specs]
        self.labels = {
            "cloud": sorted({k.cloud for k in keys}),
            "region": sorted({k.region for k in keys}),
            "schema": sorted({k.schema for k in keys}),
        }


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route (400 and 503 are always possible)."""
    texts = {400: "invalid request", 401: "a bearer token is required", 403: "write endpoints are disabled",
             404: "not found", 409: "not yet answerable", 413: "request body too large",
             503: "the database is not available"}  # fmt: skip
    return {status: {"model": models.Error, "description": texts[status]} for status in sorted({400, 503, *statuses})}


def strict_query(*allowed: str) -> Callable[[Request], None]:
    """A dependency refusing query parameters not in ``allowed``, or given twice (400)."""

    def check(request: Request) -> None:
        seen: set[str] = set()
        for name, _ in request.query_params.multi_items():
            if name not in allowed:
                expected = ", ".join(allowed) if allowed else "none"
                raise ApiError(400, f"unknown query parameter {name[:100]!r}; expected: {expected}")
            if name in seen:
                raise ApiError(400, f"query parameter {name!r} is given twice")
            seen.add(name)

    return check


Cloud = Annotated[str, Path(description="a configured cloud")]
Region = Annotated[str, Path(description="a region of the cloud")]
Schema = Annotated[str, Path(description="a schema (target name) of the cloud")]


def router(context: ApiContext) -> APIRouter:
    """Every ``/api/`` route over ``context``."""
    api = APIRouter(prefix="/api")
    read = context.read

    def key_of(cloud: str, region: str, schema: str) -> TargetKey:
        key = TargetKey(cloud, region, schema)
        read.row(key)  # NotFound: 404
        return key

    def choice(name: str, value: str | None) -> str | None:
        known = context.labels.get(name, [])
        if value is not None and value not in known:
            raise ApiError(400, f"{name} must be one of: {', '.join(known)}")
        return value

    @api.get("/targets", response_model=models.TargetList, responses=_errors(),
             dependencies=[Depends(strict_query())], summary="Every target with its current state")  # fmt: skip
    def targets() -> dict[str, Any]:
        return {"targets": [_target_json(view) for view in read.targets()]}

    @api.get("/targets/{cloud}/{region}/{schema}/snapshots", response_model=models.SnapshotList,
             responses=_errors(404), dependencies=[Depends(strict_query())],
             summary="A target's snapshots, oldest first")  # fmt: skip
    def snapshots(cloud: Cloud, region: Region, schema: Schema) -> dict[str, Any]:
        key = key_of(cloud, region, schema)
        return {**_labels(key), "snapshots": [s.as_json() for s in read.snapshots(key)]}

    @api.get("/targets/{cloud}/{region}/{schema}/transitions", response_model=list[models.Transition],
             responses=_errors(404), dependencies=[Depends(strict_query())],
             summary="When the target's polls started failing, why, and when they recovered")  # fmt: skip
    def transitions(cloud: Cloud, region: Region, schema: Schema) -> list[dict[str, Any]]:
        key = key_of(cloud, region, schema)
        return [
            {"started_at": t.started_at, "ok": t.ok, "reason": t.reason.value if t.reason else None,
             "http_status": t.http_status, "error": t.error}
            for t in read.transitions(key)
        ]  # fmt: skip

    @api.get("/targets/{cloud}/{region}/{schema}/diff",
             response_model=list[models.Report] | list[models.PatchOperation] | models.RenderedReport,
             responses=_errors(404, 409), dependencies=[Depends(strict_query("from", "to", "format"))],
             summary="The changes between two snapshots (default: the last two)")  # fmt: skip
    def diff(
        cloud: Cloud, region: Region, schema: Schema,
        from_id: Annotated[int | None, Query(alias="from", ge=1, le=models.MAX_ID)] = None,
        to_id: Annotated[int | None, Query(alias="to", ge=1, le=models.MAX_ID)] = None,
        format: Literal["json", "jsonpatch", "markdown", "text"] = "json",
    ) -> Any:  # fmt: skip
        key = key_of(cloud, region, schema)
        text = render(format, [read.snapshot_diff(key, from_id, to_id)])
        return json.loads(text) if format in ("json", "jsonpatch") else {"format": format, "body": text}

    @api.get("/documents/{sha256}", response_model=dict[str, Any], responses=_errors(404),
             dependencies=[Depends(strict_query())], summary="A stored canonical document, byte for byte")  # fmt: skip
    def document(sha256: Annotated[str, Path(pattern=models.SHA256_PATTERN)]) -> Response:
        body = read.document(sha256.lower()).body
        return Response(body.encode("utf-8"), media_type="application/json")

    changes_query = ("cloud", "region", "schema", "severity", "since", "limit", "before_id")

    @api.get("/changes", response_model=models.ChangePage, responses=_errors(),
             dependencies=[Depends(strict_query(*changes_query))], summary="Stored changes, newest first")  # fmt: skip
    def changes(
        request: Request,
        cloud: str | None = None, region: str | None = None, schema: str | None = None,
        severity: models.SeverityName | None = None,
        since: Annotated[str | None, Query(description="RFC 3339 date-time (also: a duration ago, 24h)",
                                           json_schema_extra={"format": "date-time"})] = None,
        limit: Annotated[int, Query(ge=1, le=models.MAX_LIMIT)] = models.DEFAULT_LIMIT,
        before_id: Annotated[int | None, Query(ge=1, le=models.MAX_ID)] = None,
    ) -> dict[str, Any]:  # fmt: skip
        where = HistoryFilter(
            cloud=choice("cloud", cloud), region=choice("region", region), schema=choice("schema", schema),
            min_severity=Severity(severity) if severity else None, since=_since(since),
            limit=limit + 1, before_id=before_id,  # one more tells whether there is a next page
        )  # fmt: skip
        records = list(reversed(read.history(where)))
        page, more = records[:limit], len(records) > limit
        query = {name: value for name, value in request.query_params.items() if name != "before_id"}
        return {
            "changes": [record.as_json() for record in page],
            "next": "/api/changes?" + urlencode({**query, "before_id": str(page[-1].id)}) if more else None,
        }

    @api.get("/changes/{change_id}", response_model=models.StoredChange, responses=_errors(404),
             dependencies=[Depends(strict_query())], summary="One stored change (its permalink)")  # fmt: skip
    def change(change_id: Annotated[int, Path(ge=1, le=models.MAX_ID)]) -> dict[str, Any]:
        return read.change(change_id).as_json()

    @api.get("/compare", response_model=models.CompareResult, responses=_errors(404, 409),
             dependencies=[Depends(strict_query("cloud", "schema", "reference", "other_cloud"))],
             summary="The regions of one (cloud, schema) grouped by document, with each deviation")  # fmt: skip
    def compare(
        cloud: Annotated[str, Query()], schema: Annotated[str, Query()],
        reference: Annotated[str | None, Query(description="majority, or a compared region")] = None,
        other_cloud: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        choice("cloud", cloud), choice("schema", schema), choice("cloud", other_cloud)
        view = read.compare(cloud, schema, reference, other_cloud)
        return {
            "cloud": view.cloud,
            "schema": view.schema,
            "other_cloud": view.other_cloud,
            "comparison": comparison_json(view.comparison, view.labels),
            "deviations": [
                {"region": label, "sha256": view.current[label], "changes": [change_json(c) for c in cmp.changes]}
                for label, cmp in view.deviations
            ],
            "rollouts": [
                {"cloud": r.cloud, "schema": r.schema, "from_sha256": r.from_sha256, "to_sha256": r.to_sha256,
                 "started_at": r.started_at, "updated": list(r.updated), "lagging": list(r.lagging)}
                for r in view.rollouts
            ],
        }  # fmt: skip

    @api.get("/surface", response_model=models.Surface, responses=_errors(404),
             dependencies=[Depends(strict_query("cloud"))],
             summary="A cloud's API surface: versions and microversions per region, extension differences")  # fmt: skip
    def surface(cloud: Annotated[str, Query()]) -> dict[str, Any]:
        choice("cloud", cloud)
        return read.surface(cloud).as_json()

    @api.post("/targets/{cloud}/{region}/{schema}/ack", response_model=models.AckResult,
              responses=_errors(401, 403, 404, 409, 413),
              dependencies=[Depends(strict_query()), Depends(_authorizer(context))],
              summary="Acknowledge changes by fingerprint, or approve the current document")  # fmt: skip
    def acknowledge(cloud: Cloud, region: Region, schema: Schema, ack: models.AckRequest) -> dict[str, Any]:
        key = key_of(cloud, region, schema)
        result = _approve(context, key, ack) if ack.approve else _acknowledge(context, key, ack)
        _notify(context)
        return result

    return api


def _authorizer(context: ApiContext) -> Callable[[Request], None]:
    """Raises 403 when no token is configured, 401 (with WWW-Authenticate) when the bearer token is wrong."""

    def authorize(request: Request) -> None:
        _check_body(request)
        token = context.config.api.token
        if token is None:
            raise ApiError(403, "write endpoints are disabled: set api.token")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode("utf-8")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
            raise ApiError(401, "a valid bearer token is required (Authorization: Bearer <api.token>)",
                           {"WWW-Authenticate": 'Bearer realm="schema-drift-monitor"'})  # fmt: skip

    return authorize


def _check_body(request: Request) -> None:
    """A body must come with a Content-Length of at most MAX_BODY bytes (400, 413)."""
    if "transfer-encoding" in request.headers:
        raise ApiError(400, "send the request body with a Content-Length, not chunked")
    length = request.headers.get("content-length", "0").strip()
    if not (length.isascii() and length.isdigit()):
        raise ApiError(400, "invalid Content-Length")
    if int(length) > models.MAX_BODY:
        raise ApiError(413, f"the request body is larger than {models.MAX_BODY} bytes")


def _acknowledge(context: ApiContext, key: TargetKey, ack: models.AckRequest) -> dict[str, Any]:
    now = utcnow()
    fingerprints = list(dict.fromkeys(ack.fingerprints or []))
    pending = {item.fingerprint for item in context.read.drift(key, now) if not item.acknowledged}
    expires_at = now + timedelta(seconds=ack.expires_in_seconds) if ack.expires_in_seconds is not None else None
    context.intelligence.acknowledge(context.read.row(key).id, fingerprints, comment=ack.comment, actor=ack.by,
                                     now=now, expires_at=expires_at)  # fmt: skip
    log.info("api: %r acknowledged %d change(s) of %s: %r", ack.by, len(fingerprints), key, ack.comment)
    not_pending = [fp for fp in fingerprints if fp not in pending]
    return {**_labels(key), "acknowledged": fingerprints, "not_pending": not_pending, "approved_snapshot_id": None,
            "expires_at": expires_at}  # fmt: skip


def _approve(context: ApiContext, key: TargetKey, ack: models.AckRequest) -> dict[str, Any]:
    if not context.read.snapshots(key):
        raise ApiError(409, f"target {key} has no snapshot to approve yet")
    snapshot_id = context.intelligence.approve_current(context.read.row(key).id, comment=ack.comment, actor=ack.by,
                                                       now=utcnow())  # fmt: skip
    log.info("api: %r approved snapshot %d as the baseline of %s: %r", ack.by, snapshot_id, key, ack.comment)
    return {**_labels(key), "acknowledged": [], "not_pending": [], "approved_snapshot_id": snapshot_id,
            "expires_at": None}  # fmt: skip


def _notify(context: ApiContext) -> None:
    """Tell the daemon the acknowledgements changed; a failure only delays the gauges to the next refresh."""
    try:
        context.on_change()
    except Exception:
        log.exception("api: could not schedule a drift refresh; it follows at the next periodic refresh")


def _since(value: str | None) -> datetime | None:
    from monitor.read.model import parse_since

    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError:
        raise ApiError(400, "since must be an RFC 3339 date-time (2026-01-31T00:00:00Z) or a duration (24h)") from None


def _labels(key: TargetKey) -> dict[str, str]:
    return {"cloud": key.cloud, "region": key.region, "schema": key.schema}


def _target_json(view: TargetView) -> dict[str, Any]:
    state, baseline = view.state, view.baseline
    return {
        **_labels(view.key),
        "url": view.url,
        "snapshot_id": state.snapshot_id,
        "sha256": state.document.sha256 if state.document else None,
        "last_poll_at": state.last_poll_at,
        "last_success_at": state.last_success_at,
        "last_change_at": state.last_change_at,
        "poll_ok": state.last_poll_ok,
        "reason": view.reason.value if view.reason else None,
        "baseline_snapshot_id": baseline.snapshot_id if baseline else None,
        "baseline_sha256": baseline.sha256 if baseline else None,
        "deviates": view.deviates,
        "unacknowledged": {severity.value: count for severity, count in view.unacknowledged.items()},
        "flapping": view.flapping,
        "stale": view.stale,
        "rollout_in_progress": view.rollout,
    }
