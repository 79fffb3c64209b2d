"""Experiments: what makes httpcore's connection pool expensive — one change to a bare client at a time.

Each variant fetches the same N targets from nginx with at most C requests in flight, in a fresh
process: one cold round, then ``--rounds`` warm rounds (median wall and CPU time reported), then one
more round with the pool instrumented, which counts per request: passes of
``_assign_requests_to_connections``, ``ConnectionNotAvailable`` retries (a request handed a connection
another request took first), ``has_expired`` checks of idle connections (each is a ``getpeername`` and a
``poll`` syscall through anyio), ``is_idle`` calls, failed ``import sniffio`` (httpcore imports it on every
lock and cancel-shield set-up; anyio 4.16 no longer installs it), and the pool's size and idle count as
each pass saw them. The instrumented round is not timed.

    .venv/bin/python bench/pool_experiments.py [--targets 1000] [--variants bare,stream,...]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a fresh clone

import httpcore
import httpx
from httpcore._async.connection import AsyncHTTPConnection
from httpcore._async.http11 import AsyncHTTP11Connection

from bench.fleet import copy_documents, fleet_config, fleet_urls, regions_for
from bench.nginx import Nginx

ROOT = Path(__file__).resolve().parent.parent
Fetch = Callable[[str], Awaitable[bool]]
COUNTS: collections.Counter[str] = collections.Counter()
MONITOR_HEADERS = {"User-Agent": "schema-drift-monitor/0.1.0", "Accept": "application/json"}


# --- instrumentation (only for the counting round) ------------------------------------------------


@contextmanager
def counting() -> Iterator[None]:
    """Wrap the pool's hot methods with counters for the duration of the block."""
    pool = httpcore.AsyncConnectionPool
    sync = httpcore._synchronization
    assign, handle = pool._assign_requests_to_connections, AsyncHTTP11Connection.handle_async_request
    expired, idle, library = AsyncHTTP11Connection.has_expired, AsyncHTTPConnection.is_idle, sync.current_async_library

    def assign_counted(self: Any) -> Any:
        COUNTS["assign passes"] += 1
        COUNTS["pool size seen"] += len(self._connections)
        COUNTS["idle seen"] += sum(1 for c in self._connections if c.is_idle())
        COUNTS["queued seen"] += sum(1 for r in self._requests if r.is_queued())
        return assign(self)

    async def handle_counted(self: Any, request: Any) -> Any:
        try:
            return await handle(self, request)
        except httpcore.ConnectionNotAvailable:
            COUNTS["ConnectionNotAvailable"] += 1
            raise

    def expired_counted(self: Any) -> bool:
        if self.is_idle():
            COUNTS["has_expired on idle (getpeername)"] += 1
        return bool(expired(self))

    def idle_counted(self: Any) -> bool:
        COUNTS["is_idle"] += 1
        return bool(idle(self))

    def library_counted() -> str:
        if "sniffio" not in sys.modules:
            COUNTS["failed import sniffio"] += 1
        return str(library())

    pool._assign_requests_to_connections = assign_counted  # type: ignore[method-assign]
    AsyncHTTP11Connection.handle_async_request = handle_counted  # type: ignore[method-assign]
    AsyncHTTP11Connection.has_expired = expired_counted  # type: ignore[method-assign]
    AsyncHTTPConnection.is_idle = idle_counted  # type: ignore[method-assign]
    sync.current_async_library = library_counted
    try:
        yield
    finally:
        pool._assign_requests_to_connections = assign  # type: ignore[method-assign]
        AsyncHTTP11Connection.handle_async_request = handle  # type: ignore[method-assign]
        AsyncHTTP11Connection.has_expired = expired  # type: ignore[method-assign]
        AsyncHTTPConnection.is_idle = idle  # type: ignore[method-assign]
        sync.current_async_library = library


# --- the variants: each returns a per-URL fetch, set up on ``stack`` --------------------------------


def cpu_work(body: bytes) -> str:
    """About what the monitor's digest does with a body: parse, canonicalise, hash."""
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def client(stack: AsyncExitStack, pool: int, **kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("max_keepalive_connections", pool)
    limits = httpx.Limits(max_connections=pool, **kwargs)
    return await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=30))


async def v_bare(stack: AsyncExitStack, c: int, **kw: Any) -> Fetch:
    """``client.get`` (the benchmark's baseline)."""
    http = await client(stack, c, **kw)

    async def fetch(url: str) -> bool:
        return (await http.get(url)).status_code == 200

    return fetch


async def v_workers(stack: AsyncExitStack, c: int) -> Fetch:
    """C clients of one connection each, handed out through a queue: no request ever waits in a pool."""
    free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    for _ in range(c):
        free.put_nowait(await client(stack, 1))

    async def fetch(url: str) -> bool:
        http = await free.get()
        try:
            return (await http.get(url)).status_code == 200
        finally:
            free.put_nowait(http)

    return fetch


async def v_stream(stack: AsyncExitStack, c: int, *, timeout: bool = False, headers: bool = False) -> Fetch:
    """As monitor/poll/fetch.py did on httpcore: build_request, send(stream=True), aiter_raw, aclose; optional
    extras."""
    http = await client(stack, c)
    extra = {**MONITOR_HEADERS, "Accept-Encoding": "gzip, deflate"} if headers else {}

    async def fetch(url: str) -> bool:
        request = http.build_request("GET", url, headers=extra, timeout=httpx.Timeout(30) if timeout else None)
        response = await http.send(request, stream=True)
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        return response.status_code == 200 and bool(body)

    return fetch


async def v_fetcher(stack: AsyncExitStack, c: int) -> Fetch:
    """monitor.poll.fetch.Fetcher.fetch itself, on the bench fleet's target specs."""
    from monitor.config import parse_config
    from monitor.poll.fetch import Fetcher

    config = parse_config(fleet_config(FLEET["base_url"], "sqlite://", regions_for(len(FLEET["urls"])), c), "x")
    specs = {s.url: s for s in config.targets()}
    fetcher = Fetcher()  # the bench bounds the fetches in flight to c
    stack.push_async_callback(fetcher.aclose)

    async def fetch(url: str) -> bool:
        return bool(await fetcher.fetch(specs[url]))

    return fetch


async def v_service(stack: AsyncExitStack, c: int, *, without: tuple[str, ...] = ()) -> Fetch:
    """The monitor's whole steady poll: ``service.poll`` (its own slots), after a first round.

    ``without`` removes one part of the poll to measure what it costs (an ablation, experiments only):
    ``intelligence`` (fleet/drift/flapping after each success), ``store`` (the unchanged poll's
    transaction), ``metrics`` (the per-poll metric updates), ``threads`` (1 store thread instead of 4).
    """
    from monitor.app import start
    from monitor.config import parse_config

    tmp = stack.enter_context(tempfile.TemporaryDirectory())
    regions = regions_for(len(FLEET["urls"]))
    parts = await start(parse_config(fleet_config(FLEET["base_url"], f"sqlite:///{tmp}/x.db", regions, c), "bench"))
    stack.push_async_callback(parts.aclose)
    specs = {s.url: s for s in parts.specs}
    await asyncio.gather(*(parts.service.poll(s) for s in parts.specs))
    _ablate(parts, without)

    async def fetch(url: str) -> bool:
        return (await parts.service.poll(specs[url])).ok

    return fetch


def _ablate(parts: Any, without: tuple[str, ...]) -> None:
    service = parts.service
    if "intelligence" in without:
        service.intelligence = None
    if "store" in without:
        service._repository.record_unchanged = lambda *args: None
    if "metrics" in without:
        parts.metrics.observe_poll = lambda result: None
        parts.metrics.set_document = lambda *args: None
        parts.metrics.db_result = lambda *args: None
    if "threads" in without:
        service._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")


def with_threads(make: Callable[..., Awaitable[Fetch]], threads: int) -> Callable[..., Awaitable[Fetch]]:
    """``make``'s fetch, then the body's ``cpu_work`` twice in a thread pool, outside the request slot."""

    async def variant(stack: AsyncExitStack, c: int, **kw: Any) -> Fetch:
        inner = await make(stack, c, **kw)
        executor = ThreadPoolExecutor(max_workers=threads)
        stack.callback(executor.shutdown)
        loop = asyncio.get_running_loop()
        body = (ROOT / "monitor" / "demo" / "documents" / "images.json").read_bytes()

        async def fetch(url: str) -> bool:
            ok = await inner(url)
            WORK.append(lambda: loop.run_in_executor(executor, cpu_work, body))
            return ok

        return fetch

    return variant


WORK: list[Callable[[], Awaitable[str]]] = []
FLEET: dict[str, Any] = {}  # base_url and urls of the run, for the variants that build monitor targets
VARIANTS: dict[str, tuple[str, Callable[..., Awaitable[Fetch]], dict[str, Any]]] = {
    "bare": ("bare client.get, C slots, pool C", v_bare, {}),
    "stream": ("send(stream=True) + aiter_raw + aclose", v_stream, {}),
    "stream+timeout": ("... + per-request httpx.Timeout(30)", v_stream, {"timeout": True}),
    "stream+timeout+headers": ("... + the monitor's headers", v_stream, {"timeout": True, "headers": True}),
    "fetcher": ("monitor Fetcher.fetch (asyncio.timeout, redirects, decoder)", v_fetcher, {}),
    "bare+threads": ("bare + 2x cpu_work per request in a 4-thread pool", with_threads(v_bare, 4), {}),
    "bare+1thread": ("bare + 2x cpu_work per request in a 1-thread pool", with_threads(v_bare, 1), {}),
    "bare+keepalive": ("bare, keepalive_expiry=300 s (default 5 s)", v_bare, {"keepalive_expiry": 300.0}),
    "bare+keepalive20": (
        "bare, keepalive 300 s, max_keepalive_connections=20",
        v_bare,
        {"keepalive_expiry": 300.0, "max_keepalive_connections": 20},
    ),
    "workers": ("C clients with max_connections=1 each, from a queue", v_workers, {}),
    "service": ("the monitor's service.poll, steady (SQLite)", v_service, {}),
    "service-intelligence": ("... without Intelligence.after_success", v_service, {"without": ("intelligence",)}),
    "service-store": ("... without the unchanged poll's transaction", v_service, {"without": ("store",)}),
    "service-metrics": ("... without per-poll metric updates", v_service, {"without": ("metrics",)}),
    "service-threads": ("... with 1 store thread instead of 4", v_service, {"without": ("threads",)}),
    "service-all": (
        "... without intelligence, store and metrics",
        v_service,
        {"without": ("intelligence", "store", "metrics")},
    ),
}


async def one_round(fetch: Fetch, urls: list[str], slots: int) -> tuple[float, float]:
    """Wall and CPU seconds to fetch every URL with at most ``slots`` in flight (and run queued work)."""
    gate = asyncio.Semaphore(slots)
    wall, cpu = time.perf_counter(), time.process_time()

    async def one(url: str) -> None:
        async with gate:
            assert await fetch(url), url
        while WORK:
            await WORK.pop()()

    await asyncio.gather(*(one(u) for u in urls))
    return time.perf_counter() - wall, time.process_time() - cpu


async def run_variant(name: str, base_url: str, targets: int, concurrency: int, pool: int, rounds: int) -> None:
    _label, make, kwargs = VARIANTS[name]
    urls = fleet_urls(base_url, regions_for(targets))
    FLEET.update(base_url=base_url, urls=urls)
    if name == "service":  # the service bounds its own concurrency (polling.max_concurrency)
        concurrency, pool = len(urls), concurrency
    async with AsyncExitStack() as stack:
        fetch = await make(stack, pool, **kwargs)
        cold = await one_round(fetch, urls, concurrency)
        warm = [await one_round(fetch, urls, concurrency) for _ in range(rounds)]
        with counting():
            await one_round(fetch, urls, concurrency)
    passes = max(1, COUNTS["assign passes"])
    result = {
        "cold_s": cold[0],
        "warm_s": statistics.median(w[0] for w in warm),
        "warm_cpu_s": statistics.median(w[1] for w in warm),
        "per_request": {k: v / len(urls) for k, v in COUNTS.items() if not k.endswith("seen")},
        "per_pass": {k: v / passes for k, v in COUNTS.items() if k.endswith("seen")},
    }
    print("RESULT " + json.dumps(result), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100, help="requests in flight (semaphore)")
    parser.add_argument("--pool", type=int, default=0, help="max_connections (default: = concurrency)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--sniffio", help="a folder with sniffio to put on sys.path (pip install --target)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    pool = args.pool or args.concurrency
    if args.sniffio:
        sys.path.insert(0, args.sniffio)
    if args.one:
        asyncio.run(run_variant(args.one, args.base_url, args.targets, args.concurrency, pool, args.rounds))
        return 0
    with tempfile.TemporaryDirectory() as tmp, Nginx(copy_documents(Path(tmp))) as server:
        print(f"N={args.targets} concurrency={args.concurrency} pool={pool}; per request unless noted")
        for name in args.variants.split(","):
            command = [sys.executable, __file__, "--one", name, "--base-url", server.base_url,
                       "--targets", str(args.targets), "--concurrency", str(args.concurrency),
                       "--pool", str(pool), "--rounds", str(args.rounds)]  # fmt: skip
            if args.sniffio:
                command += ["--sniffio", args.sniffio]
            done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(f"{name}: failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(line.removeprefix("RESULT "))
            counts = "  ".join(f"{k} {v:,.1f}" for k, v in {**r["per_request"], **r["per_pass"]}.items())
            print(f"{name:<24} cold {r['cold_s']:5.2f}s  warm {r['warm_s']:5.2f}s  warm cpu {r['warm_cpu_s']:5.2f}s"
                  f"  | {VARIANTS[name][0]}\n{'':<24} {counts}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
