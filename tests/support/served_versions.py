"""Version documents as real services serve them, body and headers, for the upgrade test of migration 0007.

:data:`SERVED` lists one target per way a response's headers relate to its body: none (nova, keystone,
ironic 21.4.4's root), only the served microversion (nova ``GET /v2.1``, placement, cinder), a range that
restates the body (ironic ``GET /v1/``, and its root as later ironic releases answer it), a range that is the
only range (older ironic's bare version) and a range that disagrees with the body. ``serve`` puts them on a
:class:`~tests.support.surface.SurfaceSimulator` (service name = target name) and ``config_data`` is the config of
a monitor polling them all in one region.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.surface import Document, SurfaceSimulator

REAL = Path(__file__).resolve().parent.parent / "data" / "openstack_surface"
CLOUD, REGION = "os", "r1"

IRONIC_RESTATED = {  # what ironic sends with every /v1 response: its own range, and the version served
    "X-OpenStack-Ironic-API-Minimum-Version": "1.1",
    "X-OpenStack-Ironic-API-Maximum-Version": "1.82",
    "X-OpenStack-Ironic-API-Version": "1.1",
    "Content-Type": "application/json",
}


@dataclass(frozen=True)
class Served:
    """One target: the real document ``source`` (``<folder>/<name>``), its real headers unless ``headers``."""

    name: str
    service: str
    source: str
    headers: Mapping[str, str] | None = None
    bare: bool = False  # served without its ``version`` member: older ironic, the range only in the headers

    def document(self) -> Document:
        recorded = json.loads((REAL / f"{self.source}.headers.json").read_text(encoding="utf-8"))
        body = json.loads((REAL / f"{self.source}.json").read_text(encoding="utf-8"))
        if self.bare:
            del body["version"]
        headers = self.headers if self.headers is not None else _joined(recorded["headers"])
        return Document(int(recorded["status"]), dict(headers), body)


def _joined(headers: Mapping[str, Any]) -> dict[str, str]:
    """Recorded headers as sent: a repeated header joined with ', ' (``Vary`` of nova)."""
    return {name: ", ".join(value) if isinstance(value, list) else value for name, value in headers.items()}


SERVED: tuple[Served, ...] = (
    Served("baremetal-root", "baremetal", "ironic-21.4.4/root"),
    Served("baremetal-root-restated", "baremetal", "ironic-21.4.4/root", headers=IRONIC_RESTATED),
    Served("baremetal-v1", "baremetal", "ironic-21.4.4/v1"),
    Served("baremetal-v1-latest", "baremetal", "ironic-21.4.4/v1-latest"),
    Served("baremetal-bare", "baremetal", "ironic-21.4.4/v1", bare=True),
    Served("baremetal-v1-disagreeing", "baremetal", "ironic-21.4.4/v1",
           headers={**IRONIC_RESTATED, "X-OpenStack-Ironic-API-Maximum-Version": "1.80"}),
    Served("compute-root", "compute", "nova-27.5.1/root"),
    Served("compute-v2.1", "compute", "nova-27.5.1/v2.1"),
    Served("compute-v2.1-latest", "compute", "nova-27.5.1/v2.1-latest"),
    Served("placement-root", "placement", "placement-5.0.1/root"),
    Served("placement-root-latest", "placement", "placement-5.0.1/root-latest"),
    Served("block-storage-root", "block-storage", "cinder-22.3.0/root"),
    Served("identity-root", "identity", "keystone-23.0.2/root"),
    Served("shared-file-system-root", "shared-file-system", "manila-16.3.0/root"),
)  # fmt: skip


def serve(simulator: SurfaceSimulator) -> None:
    """Every target of :data:`SERVED` at ``/<region>/<name>/`` on ``simulator``."""
    for served in SERVED:
        simulator.serve(REGION, served.name, served.document())


def config_data(simulator: SurfaceSimulator, db_url: str) -> dict[str, Any]:
    """A monitor polling every target of :data:`SERVED` once a minute, reading each document once."""
    schemas = [{"name": s.name, "path": f"/{s.name}/", "kind": "versions", "service": s.service} for s in SERVED]
    return {
        "database": {"url": db_url},
        "http": {"listen": "127.0.0.1:0"},
        "defaults": {"interval": "60s", "timeout": "3s", "jitter": "0s", "retries": 0, "confirm_reads": 1},
        "clouds": [{"name": CLOUD, "endpoint": f"{simulator.base_url}/{{region}}", "regions": [REGION],
                    "schemas": schemas, "auth": {"type": "none"}, "allow_http": True}],
    }  # fmt: skip
