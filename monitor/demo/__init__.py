"""``schema-drift-monitor demo``: the real daemon against simulated regions on loopback.

Starts a :class:`~monitor.demo.server.RegionServer` with three simulated regions, writes the config it uses to
``data/demo-config.yaml`` (so ``history --config data/demo-config.yaml`` works in another terminal), runs
the daemon, and after ``change_after`` seconds changes the ``images`` schema of one region.

May import: ``app`` (the daemon it runs), ``config``; the region server is its own (``server``, ``loopback``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, TextIO

import yaml

from monitor.app import StartupError, run_daemon
from monitor.config import parse_config
from monitor.config.webconfig import load_web_config
from monitor.demo.server import RegionServer
from monitor.store.sqlite_path import not_writable

DEMO_REGIONS = ("cn-north-4", "cn-east-3", "ap-southeast-1")
DEMO_TOKEN = "demo-token-not-a-secret"  # the region server's own token; real tokens come from ${ENV} or files
DEMO_CONFIG_PATH = Path("data/demo-config.yaml")
DEMO_DATABASE = "sqlite:///./data/demo.db"

log = logging.getLogger(__name__)


def demo_config(endpoint: str, listen: str, database: str, interval: float) -> dict[str, Any]:
    """The config the demo runs with, as YAML-ready data."""
    return {
        "database": {"url": database},
        "http": {"listen": listen},
        "defaults": {"interval": f"{interval:g}s", "timeout": "3s", "jitter": "1s"},
        "clouds": [
            {
                "name": "huawei-sim",
                "endpoint": endpoint,
                "regions": list(DEMO_REGIONS),
                "schemas": ["images", "image", "members", "member"],
                "auth": {"type": "token", "token": DEMO_TOKEN},
                "allow_http": True,
            }
        ],
    }


async def _demo(regions: RegionServer, data: dict[str, Any], change_after: float, duration: float) -> int:
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(parse_config(data, "demo"), stop))

    async def change_later() -> None:
        await asyncio.sleep(change_after)
        regions.mutate(DEMO_REGIONS[0])
        log.info("demo: changed the images schema of %s (removed min_disk, added vhdx)", DEMO_REGIONS[0])

    async def stop_later() -> None:
        await asyncio.sleep(duration)
        stop.set()

    helpers = [asyncio.create_task(change_later())]
    if duration > 0:
        helpers.append(asyncio.create_task(stop_later()))
    try:
        return await daemon
    finally:
        for task in helpers:
            task.cancel()


def _reset_demo_database() -> None:
    """The demo's own SQLite file starts empty each time, so every run shows first snapshots and one change."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"data/demo.db{suffix}").unlink(missing_ok=True)


def run_demo(
    *, listen: str, database: str, interval: float, change_after: float, duration: float, out: TextIO,
    web_config_file: str | None = None,
) -> int:  # fmt: skip
    """Run the demo until Ctrl-C (or ``duration`` seconds when > 0); returns the exit code.

    ``web_config_file`` guards the port as ``run --web.config.file`` does; a bad one raises ConfigError. Raises
    StartupError when ``database`` is a SQLite file in a directory this process cannot write.
    """
    problem = not_writable(database)
    if problem is not None:  # before the demo writes its config beside it
        raise StartupError(problem)
    scheme = "http"
    if web_config_file is not None:
        scheme = "https" if load_web_config(web_config_file).tls else "http"  # a bad file: refused before start
    if database == DEMO_DATABASE:
        _reset_demo_database()
    with RegionServer(DEMO_REGIONS, token=DEMO_TOKEN) as regions:
        data = demo_config(regions.endpoint_template(), listen, database, interval)
        if web_config_file is not None:
            data["http"]["web_config_file"] = str(Path(web_config_file).absolute())
        DEMO_CONFIG_PATH.parent.mkdir(parents=True, exist_ok=True)
        DEMO_CONFIG_PATH.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        out.write(
            f"demo: simulated regions {', '.join(DEMO_REGIONS)} at {regions.base_url}\n"
            f"demo: metrics at {scheme}://{listen}/metrics; a schema change in {DEMO_REGIONS[0]} after "
            f"{change_after:g}s\n"
            f"demo: the web UI at {scheme}://{listen}/ui/\n"
            f"demo: in another terminal: schema-drift-monitor history --config {DEMO_CONFIG_PATH}\n"
        )
        out.flush()
        return asyncio.run(_demo(regions, data, change_after, duration))


__all__ = ["DEMO_REGIONS", "demo_config", "run_demo"]
