"""Benchmark: what one GET costs in CPU, per HTTP client, as ratios to a bare aiohttp GET + SHA-256.

nginx (started on a free loopback port, config in a temp dir) serves the real Glance ``images``, ``image``,
``members`` and ``member`` documents for N/4 regions. Each client fetches every URL with at most C requests
in flight: one cold round, then ``--rounds`` warm rounds on the same connections. Reported per request: the
CPU time (user + system) of the client's own process over a warm round, median of the rounds — never wall
time, so a machine shared with other work skews the figures little. Every client hashes each body with
SHA-256 and the result is checked against the document nginx serves, so every client reads every byte.

Clients (``CLIENTS``; each one a fresh Python process, or a ``curl`` process per round):

* ``curl``: ``curl --parallel`` over the same URLs (the wire's floor: no hash, C code);
* ``aiohttp``: a bare ``aiohttp.ClientSession`` GET + ``read()`` + SHA-256 — the reference (1.00x);
* ``httpx``: a bare ``httpx.AsyncClient`` (its default transport, httpcore) GET + SHA-256;
* ``httpx+aiohttp``: ``httpx.AsyncClient`` on ``httpx_aiohttp.AiohttpTransport`` GET + SHA-256;
* ``fetcher``: ``monitor.poll.fetch.Fetcher.fetch`` + the raw digest the service computes for an unchanged poll;
* ``fetcher/httpx-aiohttp``: the same Fetcher with httpx-aiohttp's transport instead of its own.

Each Python client runs on asyncio's default loop and, with ``--loops asyncio,uvloop``, on uvloop.
``--before REV`` also measures the ``fetcher`` of another commit (exported with ``git archive`` into a temp
dir), so a change of engine shows as before/after in one run.

    .venv/bin/python bench/bench_wire.py [--targets 4000] [--concurrency 100] [--rounds 5]
    .venv/bin/python bench/bench_wire.py --loops asyncio,uvloop --before HEAD~3
    .venv/bin/python bench/bench_wire.py --profile fetcher      # where a request's CPU goes (cProfile)

Another script measures one client with :func:`measure` (in its own process) or :func:`measure_here` (in
the calling process). Traffic goes only to loopback. Exit code 0 when every client read every document
right, 1 otherwise; 0 with a "skipped" line when nginx is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import hashlib
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a fresh clone

from bench.fleet import SCHEMAS, copy_documents, documents_dir, fleet_config, fleet_urls, regions_for
from bench.nginx import Nginx, NginxError, nginx_binary

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "RESULT "
REFERENCE = "aiohttp"
LOOPS = ("asyncio", "uvloop")

Fetch = Callable[[str], Awaitable[bytes]]  # one GET of a URL -> the SHA-256 of its body
MakeFetch = Callable[[AsyncExitStack, int], Awaitable[Fetch]]


@dataclass(frozen=True)
class WireResult:
    """One client's figures: CPU seconds per request (median and spread over the warm rounds), wall seconds."""

    client: str
    loop: str
    requests: int
    cpu_per_request_s: float = 0.0
    cpu_min_s: float = 0.0
    cpu_max_s: float = 0.0
    cold_wall_s: float = 0.0
    warm_wall_s: float = 0.0
    source: str = ""  # where the measured code came from (the monitor's tree for ``fetcher``)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the clients: each sets itself up on ``stack`` and returns its fetch ------------------------------


async def aiohttp_fetch(stack: AsyncExitStack, concurrency: int) -> Fetch:
    """A bare ``aiohttp.ClientSession`` with ``concurrency`` connections: GET, read, SHA-256."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    await stack.enter_async_context(session)

    async def fetch(url: str) -> bytes:
        async with session.get(url) as response:
            response.raise_for_status()
            return hashlib.sha256(await response.read()).digest()

    return fetch


async def _httpx_fetch(stack: AsyncExitStack, client: Any) -> Fetch:
    await stack.enter_async_context(client)

    async def fetch(url: str) -> bytes:
        response = await client.get(url)
        response.raise_for_status()
        return hashlib.sha256(response.content).digest()

    return fetch


async def httpx_fetch(stack: AsyncExitStack, concurrency: int) -> Fetch:
    """A bare ``httpx.AsyncClient`` on its default transport (httpcore): GET, SHA-256."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return await _httpx_fetch(stack, httpx.AsyncClient(limits=limits, timeout=30))


async def httpx_aiohttp_fetch(stack: AsyncExitStack, concurrency: int) -> Fetch:
    """``httpx.AsyncClient`` on ``httpx_aiohttp.AiohttpTransport``: GET, SHA-256."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = AiohttpTransport(limits=limits, trust_env=False)
    return await _httpx_fetch(stack, httpx.AsyncClient(transport=transport, timeout=30))


async def fetcher_fetch(stack: AsyncExitStack, concurrency: int, connection: Any = None) -> Fetch:
    """The monitor's ``Fetcher.fetch`` on the fleet's targets, plus the digest an unchanged poll makes.

    ``connection``: the Fetcher's transport of one connection (default: its own).
    """
    from monitor.config import parse_config
    from monitor.judge.kinds import fold_headers
    from monitor.poll.fetch import Fetcher

    config = parse_config(fleet_config(FLEET["base_url"], "sqlite://", regions_for(FLEET["targets"]), concurrency), "x")
    specs = {spec.url: spec for spec in config.targets()}
    fetcher = Fetcher(**({"connection": connection} if connection else {}))  # one_round bounds the concurrency
    stack.push_async_callback(fetcher.aclose)

    async def fetch(url: str) -> bytes:
        fetched = await fetcher.fetch(specs[url])
        # as the service's _raw_digest: the body and the headers a kind folds into the document
        digest = hashlib.sha256(fetched.body)
        for name, value in sorted(fold_headers(fetched.headers).items()):
            digest.update(f"\0{name}:{value}".encode())
        return digest.digest()

    return fetch


async def fetcher_httpx_aiohttp_fetch(stack: AsyncExitStack, concurrency: int) -> Fetch:
    """The monitor's Fetcher with httpx-aiohttp's ``AiohttpTransport`` (one connection each) as its engine."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    def connection(context: Any) -> Any:
        return AiohttpTransport(verify=context, trust_env=False, limits=httpx.Limits(max_connections=1))

    return await fetcher_fetch(stack, concurrency, connection)


CLIENTS: dict[str, tuple[str, MakeFetch | None]] = {
    "curl": ("curl --parallel (no hash)", None),
    "aiohttp": ("bare aiohttp ClientSession GET + sha256", aiohttp_fetch),
    "httpx": ("bare httpx.AsyncClient (httpcore) GET + sha256", httpx_fetch),
    "httpx+aiohttp": ("httpx.AsyncClient on httpx-aiohttp's transport GET + sha256", httpx_aiohttp_fetch),
    "fetcher": ("monitor Fetcher.fetch + raw digest", fetcher_fetch),
    "fetcher/httpx-aiohttp": ("... with httpx-aiohttp's transport as its engine", fetcher_httpx_aiohttp_fetch),
}
FLEET: dict[str, Any] = {}  # base_url and targets of the run, for the clients that build monitor targets


# --- measuring one client ----------------------------------------------------------------------------


def expected_digests(urls: Sequence[str]) -> dict[str, bytes]:
    """The SHA-256 nginx's body must have for each URL (the file it serves)."""
    by_schema = {s: hashlib.sha256((documents_dir() / f"{s}.json").read_bytes()).digest() for s in SCHEMAS}
    return {url: by_schema[url.rsplit("/", 1)[1]] for url in urls}


async def one_round(
    fetch: Fetch, urls: Sequence[str], concurrency: int, expected: dict[str, bytes]
) -> tuple[float, float]:
    """Wall and CPU seconds (this process, every thread) to fetch every URL, ``concurrency`` at a time.

    Raises AssertionError when a body is not the document nginx serves.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str) -> None:
        async with gate:
            digest = await fetch(url)
        assert digest == expected[url], f"{url}: wrong body"

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(url) for url in urls))
    return time.perf_counter() - wall, time.process_time() - cpu


async def _rounds(name: str, base_url: str, targets: int, concurrency: int, rounds: int, loop: str) -> WireResult:
    make = CLIENTS[name][1]
    assert make is not None, name
    urls = fleet_urls(base_url, regions_for(targets))[:targets]
    FLEET.update(base_url=base_url, targets=targets)
    expected = expected_digests(urls)
    async with AsyncExitStack() as stack:
        fetch = await make(stack, concurrency)
        cold = await one_round(fetch, urls, concurrency, expected)
        warm = [await one_round(fetch, urls, concurrency, expected) for _ in range(rounds)]
    cpu = [c / len(urls) for _w, c in warm]
    return WireResult(
        client=name, loop=loop, requests=len(urls), cpu_per_request_s=statistics.median(cpu), cpu_min_s=min(cpu),
        cpu_max_s=max(cpu), cold_wall_s=cold[0], warm_wall_s=statistics.median(w for w, _c in warm),
        source=_source(name),
    )  # fmt: skip


def _source(name: str) -> str:
    if name != "fetcher":
        return ""
    import monitor

    return str(Path(monitor.__file__).resolve().parent.parent)


def measure_here(
    name: str, base_url: str, targets: int, concurrency: int = 100, rounds: int = 5, loop: str = "asyncio"
) -> WireResult:
    """Measure the Python client ``name`` in this process on a new event loop (``loop``: asyncio or uvloop)."""
    coroutine = _rounds(name, base_url, targets, concurrency, rounds, loop)
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def profile_here(name: str, base_url: str, targets: int, concurrency: int = 100, top: int = 40) -> str:
    """cProfile (CPU-time clock) of one warm round of client ``name`` in this process: the ``top`` functions
    by own time, and the calls per request. Profiling inflates pure-Python calls: read it for where, not how much.
    """

    async def go() -> cProfile.Profile:
        urls = fleet_urls(base_url, regions_for(targets))[:targets]
        FLEET.update(base_url=base_url, targets=targets)
        expected = expected_digests(urls)
        make = CLIENTS[name][1]
        assert make is not None, name
        async with AsyncExitStack() as stack:
            fetch = await make(stack, concurrency)
            await one_round(fetch, urls, concurrency, expected)
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            await one_round(fetch, urls, concurrency, expected)
            profile.disable()
        return profile

    out = io.StringIO()
    stats = pstats.Stats(asyncio.run(go()), stream=out)
    print(f"{name}: {stats.total_calls / targets:.0f} function calls per request", file=out)  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def measure(
    name: str,
    base_url: str,
    targets: int,
    concurrency: int = 100,
    rounds: int = 5,
    loop: str = "asyncio",
    monitor_tree: Path | None = None,
    timeout: float = 900.0,
) -> WireResult:
    """Measure client ``name`` in a fresh process (``curl``: one per round); failures come back as ``error``.

    ``monitor_tree`` is a source tree whose ``monitor`` package is imported instead of this one's.
    """
    if name == "curl":
        return measure_curl(base_url, targets, concurrency, rounds)
    tree = str(monitor_tree) if monitor_tree else None
    settings = {"name": name, "base_url": base_url, "targets": targets, "concurrency": concurrency,
                "rounds": rounds, "loop": loop, "monitor_tree": tree}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(settings)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return WireResult(name, loop, targets, error=f"took longer than {timeout:.0f}s")
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return WireResult(**json.loads(line.removeprefix(RESULT_PREFIX)))
    tail = " | ".join((done.stderr or "").strip().splitlines()[-3:])
    return WireResult(name, loop, targets, error=f"exited with {done.returncode}: {tail}")


def worker_main(settings_json: str) -> int:
    """Run one measurement in this process and print it as one ``RESULT {json}`` line."""
    settings = json.loads(settings_json)
    tree = settings.pop("monitor_tree")
    if tree:
        sys.path.insert(0, tree)  # found before the editable install's finder, which comes last
    result = measure_here(**settings)
    print(RESULT_PREFIX + json.dumps(result.as_json()), flush=True)
    return 0


def measure_curl(base_url: str, targets: int, concurrency: int = 100, rounds: int = 5) -> WireResult:
    """``curl --parallel`` over the URLs, a process per round; its CPU from the kernel's rusage of the child."""
    urls = fleet_urls(base_url, regions_for(targets))[:targets]
    with tempfile.TemporaryDirectory(prefix="bench-wire-curl-") as tmp:
        config = Path(tmp) / "urls.conf"
        config.write_text("".join(f'url = "{url}"\noutput = "/dev/null"\n' for url in urls), encoding="utf-8")
        command = ["curl", "--parallel", "--parallel-max", str(concurrency), "--http1.1", "--silent",
                   "--fail", "--config", str(config)]  # fmt: skip
        runs = [_run_curl(command) for _ in range(rounds + 1)]
    failed = next((error for _w, _c, error in runs if error), None)
    cpu = [c / len(urls) for _w, c, _e in runs[1:]]
    return WireResult(
        client="curl", loop="-", requests=len(urls), cpu_per_request_s=statistics.median(cpu), cpu_min_s=min(cpu),
        cpu_max_s=max(cpu), cold_wall_s=runs[0][0], warm_wall_s=statistics.median(w for w, _c, _e in runs[1:]),
        error=failed,
    )  # fmt: skip


def _run_curl(command: list[str]) -> tuple[float, float, str | None]:
    """Wall and CPU seconds of one curl run, and an error when it failed."""
    started = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        return 0.0, 0.0, f"cannot run curl: {exc}"
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    error = f"curl exited with {process.returncode}: {stderr[:200]}" if process.returncode else None
    return wall, usage.ru_utime + usage.ru_stime, error


# --- the table -------------------------------------------------------------------------------------------


def print_table(results: list[WireResult]) -> None:
    """One line per client: CPU µs per request (median, min-max), warm/cold wall, ratio to bare aiohttp."""
    reference = next((r for r in results if r.client == REFERENCE and r.loop == "asyncio" and not r.error), None)
    print(f"{'client':<22} {'loop':<8} {'CPU us/req':>10} {'min-max':>13} {'x aiohttp':>9} {'warm s':>7} "
          f"{'cold s':>7}  what")  # fmt: skip
    for r in results:
        if r.error:
            print(f"{_label(r):<22} {r.loop:<8} failed: {r.error}")
            continue
        ratio = f"{r.cpu_per_request_s / reference.cpu_per_request_s:.2f}x" if reference else "-"
        spread = f"{1e6 * r.cpu_min_s:.0f}-{1e6 * r.cpu_max_s:.0f}"
        print(f"{_label(r):<22} {r.loop:<8} {1e6 * r.cpu_per_request_s:>10.1f} {spread:>13} {ratio:>9} "
              f"{r.warm_wall_s:>7.2f} {r.cold_wall_s:>7.2f}  {_what(r)}", flush=True)  # fmt: skip


def _label(r: WireResult) -> str:
    return r.client if not r.source or Path(r.source) == ROOT else f"{r.client}@before"


def _what(r: WireResult) -> str:
    what = CLIENTS[r.client][0]
    return f"{what} ({r.source})" if r.source and Path(r.source) != ROOT else what


def export_tree(revision: str, into: Path) -> Path:
    """The files of ``revision`` of this repository in ``into`` (``git archive``); raises CalledProcessError."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True)
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--targets", type=int, default=4000, help="URLs per round (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=100, help="requests in flight (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="warm rounds, median reported (default: %(default)s)")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--loops", default="asyncio", help="asyncio and/or uvloop, comma-separated")
    parser.add_argument("--before", metavar="REV", help="also measure the fetcher of this commit")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    parser.add_argument("--profile", metavar="CLIENT", help="instead: cProfile one warm round of this client")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement in this process
    args = parser.parse_args(argv)
    args.client_names = [c.strip() for c in args.clients.split(",") if c.strip()]
    args.loop_names = [loop.strip() for loop in args.loops.split(",") if loop.strip()]
    if set(args.client_names) - set(CLIENTS) or set(args.loop_names) - set(LOOPS) or args.profile in ("curl",):
        parser.error(f"--clients: choose from {', '.join(CLIENTS)}; --loops: from {', '.join(LOOPS)}")
    if min(args.targets, args.concurrency, args.rounds) < 1:
        parser.error("--targets, --concurrency and --rounds must be positive")
    return args


def run_all(args: argparse.Namespace, server: Nginx, before: Path | None) -> list[WireResult]:
    """Every requested client on every requested loop (curl once), printed as a table as they finish."""
    plan: list[tuple[str, str, Path | None]] = []
    for name in args.client_names:
        loops = ["-"] if name == "curl" else args.loop_names
        plan += [(name, loop, None) for loop in loops]
        if name == "fetcher" and before is not None:
            plan += [(name, loop, before) for loop in loops]
    results = []
    for name, loop, tree in plan:
        results.append(measure(name, server.base_url, args.targets, args.concurrency, args.rounds, loop, tree))
        print(f"  measured {_label(results[-1])} on {loop} (load {os.getloadavg()[0]:.1f})", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if nginx_binary() is None:
        print("bench_wire: skipped: nginx is not installed (apt-get install nginx-light)", flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-wire-") as tmp_name:
        tmp = Path(tmp_name)
        before = export_tree(args.before, tmp / "before") if args.before else None
        try:
            with Nginx(copy_documents(tmp / "documents")) as server:
                print(f"{args.targets} URLs on {server.base_url}, concurrency {args.concurrency}, median of "
                      f"{args.rounds} warm rounds; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}")  # fmt: skip
                if args.profile:
                    print(profile_here(args.profile, server.base_url, args.targets, args.concurrency))
                    return 0
                results = run_all(args, server, before)
        except NginxError as exc:
            print(f"bench_wire: nginx did not start: {exc}", file=sys.stderr)
            return 1
    print()
    print_table(results)
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_json() for r in results], indent=2), encoding="utf-8")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench_wire: interrupted", file=sys.stderr)
        sys.exit(130)
