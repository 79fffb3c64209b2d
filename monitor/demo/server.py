"""The demo's simulated Huawei IMS / OpenStack Glance regions: one loopback HTTP server plays them all.

``GET /<region>/v2/schemas/<schema>`` answers with that region's copy of the ``images``, ``image``,
``members`` or ``member`` schema (initially the documents in ``documents/``), as IMS sends them: 4-space
indented JSON, gzip-compressed when the client accepts gzip. An unknown region or schema answers 404
with an IMS error body; when a token is configured, a missing or wrong ``X-Auth-Token`` answers 401.
:meth:`RegionServer.mutate` applies the demo's breaking change to a region's ``images`` schema.

The test simulator with faults and a control API (``tests/sim/regions.py``) extends
:class:`RegionServer` and :class:`RegionHandler`; the hooks it uses are :meth:`RegionServer.admitted`
and :meth:`RegionHandler.serve_admitted`.

Standard library only.
"""

from __future__ import annotations

import copy
import functools
import gzip
import hmac
import json
import re
import ssl
import threading
from collections.abc import Mapping, Sequence
from email.message import Message
from importlib import resources
from typing import Any, Final, TypedDict, cast
from urllib.parse import urlsplit

from monitor.demo.loopback import LoopbackHandler, LoopbackServer, TrackingServer

SCHEMAS: Final = ("images", "image", "members", "member")
"""The schema names served under ``/<region>/v2/schemas/``."""

JSON_TYPE: Final = "application/json; charset=UTF-8"

_REGION_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class UnknownRegionError(KeyError):
    """The region is not one the server was created with."""


class ServerOptions(TypedDict, total=False):
    """:class:`RegionServer`'s arguments besides the regions, for a subclass's ``**options``."""

    token: str | None
    host: str
    port: int
    tls: ssl.SSLContext | None


# --------------------------------------------------------------------------------------------------
# Documents


def default_document(schema: str) -> dict[str, Any]:
    """A fresh copy of the packaged document for ``schema`` (one of :data:`SCHEMAS`).

    Raises ValueError for an unknown schema name.
    """
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}; expected one of {', '.join(SCHEMAS)}")
    return copy.deepcopy(_packaged_document(schema))


@functools.cache
def _packaged_document(schema: str) -> dict[str, Any]:
    path = resources.files("monitor.demo").joinpath("documents", f"{schema}.json")
    return cast(dict[str, Any], json.loads(path.read_text(encoding="utf-8")))


def mutate_breaking(document: dict[str, Any]) -> dict[str, Any]:
    """Return a changed copy of an ``images`` document: the demo's breaking change.

    Removes property ``min_disk`` from ``properties.images.items.properties`` and appends ``"vhdx"`` to
    the ``disk_format`` enum (once). The argument is not modified. Raises KeyError or TypeError when the
    document does not have the ``images`` schema's structure.
    """
    changed = copy.deepcopy(document)
    image_properties = changed["properties"]["images"]["items"]["properties"]
    image_properties.pop("min_disk", None)
    disk_formats = image_properties["disk_format"]["enum"]
    if "vhdx" not in disk_formats:
        disk_formats.append("vhdx")
    return changed


def encode_document(document: Mapping[str, Any]) -> bytes:
    """The document as IMS sends it: 4-space indented UTF-8 JSON."""
    return json.dumps(document, indent=4, ensure_ascii=False).encode("utf-8")


def ims_error(message: str, code: str = "IMG.0001") -> bytes:
    """An error body in the IMS style: ``{"error": {"message": ..., "code": ...}}``."""
    return json.dumps({"error": {"message": message, "code": code}}).encode("utf-8")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header value admits gzip with a non-zero q-value."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            return _qvalue(params) > 0
    return False


def _qvalue(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


# --------------------------------------------------------------------------------------------------
# Server


class RegionServer(LoopbackServer):
    """IMS/Glance schema endpoints of several regions on loopback; see the module docstring.

    Thread-safe: :meth:`mutate` may be called while requests are served. The lifecycle (:meth:`start`,
    :meth:`stop`, use as a context manager, :attr:`base_url`) is :class:`LoopbackServer`'s; ``port=0``
    picks a free port.
    """

    thread_name = "ims-regions"
    queue_size = 256  # many pollers connect at once (bench: 100 concurrent connections)
    server_label = "region server"

    def __init__(
        self,
        regions: Sequence[str],
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Raises ValueError for no regions, a duplicate, or a name unusable as a path segment."""
        if isinstance(regions, str) or not regions:
            raise ValueError("regions must be a non-empty sequence of names")
        for name in regions:
            if not _REGION_RE.match(name):
                raise ValueError(f"invalid region name {name!r}")
        if len(set(regions)) != len(regions):
            raise ValueError("duplicate region names")
        super().__init__(host, port, tls=tls)
        self._token = token
        self._lock = threading.Lock()
        """Guards :attr:`_documents` (and a subclass's own per-region state)."""
        self._documents = {name: {s: default_document(s) for s in SCHEMAS} for name in regions}
        """region -> schema -> document; a document is replaced wholesale, never changed in place."""

    def endpoint_template(self) -> str:
        """The config's endpoint with a ``{region}`` placeholder: ``<base_url>/{region}``."""
        return f"{self.base_url}/{{region}}"

    @property
    def regions(self) -> tuple[str, ...]:
        """The region names, in the order given."""
        return tuple(self._documents)

    def mutate(self, region: str) -> None:
        """Apply :func:`mutate_breaking` to the region's ``images`` document. Raises UnknownRegionError."""
        documents = self._region_documents(region)
        with self._lock:
            documents["images"] = mutate_breaking(documents["images"])

    def admitted(self, region: str, method: str, target: str, headers: Message) -> bool:
        """Whether a request for a known region and schema may be served (False answers 401).

        ``target`` is the request target as received. Here: True without a token, else whether
        ``X-Auth-Token`` is the token. Called from handler threads.
        """
        if self._token is None:
            return True
        presented = headers.get("X-Auth-Token")
        return presented is not None and hmac.compare_digest(presented.encode(), self._token.encode())

    def _region_documents(self, region: str) -> dict[str, dict[str, Any]]:
        try:
            return self._documents[region]
        except KeyError:
            raise UnknownRegionError(region) from None

    def _knows(self, region: str, schema: str) -> bool:
        return region in self._documents and schema in SCHEMAS

    def _served(self, region: str, schema: str) -> Mapping[str, Any]:
        """The document currently served (shared, not a copy: documents are replaced, never changed)."""
        with self._lock:
            return self._documents[region][schema]


# --------------------------------------------------------------------------------------------------
# HTTP request handler


class RegionHandler(LoopbackHandler):
    """Serves the schema routes; anything else is a 404 with an IMS error body."""

    server_version = "IMS-Simulator/1.0"

    @property
    def region_server(self) -> RegionServer:
        return cast(TrackingServer[RegionServer], self.server).owner

    def segments(self) -> list[str]:
        """The non-empty segments of the request path."""
        return [part for part in urlsplit(self.path).path.split("/") if part]

    def do_GET(self) -> None:
        match self.segments():
            case [region, "v2", "schemas", schema]:
                self.serve_schema(region, schema)
            case _:
                self.send_ims_error(404, "Resource not found")

    def serve_schema(self, region: str, schema: str) -> None:
        """404 for an unknown region or schema, 401 unless :meth:`RegionServer.admitted`, else
        :meth:`serve_admitted`."""
        server = self.region_server
        if not server._knows(region, schema):
            self.send_ims_error(404, f"Schema {schema!r} of region {region!r} not found")
        elif not server.admitted(region, self.command, self.path, self.headers):
            self.send_ims_error(401, "Authentication required", code="APIGW.0301")
        else:
            self.serve_admitted(region, schema)

    def serve_admitted(self, region: str, schema: str) -> None:
        """Answer an admitted schema request: the region's current document."""
        self.send_json_document(encode_document(self.region_server._served(region, schema)))

    # -- response helpers --------------------------------------------------------------------------

    def send_json_document(self, body: bytes) -> None:
        """A 200 JSON response, gzip-compressed when the client accepts gzip."""
        headers = {"Vary": "Accept-Encoding"}
        if accepts_gzip(self.headers.get("Accept-Encoding")):
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self.send_body(200, body, headers=headers)

    def send_head(self, status: int, headers: Mapping[str, str]) -> None:
        """Status line and headers; the caller writes the body."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def send_body(
        self, status: int, body: bytes, content_type: str = JSON_TYPE, headers: Mapping[str, str] | None = None
    ) -> None:
        """A complete response with Content-Type and Content-Length."""
        head = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
        self.send_head(status, head)
        self.wfile.write(body)

    def send_ims_error(
        self, status: int, message: str, code: str = "IMG.0001", headers: Mapping[str, str] | None = None
    ) -> None:
        """An IMS-style JSON error (no body for statuses that forbid one)."""
        if status < 200 or status in (204, 304):
            self.send_head(status, dict(headers or {}))
            return
        self.send_body(status, ims_error(message, code), headers=headers)


RegionServer.handler_class = RegionHandler
