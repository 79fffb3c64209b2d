"""A simulated OpenStack API surface: each region's services answering their version documents, extension lists
and info documents on one loopback server, with the status codes and headers the real services send.

``GET /<region>/<service>/<path>`` answers the document set for that region, service and path (404 otherwise).
The defaults are the real documents in ``tests/data/openstack_surface`` (nova, placement, cinder, ironic,
keystone, neutron, manila) plus a Glance versions document and its ``/v2/info/*`` answers; tests change one
region's document with :meth:`SurfaceSimulator.set_document`. :meth:`catalog` gives each region's endpoint
per official service type, shaped as the real catalogs write them (nova's ``/v2.1``, cinder's
``/v3/<project_id>``), for the identity simulator's ``set_catalog``.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

from monitor.demo.loopback import LoopbackHandler, LoopbackServer, TrackingServer

DATA = Path(__file__).resolve().parent.parent / "data" / "openstack_surface"
PROJECT_ID = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Document:
    status: int
    headers: Mapping[str, str]
    body: Any


def _real(folder: str, name: str) -> Document:
    """A document as the real service served it: its status and the headers that matter (no per-request ones)."""
    recorded = json.loads((DATA / folder / f"{name}.headers.json").read_text())
    headers = {k: v for k, v in recorded.get("headers", {}).items() if isinstance(v, str) and k.lower() != "date"}
    return Document(int(recorded.get("status", 200)), headers, json.loads((DATA / folder / f"{name}.json").read_text()))


GLANCE_VERSIONS = {"versions": [
    {"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": "http://127.0.0.1:9292/v2/"}]},
    {"id": "v2.15", "status": "SUPPORTED", "links": [{"rel": "self", "href": "http://127.0.0.1:9292/v2/"}]},
]}  # fmt: skip
GLANCE_IMPORT = {"import-methods": {"description": "Import methods available.", "type": "array",
                                    "value": ["glance-direct", "web-download", "copy-image"]}}  # fmt: skip
GLANCE_STORES = {"stores": [{"id": "file", "default": True}, {"id": "ceph"}]}

# official service type → (catalog path below the service's root, {path below the root: document})
SERVICES: dict[str, tuple[str, dict[str, Document]]] = {
    "compute": ("/v2.1", {"/": _real("nova-27.5.1", "root")}),
    "placement": ("", {"/": _real("placement-5.0.1", "root")}),
    "block-storage": (f"/v3/{PROJECT_ID}", {
        "/": _real("cinder-22.3.0", "root"),
        f"/v3/{PROJECT_ID}/extensions": Document(200, {"Content-Type": "application/json"}, {"extensions": [
            {"alias": "os-hosts", "name": "Hosts", "description": "Admin-only host administration.",
             "updated": "2011-06-29T00:00:00+00:00", "links": []},
            {"alias": "os-quota-sets", "name": "Quotas", "description": "Quota management support.",
             "updated": "2011-08-08T00:00:00+00:00", "links": []},
        ]}),
    }),
    "baremetal": ("", {"/": _real("ironic-21.4.4", "root")}),
    "identity": ("/v3", {"/": _real("keystone-23.0.2", "root")}),
    "network": ("", {"/": _real("neutron-22.2.1", "root"),
                     "/v2.0/extensions": _real("neutron-22.2.1", "v2.0-extensions")}),
    "shared-file-system": (f"/v2/{PROJECT_ID}", {"/": _real("manila-16.3.0", "root")}),
    "image": ("", {
        "/": Document(300, {"Content-Type": "application/json"}, GLANCE_VERSIONS),
        "/v2/info/import": Document(200, {"Content-Type": "application/json"}, GLANCE_IMPORT),
        "/v2/info/stores": Document(200, {"Content-Type": "application/json"}, GLANCE_STORES),
    }),
}  # fmt: skip


class _Handler(LoopbackHandler):
    server_version = "surface-simulator"

    def do_GET(self) -> None:
        owner = cast(TrackingServer[SurfaceSimulator], self.server).owner
        parts = self.path.split("?", 1)[0].split("/", 3)  # "", region, service, rest
        document = owner.answer(parts[1], parts[2], "/" + parts[3]) if len(parts) == 4 else None
        if document is None:
            body = json.dumps({"error": {"message": "not found", "code": 404}}).encode()
            status, headers = 404, {"Content-Type": "application/json"}
        else:
            body, status, headers = json.dumps(document.body).encode(), document.status, dict(document.headers)
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SurfaceSimulator(LoopbackServer):
    """Every region's services (the documents of :data:`SERVICES`); thread-safe."""

    handler_class: ClassVar[type[LoopbackHandler]] = _Handler
    thread_name = "surface-simulator"
    server_label = "surface simulator"

    def __init__(self, regions: Sequence[str], services: Sequence[str] = tuple(SERVICES)) -> None:
        super().__init__()
        self.regions = tuple(regions)
        self.services = tuple(services)
        self._lock = threading.Lock()
        self._documents = {(r, s, path): doc for r in regions for s in services for path, doc in SERVICES[s][1].items()}

    def answer(self, region: str, service: str, path: str) -> Document | None:
        with self._lock:
            return self._documents.get((region, service, path))

    def document(self, region: str, service: str, path: str = "/") -> Any:
        """A deep copy of the body served at ``path`` below the service's root in ``region``."""
        with self._lock:
            return copy.deepcopy(self._documents[(region, service, path)].body)

    def set_document(self, region: str, service: str, body: Any, path: str = "/") -> None:
        """Serve ``body`` (same status and headers) at ``path`` below the service's root in ``region``."""
        with self._lock:
            old = self._documents[(region, service, path)]
            self._documents[(region, service, path)] = Document(old.status, old.headers, copy.deepcopy(body))

    def serve(self, region: str, service: str, document: Document, path: str = "/") -> None:
        """Serve ``document`` (its status, headers and body) at ``path`` below ``service``'s root in ``region``."""
        with self._lock:
            self._documents[(region, service, path)] = document

    def catalog(self, service: str) -> dict[str, str]:
        """Region → the service's endpoint as a catalog lists it (version and project id included)."""
        return {region: f"{self.base_url}/{region}/{service}{SERVICES[service][0]}" for region in self.regions}
