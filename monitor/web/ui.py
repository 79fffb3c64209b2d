"""The web UI under ``/ui/``: server-rendered pages (Jinja2) over the read model, working without JavaScript.

Pages (every one a plain ``def`` handler, so its database reads run on the server's thread pool):

* ``/ui/`` — the overview: every (cloud, schema) with its regions as tiles, counts per status, filters
  ``?cloud=`` and ``?status=`` (400 for a value that names nothing);
* ``/ui/targets/{cloud}/{region}/{schema}`` — a target: poll state, drift, snapshot timeline, changes,
  outcome transitions;
* ``/ui/targets/{cloud}/{region}/{schema}/diff?from=&to=`` — two snapshots (default: the last two);
* ``/ui/targets/{cloud}/{region}/{schema}/baseline`` — the approved baseline against the current document;
* ``/ui/targets/{cloud}/{region}/{schema}/against/{other_cloud}/{other_region}`` — two regions;
* ``/ui/compare/{cloud}/{schema}?reference=&other_cloud=`` — the region-by-document matrix;
* ``/ui/consumers`` — consumers by regions (docs/consumers.md), and ``/ui/consumers/{consumer}/{region}`` — one
  consumer's requirements in a region with their evidence (:mod:`monitor.web.consumer_pages`);
* ``/ui/changes/{id}`` — a change's permalink (the link notifications carry).

Every diff (the three diff pages and the permalink) is an aligned split diff (:mod:`monitor.web.aligned`);
``?view=unified`` shows it in one column (``split``, the default, side by side; another value is a 400).

Nothing leaves the page: styles, the one small script and the icon are served from ``/ui/static/``, and
every UI response carries :data:`SECURITY_HEADERS` (a Content-Security-Policy allowing only those, no inline
script or style). Templates autoescape. Links inside pages are relative (each page knows its way back to
``/ui/``), so the UI works behind a reverse proxy that serves it under a path prefix.

Errors under ``/ui/`` are HTML pages with the API's status and message (:func:`error_page`); the API's own
errors stay JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import __version__
from monitor.domain import ABSENT, utcnow
from monitor.read.matrix import SHORT_SHA
from monitor.read.model import Conflict, NotFound, pick_snapshots
from monitor.read.records import HistoryFilter
from monitor.read.reports import ABSENT_MARK
from monitor.web import aligned, consumer_pages, models, pages
from monitor.web.api import ApiContext, ApiError

PREFIX: Final = "/ui/"
CSP: Final = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
View = Literal["split", "unified"]  # pages.VIEWS: a diff page's layout (``?view=``); another value is a 400
HISTORY_LIMIT: Final = 200  # the target page lists the newest changes; /api/changes pages through all
TRANSITIONS_LIMIT: Final = 50

_templates = Environment(
    loader=PackageLoader("monitor.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def is_ui_path(path: str) -> bool:
    """Whether ``path`` is the UI's (``/ui`` and below, and ``/`` that redirects to it)."""
    return path in ("/", "/ui") or path.startswith(PREFIX)


def relative_root(scope: Scope) -> str:
    """The relative URL from the requested page back to ``/ui/``: ``./`` on ``/ui/``, ``../../`` two levels
    down. Counted on the raw path, so a ``%2F`` inside a label is not taken for a level."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = raw.decode("latin-1").split("?", 1)[0]
    rest = path[len(PREFIX) :] if path.startswith(PREFIX) else ""
    return "../" * rest.count("/") or "./"


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` (plus ``root`` and the helpers), with the security headers."""
    body = _templates.get_template(template).render(
        root=relative_root(request.scope), now=utcnow(), version=__version__, statuses=pages.STATUSES, **context,
    )  # fmt: skip
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def error_page(request: Request, status: int, message: str) -> Response:
    """The HTML answer for an error under ``/ui/`` (the same status and message the API would give)."""
    return render(request, "error.html", status=status, status_code=status, message=message)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every UI response (static files, redirects too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_ui(app: FastAPI, context: ApiContext) -> None:
    """Add the UI's routes, its static files and the security headers to ``app``; ``/`` redirects to it."""
    app.add_middleware(SecurityHeaders)
    app.mount("/ui/static", StaticFiles(packages=[("monitor.web", "static")]), name="ui-static")
    _routes(app, context)


def _routes(app: FastAPI, context: ApiContext) -> None:
    for family in (_overview, _target_pages, _diff_pages, _fleet_pages, _consumer_pages):
        family(app, context)


def _overview(app: FastAPI, context: ApiContext) -> None:
    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("ui/", status_code=307)  # relative: right behind a proxy prefix too

    @app.get("/ui/", include_in_schema=False)
    def overview(request: Request, cloud: str | None = None, status: str | None = None) -> Response:
        try:
            page = pages.overview(context.read.targets(), context.labels.get("cloud", []), cloud or None,
                                  status or None)  # fmt: skip
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return render(request, "overview.html", page=page)


def _target_pages(app: FastAPI, context: ApiContext) -> None:
    read = context.read

    @app.get("/ui/targets/{cloud}/{region}/{schema}", include_in_schema=False)
    def target(request: Request, cloud: str, region: str, schema: str) -> Response:
        key = context.key(cloud, region, schema)
        view = read.target(key)
        try:
            drift = read.drift(key)
        except Conflict:  # no snapshot yet: nothing drifted
            drift = None
        history = read.history(HistoryFilter(cloud=cloud, region=region, schema=schema, limit=HISTORY_LIMIT))
        neighbours = [k for k in read.known() if (k.cloud, k.schema) == (cloud, schema) and k != key]
        page = pages.target_page(view, drift, read.snapshots(key), history,
                                 read.transitions(key, TRANSITIONS_LIMIT), sorted(neighbours, key=str))  # fmt: skip
        return render(request, "target.html", page=page)

    @app.get("/ui/changes/{change_id}", include_in_schema=False)
    def change(request: Request, change_id: Annotated[int, Path(ge=1, le=models.MAX_ID)], view: View = "split",
               ) -> Response:  # fmt: skip
        record = read.change(change_id)
        try:
            ids = [s.id for s in read.snapshots(record.target)]
            from_id, to_id = pick_snapshots(ids, None, record.snapshot_id)
            comparison = read.snapshot_diff(record.target, from_id, to_id)
            labels = (f"snapshot {from_id}", f"snapshot {to_id}")
            page: pages.Diff | None = pages.diff(record.target, comparison, labels, focus=record.path, view=view)
        except (NotFound, Conflict):  # a retired target, or its snapshots are gone: the change alone
            page = None
        return render(request, "change.html", record=record, page=page, absent=ABSENT,
                      target_path=pages.target_path(record.target))  # fmt: skip


def _diff_pages(app: FastAPI, context: ApiContext) -> None:
    read, key_of = context.read, context.key

    @app.get("/ui/targets/{cloud}/{region}/{schema}/diff", include_in_schema=False)
    def snapshot_diff(
        request: Request, cloud: str, region: str, schema: str,
        from_id: Annotated[int | None, Query(alias="from", ge=1, le=models.MAX_ID)] = None,
        to_id: Annotated[int | None, Query(alias="to", ge=1, le=models.MAX_ID)] = None,
        view: View = "split",
    ) -> Response:  # fmt: skip
        key = key_of(cloud, region, schema)
        snapshots = read.snapshots(key)
        from_id, to_id = pick_snapshots([s.id for s in snapshots], from_id, to_id)
        comparison = read.snapshot_diff(key, from_id, to_id)
        choice = pages.SnapshotChoice(tuple(reversed(snapshots)), from_id, to_id)
        params = (("from", str(from_id)), ("to", str(to_id)))  # the switch keeps the snapshots shown
        page = pages.diff(key, comparison, (f"snapshot {from_id}", f"snapshot {to_id}"), choice=choice, view=view,
                          params=params)  # fmt: skip
        return render(request, "diff.html", page=page)

    @app.get("/ui/targets/{cloud}/{region}/{schema}/baseline", include_in_schema=False)
    def baseline_diff(request: Request, cloud: str, region: str, schema: str, view: View = "split") -> Response:
        key = key_of(cloud, region, schema)
        comparison = read.baseline_diff(key)
        target = read.target(key)
        baseline = f"baseline (snapshot {target.baseline.snapshot_id})" if target.baseline else "baseline"
        labels = (baseline, f"current (snapshot {target.state.snapshot_id})")
        return render(request, "diff.html", page=pages.diff(key, comparison, labels, view=view))

    @app.get("/ui/targets/{cloud}/{region}/{schema}/against/{other_cloud}/{other_region}", include_in_schema=False)
    def region_diff(request: Request, cloud: str, region: str, schema: str, other_cloud: str,
                    other_region: str, view: View = "split") -> Response:  # fmt: skip
        key, other = key_of(cloud, region, schema), key_of(other_cloud, other_region, schema)
        comparison = read.region_diff(key, other)
        labels = (f"{other.cloud}/{other.region}", f"{key.cloud}/{key.region}")
        return render(request, "diff.html", page=pages.diff(key, comparison, labels, view=view))


def _fleet_pages(app: FastAPI, context: ApiContext) -> None:
    @app.get("/ui/compare/{cloud}/{schema}", include_in_schema=False)
    def compare(request: Request, cloud: str, schema: str, reference: str | None = None,
                other_cloud: str | None = None) -> Response:  # fmt: skip
        view = context.read.compare(cloud, schema, reference or None, other_cloud or None)
        return render(request, "compare.html", page=pages.compare_page(view), clouds=context.labels.get("cloud", []))


def _consumer_pages(app: FastAPI, context: ApiContext) -> None:
    @app.get("/ui/consumers", include_in_schema=False)
    def consumers(request: Request) -> Response:
        return render(request, "consumers.html", page=consumer_pages.matrix_page(context.read.consumers()))

    @app.get("/ui/consumers/{consumer}/{region}", include_in_schema=False)
    def consumer(request: Request, consumer: str, region: str) -> Response:
        found = context.read.consumers(consumer, region)
        return render(request, "consumer.html", page=consumer_pages.region_page(found, context.read.parsed))


def when(moment: datetime | None) -> str:
    """A moment as ``2026-11-27 16:00:13 UTC`` (``—`` for None)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def ago(moment: datetime | None, now: datetime) -> str:
    """How long ago ``moment`` was, roughly (``42 s ago``, ``3 min ago``, ``5 h ago``, ``2 d ago``)."""
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def query(**params: object) -> str:
    """``?name=value&…`` for the parameters that are not None or empty (``""`` when none is left)."""
    given = {name: str(value) for name, value in params.items() if value is not None and value != ""}
    return f"?{urlencode(given)}" if given else ""


def pretty(value: object) -> str:
    """A change's value as indented JSON; ``∅ (absent)`` for a missing side."""
    if value is ABSENT:
        return f"{ABSENT_MARK} (absent)"
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def pointer(path: str) -> Markup:
    """A JSON Pointer as HTML that wraps only between its reference tokens, never inside one: each ``/token``
    is a ``tok`` span (unbreakable in the style sheet), a ``<wbr>`` between them; ``(root)`` for the root."""
    if not path:
        return Markup("(root)")
    return Markup("<wbr>").join(Markup('<span class="tok">/{}</span>').format(t) for t in path.split("/")[1:])


def short(sha: str | None) -> str:
    """The first 12 hex digits of a sha256, as the CLI shows them (``—`` for None)."""
    return sha[:SHORT_SHA] if sha else "—"


_templates.filters.update(when=when, segment=pages.segment, pointer=pointer)
_templates.globals.update(ago=ago, query=query, pretty=pretty, short=short, anchor_id=aligned.anchor_id,
                          views=pages.VIEWS)  # fmt: skip
