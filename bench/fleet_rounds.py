"""One fleet measurement, in this process: the bare-httpx baseline, then the monitor's rounds.

:func:`measure` fetches every target with a bare ``httpx.AsyncClient`` (a cold round on a new client,
then warm rounds on the same one), then drives the monitor through the entry points ``check`` uses —
``parse_config``, ``monitor.app.start`` and ``service.poll`` for every target, gathered — for a first
round (empty database), steady rounds (nothing changed, warm pool), and a restart followed by one more
round (a cold pool on the filled database: what a second ``check`` does). It returns a
:class:`FleetResult`; a round that does not finish within its timeout ends the measurement with
``error`` set instead of hanging. The caller runs it in a fresh process per measurement, so memory and
the interpreter's state do not carry over from one fleet size to the next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.fleet import fleet_config, fleet_urls, regions_for
from bench.measure import database_bytes, peak_rss_mib, rss_mib
from monitor.app import Components, build_api, start
from monitor.config import parse_config
from monitor.store.engine import is_sqlite, make_engine, upgrade
from monitor.web.app import create_app


@dataclass(frozen=True)
class Settings:
    """What to measure: ``targets`` polls per round at ``concurrency``, ``rounds`` warm/steady rounds."""

    base_url: str
    database_url: str
    targets: int
    concurrency: int = 100
    rounds: int = 2
    round_timeout: float = 600.0


@dataclass
class FleetResult:
    """Wall seconds, CPU seconds (this process, every thread), bytes and MiB of one measurement."""

    targets: int
    baseline_cold_s: float = 0.0
    baseline_warm_s: float = 0.0
    baseline_warm_cpu_s: float = 0.0
    startup_s: float = 0.0
    first_s: float = 0.0
    first_cpu_s: float = 0.0
    steady_s: float = 0.0
    steady_cpu_s: float = 0.0
    restart_s: float = 0.0
    restart_round_s: float = 0.0
    unchanged_polls: int = 0
    db_bytes_first: int = 0
    db_bytes_growth: int = 0
    rss_baseline_mib: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    metrics_s: float = 0.0
    metrics_bytes: int = 0
    metrics_series: int = 0
    read_targets_s: float = 0.0
    failed: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class MeasurementError(Exception):
    """A measurement could not be completed (its message says why)."""


class RoundTimeoutError(MeasurementError):
    """A round did not finish within its timeout."""


@dataclass(frozen=True)
class Round:
    """One timed round: wall and CPU seconds, and how many requests or polls failed."""

    wall: float
    cpu: float
    failed: int


async def _timed(name: str, timeout: float, work: Callable[[], Awaitable[int]]) -> Round:
    """Run ``work`` (returns its failure count) under ``timeout``; raises RoundTimeoutError."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        async with asyncio.timeout(timeout):
            failed = await work()
    except TimeoutError:
        raise RoundTimeoutError(f"{name} did not finish within {timeout:g}s") from None
    return Round(time.perf_counter() - wall, time.process_time() - cpu, failed)


# --- the baseline ------------------------------------------------------------------------------


async def _fetch_all(client: httpx.AsyncClient, urls: list[str], concurrency: int) -> int:
    """GET every URL, at most ``concurrency`` in flight, reading each body; returns how many failed."""
    slots = asyncio.Semaphore(concurrency)

    async def one(url: str) -> bool:
        async with slots:
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                return False
            return response.status_code == 200 and bool(response.content)

    return sum(1 for ok in await asyncio.gather(*(one(u) for u in urls)) if not ok)


async def baseline(settings: Settings, urls: list[str]) -> tuple[Round, list[Round]]:
    """A cold round on a new bare client, then ``settings.rounds`` warm rounds on the same client."""
    limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        def fetch() -> Awaitable[int]:
            return _fetch_all(client, urls, settings.concurrency)

        cold = await _timed("baseline cold round", settings.round_timeout, fetch)
        warm = [await _timed("baseline warm round", settings.round_timeout, fetch) for _ in range(settings.rounds)]
    return cold, warm


# --- the monitor -------------------------------------------------------------------------------


async def poll_round(parts: Components, timeout: float, name: str) -> Round:
    """Poll every target once, concurrently, as ``check`` does; a poll that raises counts as failed."""

    async def work() -> int:
        results = await asyncio.gather(*(parts.service.poll(spec) for spec in parts.specs), return_exceptions=True)
        return sum(1 for r in results if isinstance(r, BaseException) or not r.ok)

    return await _timed(name, timeout, work)


def metrics_exposition(parts: Components) -> tuple[float, int, int]:
    """Median seconds of three renderings of ``/metrics`` (what a scrape gets), its bytes and its series count."""
    timings, body = [], b""
    for _ in range(3):
        started = time.perf_counter()
        body = parts.metrics.exposition()
        timings.append(time.perf_counter() - started)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return statistics.median(timings), len(body), series


async def read_targets(parts: Components) -> float:
    """Median seconds of three walks of ``GET /api/targets`` through the daemon's ASGI application (routing, the
    read model, validation and JSON of every target), page after page by the ``next`` links, without the socket
    (one page alone: ``bench/bench_api_targets.py``)."""
    api = build_api(parts, asyncio.get_running_loop())
    app = create_app(parts.metrics, lambda: {"scheduler": True}, api)
    timings = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for _ in range(3):
            started = time.perf_counter()
            seen, path = 0, "/api/targets"
            while path:
                response = await client.get(path)
                if response.status_code != 200:
                    raise MeasurementError(f"GET {path} answered {response.status_code}: {response.text[:200]}")
                seen, path = seen + len(response.json()["targets"]), response.json()["next"]
            timings.append(time.perf_counter() - started)
            if seen != len(parts.specs):
                raise MeasurementError(f"GET /api/targets listed {seen} targets of {len(parts.specs)}")
    return statistics.median(timings)


def prepare_database(url: str) -> None:
    """PostgreSQL must be at the current revision before ``start`` (``db upgrade``); SQLite migrates itself."""
    if is_sqlite(url):
        return
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


async def monitor_rounds(settings: Settings, result: FleetResult) -> None:
    """Start-up, first round, steady rounds, /metrics, then a restart on the filled database; fills ``result``."""
    prepare_database(settings.database_url)
    regions = regions_for(settings.targets)
    config = parse_config(
        fleet_config(settings.base_url, settings.database_url, regions, settings.concurrency), "bench"
    )
    started = time.perf_counter()
    parts = await start(config)
    result.startup_s = time.perf_counter() - started
    try:
        first = await poll_round(parts, settings.round_timeout, "monitor first round")
        result.first_s, result.first_cpu_s, result.failed = first.wall, first.cpu, first.failed
        result.db_bytes_first = database_bytes(settings.database_url)
        steady = [
            await poll_round(parts, settings.round_timeout, "monitor steady round") for _ in range(settings.rounds)
        ]
        result.steady_s = statistics.median(r.wall for r in steady)
        result.steady_cpu_s = statistics.median(r.cpu for r in steady)
        result.failed += sum(r.failed for r in steady)
        result.unchanged_polls = len(parts.specs) * len(steady)
        result.db_bytes_growth = database_bytes(settings.database_url) - result.db_bytes_first
        result.rss_mib = rss_mib()
        result.metrics_s, result.metrics_bytes, result.metrics_series = metrics_exposition(parts)
        result.read_targets_s = await read_targets(parts)
    finally:
        await parts.aclose()
    started = time.perf_counter()
    restarted = await start(config)
    result.restart_s = time.perf_counter() - started
    try:  # what a second ``check`` does: a new process, a cold pool, nothing changed
        again = await poll_round(restarted, settings.round_timeout, "monitor round after the restart")
        result.restart_round_s = again.wall
        result.failed += again.failed
    finally:
        await restarted.aclose()
    result.peak_rss_mib = peak_rss_mib()


async def measure(settings: Settings) -> FleetResult:
    """The whole measurement; a round over its timeout sets ``error`` and ends it early."""
    urls = fleet_urls(settings.base_url, regions_for(settings.targets))
    result = FleetResult(targets=len(urls))
    try:
        cold, warm = await baseline(settings, urls)
        result.baseline_cold_s = cold.wall
        result.baseline_warm_s = statistics.median(r.wall for r in warm)
        result.baseline_warm_cpu_s = statistics.median(r.cpu for r in warm)
        result.failed = cold.failed + sum(r.failed for r in warm)
        if result.failed:
            result.error = f"the bare client failed {result.failed} request(s): is nginx serving?"
            return result
        result.rss_baseline_mib = rss_mib()
        await monitor_rounds(settings, result)
    except MeasurementError as exc:
        result.error = str(exc)
    return result
