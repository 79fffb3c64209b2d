"""Consumer contracts against real documents served on loopback: three regions at different levels.

The documents are real releases (``tests/data/openstack_surface``: nova 27.5.1's ``GET /``; the Glance images
schema ``tests/data/diff_cases/seed-glance-train-combined/new.json`` and Huawei IMS's documented one, ``old.json``
there). Where a test needs regions at other levels, the document is derived from the real one by changing only
what a later or earlier release changed: the advertised maximum microversion of nova's v2.1 entry (later nova
releases advertise 2.96, then 2.100: tests/data/openstack_surface/README.md), the status of its v2.0 entry
(later releases say DEPRECATED), or one property of the Glance schema removed.

:class:`Rig` serves them with :class:`~tests.support.surface.SurfaceSimulator` (nova under ``compute``, the
Glance schema at ``/v2/schemas/images`` under ``image``), watched by two clouds — ``openstack`` (the compute
version document) and ``glance`` (the images schema) — and judged for the consumers of :data:`CONSUMERS`.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from monitor.app import Components, build
from monitor.config import Config, parse_config
from monitor.domain import PollResult, TargetKey, TargetSpec, utcnow
from monitor.read.model import ReadModel
from monitor.signals.notify.dispatcher import Dispatcher, build_channels
from tests.support.paths import DATA
from tests.support.receiver import Receiver
from tests.support.surface import Document, SurfaceSimulator

REGIONS = ("r1", "r2", "r3")
GLANCE = json.loads((DATA / "diff_cases" / "seed-glance-train-combined" / "new.json").read_text())
IMS = json.loads((DATA / "diff_cases" / "seed-glance-train-combined" / "old.json").read_text())
HASH_ALGO = "/properties/images/items/properties/os_hash_algo"
CONSUMERS: list[dict[str, Any]] = [
    {"name": "terraform-openstack", "description": "terraform-provider-openstack 3.x, the infra pipelines",
     "clouds": ["openstack"],
     "requires": [{"schema": "compute-versions", "version": "v2.1", "microversion": "2.96"},
                  {"schema": "compute-versions", "version": "v2.1", "status": ["CURRENT", "SUPPORTED"]}]},
    {"name": "openstacksdk-downloads", "description": "image downloads verified by os_hash_algo",
     "requires": [{"schema": "images", "pointer": HASH_ALGO},
                  {"schema": "images", "pointer": "/properties/images/items/properties/disk_format/enum",
                   "contains": ["qcow2", "raw"]}]},
    {"name": "legacy-v2", "description": "a client still on the v2.0 API",
     "requires": [{"schema": "compute-versions", "version": "v2.0", "status": "SUPPORTED"}]},
]  # fmt: skip


def nova(maximum: str = "2.95", v20_status: str = "SUPPORTED") -> dict[str, Any]:
    """nova 27.5.1's ``GET /`` with only the v2.1 maximum and the v2.0 status changed (see the module)."""
    document: dict[str, Any] = json.loads((DATA / "openstack_surface" / "nova-27.5.1" / "root.json").read_text())
    for entry in document["versions"]:
        if entry["id"] == "v2.1":
            entry["version"] = maximum
        if entry["id"] == "v2.0":
            entry["status"] = v20_status
    return document


def glance_without(pointer: str) -> dict[str, Any]:
    """The real Glance images schema without the property at ``pointer`` (``/properties/.../<name>``)."""
    document: dict[str, Any] = copy.deepcopy(GLANCE)
    *parents, name = pointer.strip("/").split("/")
    node = document
    for token in parents:
        node = node[token]
    del node[name]
    return document


def config_data(surface: SurfaceSimulator, db_url: str, **extra: Any) -> dict[str, Any]:
    """Two clouds over the simulator's regions, the consumers of :data:`CONSUMERS`, and ``extra`` sections."""
    base = surface.base_url
    return {
        "database": {"url": db_url},
        "http": {"listen": "127.0.0.1:0"},
        "defaults": {"interval": "60s", "timeout": "3s", "jitter": "0s", "retries": 0, "confirm_reads": 1},
        "clouds": [
            {"name": "openstack", "endpoint": f"{base}/{{region}}/compute", "regions": list(REGIONS),
             "allow_http": True, "schemas": [{"name": "compute-versions", "kind": "versions", "path": "/"}]},
            {"name": "glance", "endpoint": f"{base}/{{region}}/image", "regions": list(REGIONS), "allow_http": True,
             "schemas": ["images"]},
        ],
        "consumers": copy.deepcopy(CONSUMERS),
        **extra,
    }  # fmt: skip


@contextmanager
def surface_at(maxima: tuple[str, str, str] = ("2.95", "2.96", "2.100"),
               images: tuple[Any, Any, Any] = (GLANCE, GLANCE, IMS)) -> Iterator[SurfaceSimulator]:  # fmt: skip
    """The simulator with each region's nova maximum and images schema."""
    with SurfaceSimulator(REGIONS, services=("compute",)) as surface:
        for region, maximum, schema in zip(REGIONS, maxima, images, strict=True):
            surface.set_document(region, "compute", nova(maximum))
            serve_images(surface, region, schema)
        yield surface


def serve_images(surface: SurfaceSimulator, region: str, schema: Any) -> None:
    surface.serve(region, "image", Document(200, {"Content-Type": "application/json"}, schema), "/v2/schemas/images")


class Rig:
    """The monitor's pipeline in this process (real fetcher, real database) over a surface simulator, with a
    webhook receiver as its only notification channel (``min_severity: breaking``)."""

    def __init__(self, surface: SurfaceSimulator, db_url: str, receiver: Receiver | None = None) -> None:
        self.surface = surface
        notifications: dict[str, Any] = {}
        if receiver is not None:
            channel = {"name": "hook", "type": "webhook", "url": receiver.url, "min_severity": "breaking"}
            notifications = {"grouping_window": "0s", "channels": [channel]}
        self.config: Config = parse_config(config_data(surface, db_url, notifications=notifications), "test")
        self.parts: Components = build(self.config)
        self.loop = asyncio.new_event_loop()
        settings = self.config.notification_settings()
        self.dispatcher = Dispatcher(settings, self.parts.database.outbox, self.parts.metrics, build_channels(settings))

    @property
    def specs(self) -> dict[TargetKey, TargetSpec]:
        return {spec.key: spec for spec in self.parts.specs}

    def poll(self, *keys: TargetKey) -> list[PollResult]:
        """Poll ``keys`` (default: every target) once each, in order."""
        chosen = keys or tuple(self.specs)
        return [self.loop.run_until_complete(self.parts.service.poll(self.specs[key])) for key in chosen]

    def refresh(self, now: datetime) -> None:
        self.parts.intelligence.refresh(now)

    def notify(self) -> None:
        """One round of the notification loop (grouping window 0: whatever is recorded is sent)."""
        self.loop.run_until_complete(self.dispatcher.tick(utcnow() + timedelta(seconds=1)))

    def read(self) -> ReadModel:
        return ReadModel(self.config, self.parts.database)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.parts.metrics.registry.get_sample_value(name, labels)

    def close(self) -> None:
        self.loop.run_until_complete(self.dispatcher.aclose())
        self.loop.run_until_complete(self.parts.aclose())
        self.loop.close()


def compute(region: str) -> TargetKey:
    return TargetKey("openstack", region, "compute-versions")


def images(region: str) -> TargetKey:
    return TargetKey("glance", region, "images")
