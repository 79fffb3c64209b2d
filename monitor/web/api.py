"""The read API under ``/api/``: each route parses its input, asks the read model (or its commands), and shapes
the answer.

Routes (all answer ``application/json``; errors are ``{"error": "<message>"}``), by family:

* ``GET  /api/`` — this index: the OpenAPI document and a path into each family;
* targets: ``GET /api/targets`` (every target with its current state; paged in label order by ``limit`` and the
  opaque cursor ``after``: ``next`` link), and per target
  ``GET …/{cloud}/{region}/{schema}/snapshots`` (oldest first), ``…/transitions`` (when its polls started
  failing, why, and recovered), ``…/diff`` (two snapshots, in a report format), ``…/drift`` (baseline → now,
  with the fingerprints ``ack`` takes);
* ``GET  /api/documents/{sha256}`` — a stored canonical document, byte for byte;
* changes: ``GET /api/changes`` (newest poll first, each poll's changes worst first; filtered, paged by
  ``before_id``: ``next`` link) and
  ``GET /api/changes/{id}``;
* fleet: ``GET /api/compare`` (the cross-region or cross-cloud comparison with each deviating region's changes)
  and ``GET /api/surface`` (a cloud's versions and microversions per region, extension gaps);
* ``GET /api/consumers`` — every consumer, region by region: compatible, broken (which requirements, why) or
  unknown (docs/consumers.md);
* writes, with the bearer token ``api.token``: ``POST …/{cloud}/{region}/{schema}/ack`` (acknowledge changes or
  approve the current document) and ``POST /api/expect`` (an expected-change window), through
  :mod:`monitor.read.commands` — the rules and messages of the command line's ``ack`` and ``expect``.

Database reads are plain (not async) handlers, so they run on the server's thread pool and a locked database
never holds its event loop. Query parameters are strict: an unknown or repeated one is a 400, as is a label
no configured target has; a combination of labels that names nothing configured is a 404.
"""

import hmac
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from monitor.config import Config
from monitor.domain import Severity, TargetKey, TargetSpec, change_json
from monitor.read import checks
from monitor.read.commands import Commands, Journal, drift_json
from monitor.read.matrix import comparison_json
from monitor.read.model import ReadModel, RegionView, TargetView, poll_order
from monitor.read.records import HistoryFilter
from monitor.read.reports import render
from monitor.web import models

log = logging.getLogger(__name__)
BEARER: Final = "bearer"  # the OpenAPI security scheme of the write routes
WRITE: Final[dict[str, Any]] = {"security": [{BEARER: []}]}
DOCS_NOT_SERVED: Final = (
    "interactive API docs are not served: their assets would come from a CDN, which the Content-Security-Policy "
    "forbids; the routes are listed at /api/ and described by /api/openapi.json (open it in any OpenAPI viewer)"
)


class ApiError(HTTPException):
    """An answer ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, message, dict(headers or {}))


@dataclass
class ApiContext:
    """What the routes read and write; built by the composition root (``app.build_api``)."""

    config: Config
    read: ReadModel
    intelligence: Journal  # where acknowledgements and windows are written (the intelligence store)
    on_change: Callable[[], None] = field(default=lambda: None)
    labels: dict[str, list[str]] = field(default_factory=dict)  # the configured label values, for validation

    def set_targets(self, specs: Iterable[TargetSpec]) -> None:
        """Validate labels against these targets from now on (discovery added or removed regions)."""
        self.labels = checks.labels_of(spec.key for spec in specs)

    @property
    def commands(self) -> Commands:
        return Commands(self.config, self.read, self.intelligence)

    def key(self, cloud: str, region: str, schema: str) -> TargetKey:
        """The target the path labels name; raises NotFound (404) when it is not a known target."""
        key = TargetKey(cloud, region, schema)
        self.read.row(key)
        return key

    def choice(self, name: str, value: str | None) -> str | None:
        """A label of the query: None, or one the targets have; raises Invalid (400)."""
        return checks.label(name, value, self.labels.get(name, []))


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route (400 and 503 are always possible)."""
    texts = {400: "invalid request", 401: "a bearer token is required", 403: "write endpoints are disabled",
             404: "not found", 409: "not answerable or not possible now", 413: "request body too large",
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
Since = Annotated[
    str | None,
    Query(
        description=f"only changes since then: {checks.MOMENT_RULE}",
        examples=["24h", "2026-01-31T00:00:00Z"],
        json_schema_extra={
            "anyOf": [  # what it is: a duration ago, or a moment
                {
                    "type": "string",
                    "pattern": models.DURATION_PATTERN,
                    "description": "a duration ago: 90s, 15m, 24h, 7d",
                },
                {"type": "string", "format": "date-time"},
            ]
        },
    ),
]
NO_QUERY: Final = [Depends(strict_query())]
ABOUT: Final = (
    'The read API of schema-drift-monitor. Errors are {"error": message}; the POST routes need Authorization: '
    "Bearer <api.token>. Interactive docs are not served (their assets would come from a CDN): open "
    "/api/openapi.json in any OpenAPI viewer."
)


def router(context: ApiContext) -> APIRouter:
    """Every ``/api/`` route over ``context``, family by family."""
    api = APIRouter(prefix="/api")
    for family in (_index, _targets, _target, _changes, _fleet, _consumers, _writes):
        family(api, context)
    return api


def _index(api: APIRouter, context: ApiContext) -> None:
    @api.get("/", response_model=models.ApiIndex, dependencies=NO_QUERY, summary="This index: every route")
    def index() -> dict[str, Any]:
        routes = [
            {"method": method, "path": route.path, "summary": route.summary or "", "family": _family(route.path)}
            for route in api.routes
            if isinstance(route, APIRoute) and route.path != "/api/"
            for method in sorted(route.methods or ())
        ]
        return {"about": ABOUT, "openapi": "/api/openapi.json", "interactive_docs": None, "routes": routes}


def _family(path: str) -> str:
    """The family of a route: ``target`` for per-target routes, else the first segment after ``/api/``."""
    parts = path.removeprefix("/api/").split("/")
    return "target" if parts[0] == "targets" and len(parts) > 1 else parts[0]


def _targets(api: APIRouter, context: ApiContext) -> None:
    read = context.read

    @api.get("/targets", response_model=models.TargetList, responses=_errors(404),
             dependencies=[Depends(strict_query("limit", "after"))],
             summary="Every target with its current state, a page at a time in label order")  # fmt: skip
    def targets(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=models.MAX_TARGETS)] = models.DEFAULT_TARGETS,
        after: Annotated[str | None, Query(pattern=checks.CURSOR_PATTERN, description=models.AFTER_RULE)] = None,
    ) -> dict[str, Any]:  # fmt: skip
        page = read.targets_page(checks.after_target("after", after) if after is not None else None, limit)
        rest = {name: value for name, value in request.query_params.items() if name != "after"}
        cursor = checks.target_cursor(page.next_after) if page.next_after is not None else None
        return {
            "targets": [_target_json(view) for view in page.targets],
            "next": "/api/targets?" + urlencode({**rest, "after": cursor}) if cursor else None,
        }

    @api.get("/documents/{sha256}", response_model=dict[str, Any], responses=_errors(404), dependencies=NO_QUERY,
             summary="A stored canonical document, byte for byte")  # fmt: skip
    def document(sha256: Annotated[str, Path(pattern=models.SHA256_PATTERN)]) -> Response:
        body = read.document(sha256.lower()).body
        return Response(body.encode("utf-8"), media_type="application/json")


def _target(api: APIRouter, context: ApiContext) -> None:
    read, key_of = context.read, context.key

    @api.get("/targets/{cloud}/{region}/{schema}/snapshots", response_model=models.SnapshotList,
             responses=_errors(404), dependencies=NO_QUERY, summary="A target's snapshots, oldest first")  # fmt: skip
    def snapshots(cloud: Cloud, region: Region, schema: Schema) -> dict[str, Any]:
        key = key_of(cloud, region, schema)
        return {**_labels(key), "snapshots": [s.as_json() for s in read.snapshots(key)]}

    @api.get("/targets/{cloud}/{region}/{schema}/transitions", response_model=list[models.Transition],
             responses=_errors(404), dependencies=NO_QUERY,
             summary="When the target's polls started failing, why, and when they recovered")  # fmt: skip
    def transitions(cloud: Cloud, region: Region, schema: Schema) -> list[dict[str, Any]]:
        return [
            {"started_at": t.started_at, "ok": t.ok, "reason": t.reason.value if t.reason else None,
             "http_status": t.http_status, "error": t.error}
            for t in read.transitions(key_of(cloud, region, schema))
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
        text = render(format, [read.snapshot_diff(key_of(cloud, region, schema), from_id, to_id)])
        return json.loads(text) if format in ("json", "jsonpatch") else {"format": format, "body": text}

    @api.get("/targets/{cloud}/{region}/{schema}/drift", response_model=models.Drift, responses=_errors(404, 409),
             dependencies=NO_QUERY,
             summary="The changes between the approved baseline and now, with the fingerprints ack takes")  # fmt: skip
    def drift(cloud: Cloud, region: Region, schema: Schema) -> dict[str, Any]:
        key = key_of(cloud, region, schema)
        return {**_labels(key), "changes": drift_json(read.drift(key))}


def _changes(api: APIRouter, context: ApiContext) -> None:
    read, choice = context.read, context.choice
    query = ("cloud", "region", "schema", "severity", "since", "limit", "before_id")

    @api.get("/changes", response_model=models.ChangePage, responses=_errors(),
             dependencies=[Depends(strict_query(*query))], summary="Stored changes, newest first")  # fmt: skip
    def changes(
        request: Request,
        cloud: str | None = None, region: str | None = None, schema: str | None = None,
        severity: models.SeverityName | None = None,
        since: Since = None,
        limit: Annotated[int, Query(ge=1, le=models.MAX_LIMIT)] = models.DEFAULT_LIMIT,
        before_id: Annotated[int | None, Query(ge=1, le=models.MAX_ID)] = None,
    ) -> dict[str, Any]:  # fmt: skip
        where = HistoryFilter(
            cloud=choice("cloud", cloud), region=choice("region", region), schema=choice("schema", schema),
            min_severity=Severity(severity) if severity else None,
            since=checks.moment("since", since) if since is not None else None,
            limit=limit + 1, before_id=before_id,  # one more tells whether there is a next page
        )  # fmt: skip
        records = read.history(where)
        more = len(records) > limit
        oldest = min(r.id for r in records) if more else None  # the one more: it opens the next page
        page = poll_order((r for r in records if r.id != oldest), newest_first=True)
        rest = {name: value for name, value in request.query_params.items() if name != "before_id"}
        cursor = str(min(r.id for r in page)) if more else None
        return {
            "changes": [record.as_json() for record in page],
            "next": "/api/changes?" + urlencode({**rest, "before_id": cursor}) if cursor else None,
        }

    @api.get("/changes/{change_id}", response_model=models.StoredChange, responses=_errors(404),
             dependencies=NO_QUERY, summary="One stored change (its permalink)")  # fmt: skip
    def change(change_id: Annotated[int, Path(ge=1, le=models.MAX_ID)]) -> dict[str, Any]:
        return read.change(change_id).as_json()


def _fleet(api: APIRouter, context: ApiContext) -> None:
    read, choice = context.read, context.choice

    @api.get("/compare", response_model=models.CompareResult, responses=_errors(404, 409),
             dependencies=[Depends(strict_query("cloud", "schema", "reference", "other_cloud"))],
             summary="The regions of one (cloud, schema) grouped by document, with each deviation")  # fmt: skip
    def compare(
        cloud: Annotated[str, Query()], schema: Annotated[str, Query()],
        reference: Annotated[str | None, Query(description="majority, or a compared region")] = None,
        other_cloud: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        choice("cloud", cloud), choice("schema", schema), choice("cloud", other_cloud)
        return _compare_json(read.compare(cloud, schema, reference, other_cloud))

    @api.get("/surface", response_model=models.Surface, responses=_errors(404),
             dependencies=[Depends(strict_query("cloud"))],
             summary="A cloud's API surface: versions and microversions per region, extension differences")  # fmt: skip
    def surface(cloud: Annotated[str, Query()]) -> dict[str, Any]:
        choice("cloud", cloud)
        return read.surface(cloud).as_json()


def _consumers(api: APIRouter, context: ApiContext) -> None:
    @api.get("/consumers", response_model=models.ConsumerMatrix, responses=_errors(404),
             dependencies=[Depends(strict_query("consumer", "region"))],
             summary="Will the clients still work? Each consumer's requirements, region by region")  # fmt: skip
    def consumers(
        consumer: Annotated[str | None, Query(description="only this consumer")] = None,
        region: Annotated[str | None, Query(description="only this region")] = None,
    ) -> dict[str, Any]:
        return context.read.consumers(consumer, region).as_json()


def _writes(api: APIRouter, context: ApiContext) -> None:
    writes = [Depends(strict_query()), Depends(_authorizer(context))]

    @api.post("/targets/{cloud}/{region}/{schema}/ack", response_model=models.AckResult,
              responses=_errors(401, 403, 404, 409, 413), dependencies=writes, openapi_extra=WRITE,
              summary="Acknowledge changes by fingerprint (or its first 8+ hex digits), or approve the current "
              "document")  # fmt: skip
    def acknowledge(cloud: Cloud, region: Region, schema: Schema, ack: models.AckRequest) -> dict[str, Any]:
        key, commands = context.key(cloud, region, schema), context.commands
        if ack.approve:
            done = commands.approve(key, comment=ack.comment, by=ack.by)
        else:
            done = commands.acknowledge(key, ack.fingerprints or [], comment=ack.comment, by=ack.by,
                                        expires_in=ack.expires_in_seconds)  # fmt: skip
        _notify(context)
        return done.as_json()

    @api.post("/expect", response_model=models.ExpectResult, responses=_errors(401, 403, 404, 409, 413),
              dependencies=writes, openapi_extra=WRITE,
              summary="Declare an expected-change window: changes are recorded but do not page")  # fmt: skip
    def expect(window: models.ExpectRequest) -> dict[str, Any]:
        done = context.commands.expect(window.cloud, window.schema_, duration=window.duration_seconds,
                                       start=window.starts_at, comment=window.comment, by=window.by)  # fmt: skip
        _notify(context)
        return done.as_json()


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


def _notify(context: ApiContext) -> None:
    """Tell the daemon the acknowledgements changed; a failure only delays the gauges to the next refresh."""
    try:
        context.on_change()
    except Exception:
        log.exception("api: could not schedule a drift refresh; it follows at the next periodic refresh")


def _compare_json(view: RegionView) -> dict[str, Any]:
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
        "rollout_role": view.rollout_role.value if view.rollout_role else None,
        "standing": view.standing.value if view.standing else None,
    }
