"""Benchmark: one poll round over 1,000 targets against the simulator, as ratios to a baseline.

A second scenario only: the in-process Python simulator is the bottleneck of both sides here, so the
ratios say little. The headline benchmark is ``bench/bench_fleet.py`` (nginx as the server).

Baseline (same run, same machine): fetching the same 1,000 URLs with a bare httpx client and no
processing. Reported: the monitor's first round (every target's first snapshot: parse, hash, insert) and
a steady-state round (unchanged documents), as wall time and as a ratio to the baseline; plus peak RSS.
Traffic goes only to the loopback simulator; the run is bounded (three rounds of 1,000 requests).

    python bench/bench_round.py [--targets 1000] [--database sqlite:///tmp/bench.db]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.app import build
from monitor.config import parse_config
from tests.support.regions import Simulator

SCHEMAS = ["images", "image", "members", "member"]
TOKEN = "bench-token"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def baseline(urls: list[str], concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, headers={"X-Auth-Token": TOKEN}, timeout=60) as client:
        started = time.perf_counter()
        slots = asyncio.Semaphore(concurrency)

        async def one(url: str) -> None:
            async with slots:
                (await client.get(url)).raise_for_status()

        await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - started


async def monitor_rounds(config_data: dict[str, Any]) -> tuple[float, float, int]:
    parts = build(parse_config(config_data, "bench"))
    try:
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            results = await asyncio.gather(*(parts.service.poll(s) for s in parts.specs))
            timings.append(time.perf_counter() - started)
            failed = sum(1 for r in results if not r.ok)
        return timings[0], timings[1], failed
    finally:
        await parts.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--database", default=None, help="default: a new SQLite file in a temp dir")
    args = parser.parse_args()
    regions = [f"r{i:04d}" for i in range(max(1, args.targets // len(SCHEMAS)))]
    with tempfile.TemporaryDirectory() as tmp, Simulator(regions, token=TOKEN) as sim:
        database = args.database or f"sqlite:///{tmp}/bench.db"
        urls = [sim.endpoint_template().replace("{region}", r) + f"/v2/schemas/{s}" for r in regions for s in SCHEMAS]
        rss_before = rss_mib()
        base = asyncio.run(baseline(urls, args.concurrency))
        data = {
            "database": {"url": database},
            "defaults": {"timeout": "60s", "retries": 0},
            "polling": {"max_concurrency": args.concurrency},
            "clouds": [
                {"name": "bench", "endpoint": sim.endpoint_template(), "regions": regions, "schemas": SCHEMAS,
                 "auth": {"type": "token", "token": TOKEN}, "allow_http": True}
            ],
        }  # fmt: skip
        first, steady, failed = asyncio.run(monitor_rounds(data))
    print(f"targets: {len(urls)}  concurrency: {args.concurrency}  database: {database.split(':')[0]}")
    print(f"baseline  bare httpx fetch of every target: {base:7.2f} s   1.00x")
    print(f"monitor   first round (first snapshots):    {first:7.2f} s  {first / base:5.2f}x")
    print(f"monitor   steady round (unchanged):         {steady:7.2f} s  {steady / base:5.2f}x")
    print(f"failed polls: {failed}   peak RSS: {rss_mib():.0f} MiB (before: {rss_before:.0f} MiB)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
