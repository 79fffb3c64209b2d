"""The OpenAPI 3.0.3 document of the read API (``monitor.api``), and the limits it promises.

Written by hand as a Python dict so it states exactly what the handlers do: closed objects
(``additionalProperties: false``), every status a route can answer, and the configured clouds, regions and
schemas as enums — so a client (or schemathesis) that sends only what the document allows never gets a 400;
a combination of labels that names nothing configured is a 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from monitor import __version__
from monitor.compare import MAJORITY
from monitor.domain import Severity, TargetKey
from monitor.reports import FORMATS

JSON_TYPE: Final = "application/json"
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
MAX_ID: Final = 2**63 - 1  # the largest id both databases store
MAX_BODY: Final = 64 * 1024
MAX_FINGERPRINTS: Final = 1000
MAX_COMMENT: Final = 2000
MAX_ACTOR: Final = 128  # acknowledgements.actor is VARCHAR(128)
MAX_EXPIRY: Final = 10 * 365 * 86400
SHA256_PATTERN: Final = "^[0-9a-fA-F]{64}$"
FINGERPRINT_PATTERN: Final = "^[0-9a-f]{64}$"
TEXT_PATTERN: Final = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"  # not blank, no NUL (PostgreSQL refuses NUL)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: Mapping[str, Any], optional: Iterable[str] = ()) -> dict[str, Any]:
    """A closed object schema; every property is required unless listed in ``optional``."""
    required = [name for name in properties if name not in set(optional)]
    return {"type": "object", "additionalProperties": False, "properties": dict(properties), "required": required}


def _nullable(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _array(items: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": dict(items)}


def _json_response(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON_TYPE: {"schema": dict(schema)}}}


def _error(description: str) -> dict[str, Any]:
    return _json_response(description, _ref("Error"))


def _query_parameter(name: str, schema: Mapping[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": dict(schema), "description": description}


def _operation(summary: str, ok: Mapping[str, Any], errors: Mapping[str, str], **extra: Any) -> dict[str, Any]:
    responses = {"200": dict(ok), **{code: _error(text) for code, text in errors.items()}}
    return {"summary": summary, "operationId": extra.pop("operation_id"), "responses": responses, **extra}


_STRING: Final = {"type": "string"}
_DATE_TIME: Final = {"type": "string", "format": "date-time"}
_SHA256: Final = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ID: Final = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_COUNT: Final = {"type": "integer", "minimum": 0}
_ANY_VALUE: Final = {"description": "any JSON value; null when that side is absent (see *_present)"}
_SEVERITY: Final = {"type": "string", "enum": [s.value for s in Severity]}
_DB_DOWN: Final = "the database is not available"


def _schemas() -> dict[str, Any]:
    """The component schemas: every response body and the acknowledgement request."""
    report_change = {
        "path": _STRING,
        "rule": _STRING,
        "severity": _SEVERITY,
        "old": _ANY_VALUE,
        "new": _ANY_VALUE,
        "old_present": {"type": "boolean"},
        "new_present": {"type": "boolean"},
    }
    labels = {"cloud": _STRING, "region": _STRING, "schema": _STRING}
    return {
        "Error": _object({"error": _STRING}),
        "Target": _object(
            {
                **labels,
                "url": _STRING,
                "snapshot_id": _nullable(_ID),
                "sha256": _nullable(_SHA256),
                "last_poll_at": _nullable(_DATE_TIME),
                "last_success_at": _nullable(_DATE_TIME),
                "last_change_at": _nullable(_DATE_TIME),
                "poll_ok": _nullable({"type": "boolean"}),
                "baseline_snapshot_id": _nullable(_ID),
                "baseline_sha256": _nullable(_SHA256),
                "deviates": {"type": "boolean"},
                "unacknowledged": _object({s.value: _COUNT for s in Severity}),
                "flapping": {"type": "boolean"},
            }
        ),
        "TargetList": _object({"targets": _array(_ref("Target"))}),
        "Snapshot": _object({"id": _ID, "sha256": _SHA256, "first_seen": _DATE_TIME, "last_seen": _DATE_TIME}),
        "SnapshotList": _object({**labels, "snapshots": _array(_ref("Snapshot"))}),
        "StoredChange": _object(
            {
                "id": _ID,
                **labels,
                "detected_at": _DATE_TIME,
                **report_change,
                "snapshot_id": _ID,
                "from_sha256": _SHA256,
                "to_sha256": _SHA256,
                "fingerprint": _SHA256,
                "ignored": {"type": "boolean"},
                "expected": {"type": "boolean"},
            }
        ),
        "ChangePage": _object({"changes": _array(_ref("StoredChange")), "next": _nullable(_STRING)}),
        "ReportChange": _object(report_change),
        "DiffReport": _array(_object({"title": _STRING, "changes": _array(_ref("ReportChange"))})),
        "JsonPatch": _array(
            _object(
                {"op": {"type": "string", "enum": ["add", "remove", "replace"]}, "path": _STRING, "value": _ANY_VALUE},
                optional=["value"],
            )
        ),
        "RenderedReport": _object({"format": {"type": "string", "enum": ["text", "markdown"]}, "body": _STRING}),
        "Comparison": _object(
            {
                "reference": _object({"label": _STRING, "sha256": _SHA256, "variant": _STRING}),
                "variants": _array(
                    _object(
                        {"id": _STRING, "sha256": _SHA256, "regions": _array(_STRING), "reference": {"type": "boolean"}}
                    )
                ),
                "deviating": _array(_STRING),
                "regions": _array(
                    _object(
                        {
                            "region": _STRING,
                            "variant": _nullable(_STRING),
                            "sha256": _nullable(_SHA256),
                            "deviates": {"type": "boolean"},
                        }
                    )
                ),
            }
        ),
        "Rollout": _object(
            {
                "cloud": _STRING,
                "schema": _STRING,
                "from_sha256": _nullable(_SHA256),
                "to_sha256": _SHA256,
                "started_at": _DATE_TIME,
                "updated": _array(_STRING),
                "lagging": _array(_STRING),
            }
        ),
        "CompareResult": _object(
            {
                "cloud": _STRING,
                "schema": _STRING,
                "other_cloud": _nullable(_STRING),
                "comparison": _ref("Comparison"),
                "deviations": _array(
                    _object({"region": _STRING, "sha256": _SHA256, "changes": _array(_ref("ReportChange"))})
                ),
                "rollouts": _array(_ref("Rollout")),
            }
        ),
        "AckRequest": _ack_request_schema(),
        "AckResult": _object(
            {
                **labels,
                "acknowledged": _array(_SHA256),
                "not_pending": _array(_SHA256),
                "approved_snapshot_id": _nullable(_ID),
                "expires_at": _nullable(_DATE_TIME),
            }
        ),
    }


def _ack_request_schema() -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "pattern": TEXT_PATTERN}
    schema = _object(
        {
            "fingerprints": {
                **_array({"type": "string", "pattern": FINGERPRINT_PATTERN}),
                "minItems": 1,
                "maxItems": MAX_FINGERPRINTS,
            },
            "approve": {"type": "boolean", "enum": [True]},
            "comment": {**text, "maxLength": MAX_COMMENT},
            "by": {**text, "maxLength": MAX_ACTOR, "default": "api"},
            "expires_in_seconds": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_EXPIRY},
        },
        optional=["fingerprints", "approve", "by", "expires_in_seconds"],
    )
    schema["oneOf"] = [
        {"required": ["fingerprints"], "not": {"required": ["approve"]}},
        {
            "required": ["approve"],
            "not": {"anyOf": [{"required": ["fingerprints"]}, {"required": ["expires_in_seconds"]}]},
        },
    ]
    schema["description"] = (
        'Either "fingerprints" (acknowledge those changes, optionally until "expires_in_seconds" from now) or '
        '"approve": true (the current document becomes the baseline). "comment" says why; "by" who (default api).'
    )
    return schema


def _path_parameters(keys: Sequence[TargetKey]) -> list[dict[str, Any]]:
    values = {
        "cloud": sorted({k.cloud for k in keys}),
        "region": sorted({k.region for k in keys}),
        "schema": sorted({k.schema for k in keys}),
    }
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": enum},
            "description": f"a configured {name}; together they must name a configured target",
        }
        for name, enum in values.items()
    ]


def _target_paths(keys: Sequence[TargetKey]) -> dict[str, Any]:
    base = "/api/targets/{cloud}/{region}/{schema}"
    unknown = {"404": "no such configured target, or a snapshot not of this target"}
    diff_ok = _json_response(
        "json: the report (a list of {title, changes}); jsonpatch: RFC 6902 operations; text/markdown: the body",
        {"anyOf": [_ref("DiffReport"), _ref("JsonPatch"), _ref("RenderedReport")]},
    )
    return {
        f"{base}/snapshots": {
            "parameters": _path_parameters(keys),
            "get": _operation(
                "A target's snapshots, oldest first",
                _json_response("the snapshots", _ref("SnapshotList")),
                {"400": "a query parameter was given", **unknown, "503": _DB_DOWN},
                operation_id="listSnapshots",
            ),
        },
        f"{base}/diff": {
            "parameters": _path_parameters(keys),
            "get": _operation(
                "The changes between two snapshots (default: the last two)",
                diff_ok,
                {"400": "invalid parameter", **unknown, "409": "fewer than two snapshots", "503": _DB_DOWN},
                operation_id="diffSnapshots",
                parameters=[
                    _query_parameter("from", _ID, "snapshot id (default: the one before `to`)"),
                    _query_parameter("to", _ID, "snapshot id (default: the latest)"),
                    _query_parameter(
                        "format", {"type": "string", "enum": list(FORMATS), "default": "json"}, "report format"
                    ),
                ],
            ),
        },
        f"{base}/ack": {
            "parameters": _path_parameters(keys),
            "post": _operation(
                "Acknowledge changes by fingerprint, or approve the current document as the baseline",
                _json_response("stored; the drift gauges follow within moments", _ref("AckResult")),
                {
                    "400": "invalid body",
                    "401": "missing or wrong bearer token",
                    "403": "write endpoints are disabled: set api.token",
                    "404": "no such configured target",
                    "409": "approve: the target has no snapshot yet",
                    "413": "the body is over 64 KiB",
                    "503": _DB_DOWN,
                },
                operation_id="acknowledge",
                security=[{"bearerAuth": []}],
                requestBody={"required": True, "content": {JSON_TYPE: {"schema": _ref("AckRequest")}}},
            ),
        },
    }


def _collection_paths(keys: Sequence[TargetKey]) -> dict[str, Any]:
    clouds, regions, schemas = (sorted({getattr(k, part) for k in keys}) for part in ("cloud", "region", "schema"))
    references = [MAJORITY, *regions, *sorted({f"{k.cloud}/{k.region}" for k in keys})]
    return {
        "/api/changes": {
            "get": _operation(
                "Stored changes, newest first; follow `next` for older ones",
                _json_response("one page of changes", _ref("ChangePage")),
                {"400": "invalid parameter", "503": _DB_DOWN},
                operation_id="listChanges",
                parameters=[
                    _query_parameter("cloud", {"type": "string", "enum": clouds}, "only this cloud"),
                    _query_parameter("region", {"type": "string", "enum": regions}, "only this region"),
                    _query_parameter("schema", {"type": "string", "enum": schemas}, "only this schema"),
                    _query_parameter("severity", _SEVERITY, "this severity or worse"),
                    _query_parameter("since", _DATE_TIME, "detected at or after this time (RFC 3339)"),
                    _query_parameter(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                        "page size",
                    ),
                    _query_parameter("before_id", _ID, "only changes older than this change id (the `next` link)"),
                ],
            )
        },
        "/api/compare": {
            "get": _operation(
                "Regions grouped by the document they serve, each deviating region's changes, rollouts in progress",
                _json_response("the comparison", _ref("CompareResult")),
                {
                    "400": "a required parameter is missing, or a parameter is not a configured name",
                    "404": "the cloud does not watch the schema, or the reference is not a compared region",
                    "409": "no compared region (or not the reference) has a document yet",
                    "503": _DB_DOWN,
                },
                operation_id="compareRegions",
                parameters=[
                    _query_parameter("cloud", {"type": "string", "enum": clouds}, "the cloud", required=True),
                    _query_parameter("schema", {"type": "string", "enum": schemas}, "the schema", required=True),
                    _query_parameter(
                        "reference",
                        {"type": "string", "enum": references},
                        "majority, or a region (cloud/region when comparing clouds); "
                        "default: the cloud's configured reference",
                    ),
                    _query_parameter(
                        "other_cloud",
                        {"type": "string", "enum": clouds},
                        "compare the regions of both clouds; labels become cloud/region",
                    ),
                ],
            )
        },
        "/api/documents/{sha256}": {
            "get": _operation(
                "A stored canonical document, byte for byte as stored (its SHA-256 is the path)",
                _json_response("the document", {"type": "object"}),
                {
                    "400": "not 64 hexadecimal digits, or a query parameter was given",
                    "404": "no such document",
                    "503": _DB_DOWN,
                },
                operation_id="getDocument",
                parameters=[
                    {
                        "name": "sha256",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": SHA256_PATTERN},
                    }
                ],
            )
        },
    }


def openapi_document(keys: Sequence[TargetKey]) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of the API for the configured targets ``keys`` (their labels are enums)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "schema-drift-monitor read API",
            "version": __version__,
            "description": "Read-only JSON API on the daemon's HTTP port. Every response is application/json; "
            'errors are {"error": message}. Writes (acknowledge) need `Authorization: Bearer <api.token>` and '
            "are disabled (403) without a configured token.",
        },
        "paths": {
            "/api/openapi.json": {
                "get": _operation(
                    "This document",
                    _json_response("the OpenAPI document", {"type": "object"}),
                    {},
                    operation_id="getOpenApi",
                )
            },
            "/api/targets": {
                "get": _operation(
                    "Every configured target with its current state",
                    _json_response("the targets, in config order", _ref("TargetList")),
                    {"400": "a query parameter was given", "503": _DB_DOWN},
                    operation_id="listTargets",
                )
            },
            **_target_paths(keys),
            **_collection_paths(keys),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
