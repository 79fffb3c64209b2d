"""The daemon's HTTP application (FastAPI): ``/metrics``, ``/healthz``, ``/readyz``, the read API and the UI.

The three status routes answer from memory (they are ``async`` and never wait for the database or the
server's thread pool), so they keep answering during a database lock or outage and while the daemon's own
event loop is busy — the server runs on a thread and loop of its own (:mod:`monitor.web.server`).

Errors are ``{"error": "<message>"}`` everywhere under ``/api/``: a validation error is a 400 (not
FastAPI's 422), a missing target 404, a question not answerable yet 409, a database failure 503 without
its details (those go to the log), a bug 500. Under ``/ui/`` the same statuses and messages come as an
HTML page (:func:`monitor.web.ui.error_page`). The OpenAPI document at ``/api/openapi.json`` is FastAPI's,
from the models, with the configured clouds, regions and schemas as enums of the label parameters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from monitor import __version__
from monitor.read.model import Conflict, NotFound
from monitor.signals.metrics import CONTENT_TYPE, Metrics
from monitor.store.records import StoreError
from monitor.web.api import ApiContext, router
from monitor.web.ui import error_page, is_ui_path, mount_ui

log = logging.getLogger(__name__)
LABEL_PARAMETERS = {"cloud": "cloud", "other_cloud": "cloud", "region": "region", "schema": "schema"}


def create_app(
    metrics: Metrics, ready: Callable[[], dict[str, bool]], api: ApiContext | None = None, *, ui: bool = False
) -> FastAPI:
    """The application: status routes always, the API when ``api`` is given, and the UI when ``ui`` too
    (the UI reads through the API's context: without the API there is no UI)."""
    app = FastAPI(title="schema-drift-monitor read API", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None)  # fmt: skip
    _status_routes(app, metrics, ready)
    with_ui = ui and api is not None
    if ui and api is None:
        log.warning("ui.enabled is ignored: the web UI reads through the read API, which api.enabled turns off")
    _error_handlers(app, with_ui)
    if api is not None:
        app.include_router(router(api))
        app.openapi = lambda: _openapi(app, api)  # type: ignore[method-assign]
        if with_ui:
            mount_ui(app, api)
    return app


def _status_routes(app: FastAPI, metrics: Metrics, ready: Callable[[], dict[str, bool]]) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def exposition() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = ready()  # the database is reported, not required: Prometheus keeps scraping an outage
        ok = checks.get("scheduler", False) and checks.get("share", True)
        return JSONResponse(checks, status_code=200 if ok else 503)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def _error_handlers(app: FastAPI, ui: bool) -> None:
    """JSON errors; with ``ui``, HTML error pages for the UI's paths."""

    def answer(request: Request, status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        if ui and is_ui_path(request.url.path):
            return error_page(request, status, message)
        return _error(status, message, headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and exc.detail == "Not Found":
            if ui and is_ui_path(request.url.path):
                return error_page(request, 404, f"no such page: {request.url.path[:200]}")
            if not request.url.path.startswith("/api/"):
                return PlainTextResponse("not found: try /metrics, /healthz, /readyz, /api/, /ui/\n", 404)
            return _error(404, f"no such API route: {request.url.path[:200]}; see /api/openapi.json")
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return answer(request, 405, f"method {request.method} is not allowed here; use {allowed}", exc.headers)
        return answer(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return answer(request, 400, _validation_message(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return answer(request, 404, str(exc.args[0]) if exc.args else "not found")

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> Response:
        return answer(request, 409, str(exc))

    @app.exception_handler(StoreError)
    async def database(request: Request, exc: StoreError) -> Response:
        log.error("api: %s %s: database error: %s", request.method, request.url.path, exc)
        return answer(request, 503, "the database is not available; see the monitor's log")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.error("api: %s %s failed", request.method, request.url.path, exc_info=exc)
        return answer(request, 500, "internal error; see the monitor's log")


def _validation_message(exc: RequestValidationError) -> str:
    """One line for the first problem: where (``query.limit``) and what; never the input value."""
    error = exc.errors()[0]
    location = [str(part) for part in error.get("loc", ())]
    if location[:1] == ["body"] and error.get("type") in ("json_invalid", "model_attributes_type", "dict_type",
                                                           "missing") and len(location) == 1:  # fmt: skip
        return "the request body must be a JSON object"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "string_pattern_mismatch":
        message = f"must match the pattern {error.get('ctx', {}).get('pattern', '')}"
    where = ".".join(location[1:]) if location[:1] in (["query"], ["path"], ["body"]) else ".".join(location)
    return f"{where}: {message}" if where else message


def _openapi(app: FastAPI, api: ApiContext) -> dict[str, Any]:
    """FastAPI's document with 400 instead of 422 and the configured label values as enums."""
    from fastapi.openapi.utils import get_openapi

    about = 'Read API of schema-drift-monitor; errors are {"error": message}.'
    document = get_openapi(title=app.title, version=app.version, routes=app.routes, description=about)
    for path in document["paths"].values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                labels = api.labels.get(LABEL_PARAMETERS.get(parameter["name"], ""))
                if labels:
                    parameter["schema"] = _with_enum(parameter["schema"], labels)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    fresh: dict[str, Any] = json.loads(json.dumps(document))  # a fresh copy: the enums follow discovery
    return fresh


def _with_enum(schema: dict[str, Any], values: list[str]) -> dict[str, Any]:
    if "anyOf" in schema:  # an optional parameter: str | None
        return {**schema, "anyOf": [_with_enum(s, values) if s.get("type") == "string" else s for s in schema["anyOf"]]}
    return {**schema, "enum": values}
