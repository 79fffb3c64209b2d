"""The benchmark's fleet: N targets = N/4 regions x the four Glance/IMS schemas, served by nginx.

``fleet_config`` is the monitor configuration every fleet measurement uses (one cloud, ``auth: none``,
plain http to loopback, no retries, no jitter, the default ``confirm_reads``), so the in-process rounds
and the daemon soak measure the same work.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SCHEMAS = ("images", "image", "members", "member")
CLOUD = "bench"


def documents_dir() -> Path:
    """The folder of the real-shaped documents nginx serves (``monitor/demo/documents/<schema>.json``)."""
    return ROOT / "monitor" / "demo" / "documents"


def copy_documents(into: Path) -> Path:
    """Copy the four documents into ``into`` (so a run may change one without touching the package)."""
    into.mkdir(parents=True, exist_ok=True)
    for schema in SCHEMAS:
        shutil.copyfile(documents_dir() / f"{schema}.json", into / f"{schema}.json")
    return into


def regions_for(targets: int) -> list[str]:
    """Region names for at least ``targets`` targets: ``r0000`` … (four targets per region)."""
    count = max(1, math.ceil(targets / len(SCHEMAS)))
    return [f"r{i:04d}" for i in range(count)]


def fleet_urls(base_url: str, regions: list[str]) -> list[str]:
    """Every target's URL, in the order the config lists the targets."""
    return [f"{base_url}/{region}/v2/schemas/{schema}" for region in regions for schema in SCHEMAS]


def fleet_config(
    base_url: str, database_url: str, regions: list[str], concurrency: int, **defaults: Any
) -> dict[str, Any]:
    """Config data for the fleet; ``defaults`` override or add poll defaults (e.g. ``interval``)."""
    return {
        "database": {"url": database_url},
        "http": {"listen": "127.0.0.1:0"},
        "polling": {"max_concurrency": concurrency},
        "defaults": {"retries": 0, "jitter": "0s", "confirm_reads": 2, "timeout": "30s", **defaults},
        "clouds": [
            {
                "name": CLOUD,
                "endpoint": base_url + "/{region}",
                "regions": regions,
                "schemas": list(SCHEMAS),
                "auth": {"type": "none"},
                "allow_http": True,
            }
        ],
    }
