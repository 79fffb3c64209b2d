"""Benchmark: the monitor at fleet scale against nginx, as ratios to a bare httpx client.

nginx (started by the benchmark on a free loopback port, config in a temp dir) serves the real Glance/IMS
``images``, ``image``, ``members`` and ``member`` documents for N/4 regions. For each backend and each N,
a fresh Python process measures (see ``bench/fleet_rounds.py``):

* the baseline: a bare ``httpx.AsyncClient`` with the same concurrency, a cold round (new client) and
  warm rounds (same client), every body read;
* the monitor through the entry points ``check`` uses: start-up on an empty database, the first round
  (every first snapshot), steady rounds (nothing changed, warm pool), /metrics exposition, start-up
  again on the filled database (a restart) and one round after it (cold pool: a second ``check``).

Columns: ``first x`` = first round / bare cold round; ``steady x`` = steady round / bare warm round;
``ms/poll`` and ``cpu ms/poll`` = wall and CPU (every thread) time of a steady round per target;
``start``/``restart`` = ``start(config)`` on the empty/filled database; ``after restart`` and ``x cold`` =
the round after the restart and its ratio to the bare cold round; ``DB B/1k polls`` = database growth per
1,000 unchanged polls over the steady rounds; ``RSS MiB`` after the steady rounds, ``peak MiB`` over the
whole measurement; ``/metrics`` = ``Metrics.exposition`` time, size and series; ``/api/targets ms`` = ``GET
/api/targets`` through the daemon's ASGI application, every target in JSON page after page (median of 3);
``load`` = 1-minute load average when the line was printed (the machine may be shared).

It prints one table per backend, a line per N as it finishes, so the growth curve is visible, and how
the numbers compare with the goals of issue 13. ``--soak SECONDS`` instead runs the real daemon
(``python -m monitor run``) against nginx and samples its CPU and memory (see ``bench/fleet_soak.py``).

    .venv/bin/python bench/bench_fleet.py                       # 1,000, 4,000, 10,000 on sqlite and postgresql
    .venv/bin/python bench/bench_fleet.py --targets 1000 --backend sqlite --rounds 3
    .venv/bin/python bench/bench_fleet.py --soak 600 --targets 10000 --interval 300s

Traffic goes only to loopback. Every round has a timeout (``--round-timeout``). Exit code 0 when every
measurement completed without a failed poll, 1 otherwise; 0 with a "skipped" line when nginx is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a fresh clone

from bench.fleet import SCHEMAS, copy_documents
from bench.fleet_rounds import FleetResult, Settings, measure
from bench.measure import create_pg_database, drop_pg_database, postgres_problem
from bench.nginx import Nginx, NginxError, nginx_binary

BACKENDS = ("sqlite", "postgresql")
RESULT_PREFIX = "RESULT "
NOISY_LOGGERS = ("httpx", "httpcore", "apscheduler", "alembic")  # silenced below WARNING, as monitor/cli.py does
KIB = 1024
# issue 13's goals, as printed after each table
STEADY_RATIO_GOAL = 1.25
FIRST_RATIO_GOAL = 1.5
FLAT_GOAL = 0.10  # cost per poll may grow by at most this fraction from the smallest to the largest N
DB_BYTES_PER_1K_GOAL = 100 * KIB / 10  # ≤ 100 KiB over 10,000 unchanged polls
METRICS_S_GOAL = 1.0
API_TARGETS_S_GOAL = 1.0  # issue 12: well under a second at 10,000 targets
COLUMNS = (
    ("targets", 7), ("base cold", 9), ("base warm", 9), ("first", 7), ("first x", 7), ("steady", 7),
    ("steady x", 8), ("ms/poll", 7), ("cpu ms/poll", 11), ("start", 6), ("restart", 7), ("after restart", 13),
    ("x cold", 6), ("DB B/1k polls", 13),
    ("RSS MiB", 7), ("peak MiB", 8), ("/metrics ms", 11), ("/metrics KiB", 12), ("series", 7), ("/api/targets ms", 15),
    ("failed", 6),
    ("load", 4),
)  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--targets", default="1000,4000,10000", help="comma-separated N (default: %(default)s)")
    parser.add_argument("--backend", default="sqlite,postgresql", help="comma-separated (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=100, help="polling.max_concurrency (default: 100)")
    parser.add_argument("--rounds", type=int, default=2, help="warm/steady rounds per N (default: 2; median)")
    parser.add_argument("--round-timeout", type=float, default=600.0, help="seconds per round (default: 600)")
    parser.add_argument("--nginx-workers", type=int, default=1, help="nginx worker processes (default: 1)")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    soak = parser.add_argument_group("soak: the real daemon (one N, the first --backend)")
    soak.add_argument("--soak", type=float, metavar="SECONDS", help="run the daemon this long instead")
    soak.add_argument("--interval", default="300s", help="poll interval of the soak (default: 300s)")
    soak.add_argument("--jitter", default="10s", help="poll jitter of the soak (default: 10s, the default)")
    soak.add_argument("--sample", type=float, default=5.0, help="seconds between CPU/RSS samples (default: 5)")
    soak.add_argument("--scrape", type=float, default=30.0, help="seconds between /metrics scrapes (default: 30)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement in this process
    args = parser.parse_args(argv)
    args.target_counts = [int(n) for n in str(args.targets).split(",") if n.strip()]
    args.backends = [b.strip() for b in str(args.backend).split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown or not args.backends:
        parser.error(f"--backend: choose from {', '.join(BACKENDS)}")
    if not args.target_counts or min(args.target_counts) < 1 or args.rounds < 1 or args.concurrency < 1:
        parser.error("--targets, --rounds and --concurrency must be positive")
    return args


# --- one measurement in a fresh process ---------------------------------------------------------


def worker_main(settings_json: str) -> int:
    """Run one measurement here and print its result as one ``RESULT {json}`` line."""
    raw = json.loads(settings_json)
    log_file = raw.pop("log_file")
    logging.basicConfig(filename=log_file, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:  # as the CLI does: httpx logs every request at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    result = asyncio.run(measure(Settings(**raw)))
    print(RESULT_PREFIX + json.dumps(result.as_json()), flush=True)
    return 0


def run_worker(settings: Settings, log_file: Path) -> FleetResult:
    """The measurement of ``settings`` in a child process; a crash or hang comes back as ``error``."""
    payload = json.dumps({**vars(settings), "log_file": str(log_file)})
    budget = settings.round_timeout * (2 * settings.rounds + 4) + 120
    try:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", payload],
            capture_output=True,
            text=True,
            timeout=budget,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return FleetResult(targets=settings.targets, error=f"the measurement took longer than {budget:.0f}s")
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return FleetResult(**json.loads(line.removeprefix(RESULT_PREFIX)))
    tail = " | ".join((done.stderr or "").strip().splitlines()[-3:])
    return FleetResult(targets=settings.targets, error=f"the measurement exited with {done.returncode}: {tail}")


def measure_backend(backend: str, counts: list[int], server: Nginx, args: argparse.Namespace, tmp: Path) -> list[Any]:
    """One table: a measurement per N on ``backend``, each printed as it finishes; returns the results."""
    if backend == "postgresql" and (problem := postgres_problem()) is not None:
        print(f"\n{backend}: skipped: {problem}", flush=True)
        return []
    print(f"\n{backend}: {len(SCHEMAS)} schemas x N/4 regions, concurrency {args.concurrency}, "
          f"median of {args.rounds} warm/steady round(s); seconds are wall time", flush=True)  # fmt: skip
    print(_header(), flush=True)
    results = []
    for count in counts:
        result = _measure_one(backend, count, server, args, tmp)
        print(_row(result), flush=True)
        if result.error:
            print(f"  {result.targets}: {result.error}", flush=True)
        results.append(result)
    _print_goals(results)
    return results


def _measure_one(backend: str, count: int, server: Nginx, args: argparse.Namespace, tmp: Path) -> FleetResult:
    pg_name = None
    if backend == "postgresql":
        pg_name, url = create_pg_database()
    else:
        url = f"sqlite:///{tmp / f'fleet-{count}.db'}"
    try:
        settings = Settings(server.base_url, url, count, args.concurrency, args.rounds, args.round_timeout)
        return run_worker(settings, tmp / f"{backend}-{count}.log")
    finally:
        if pg_name is not None:
            drop_pg_database(pg_name)


# --- output --------------------------------------------------------------------------------------


def _header() -> str:
    return "  ".join(name.rjust(width) for name, width in COLUMNS)


def _cells(r: FleetResult) -> list[str]:
    per_1k = r.db_bytes_growth / (r.unchanged_polls / 1000) if r.unchanged_polls else 0.0
    return [
        str(r.targets), f"{r.baseline_cold_s:.2f}s", f"{r.baseline_warm_s:.2f}s", f"{r.first_s:.2f}s",
        f"{_ratio(r.first_s, r.baseline_cold_s):.2f}x", f"{r.steady_s:.2f}s",
        f"{_ratio(r.steady_s, r.baseline_warm_s):.2f}x", f"{1000 * r.steady_s / r.targets:.2f}",
        f"{1000 * r.steady_cpu_s / r.targets:.2f}", f"{r.startup_s:.2f}s", f"{r.restart_s:.2f}s",
        f"{r.restart_round_s:.2f}s", f"{_ratio(r.restart_round_s, r.baseline_cold_s):.2f}x", f"{per_1k:,.0f}",
        f"{r.rss_mib:.0f}", f"{r.peak_rss_mib:.0f}", f"{1000 * r.metrics_s:.0f}", f"{r.metrics_bytes / KIB:,.0f}",
        f"{r.metrics_series:,}", f"{1000 * r.read_targets_s:.0f}", str(r.failed), f"{os.getloadavg()[0]:.1f}",
    ]  # fmt: skip


def _row(r: FleetResult) -> str:
    return "  ".join(cell.rjust(width) for cell, (_name, width) in zip(_cells(r), COLUMNS, strict=True))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def _print_goals(results: list[FleetResult]) -> None:
    """Issue 13's goals that an in-process measurement can check, worst case over the N measured."""
    done = [r for r in results if r.error is None and r.steady_s > 0]
    if not done:
        return
    steady = max(done, key=lambda r: _ratio(r.steady_s, r.baseline_warm_s))
    first = max(done, key=lambda r: _ratio(r.first_s, r.baseline_cold_s))
    db = max(done, key=lambda r: r.db_bytes_growth / max(1, r.unchanged_polls))
    small, large = min(done, key=lambda r: r.targets), max(done, key=lambda r: r.targets)
    cost_small, cost_large = small.steady_cpu_s / small.targets, large.steady_cpu_s / large.targets
    growth = cost_large / cost_small - 1 if cost_small > 0 else 0.0
    per_1k = db.db_bytes_growth / max(1, db.unchanged_polls) * 1000
    print("goals of issue 13 (worst over N):")
    _goal("steady round <= 1.25x the bare warm round", f"{_ratio(steady.steady_s, steady.baseline_warm_s):.2f}x "
          f"at N={steady.targets}", _ratio(steady.steady_s, steady.baseline_warm_s) <= STEADY_RATIO_GOAL)  # fmt: skip
    _goal("first round <= 1.5x the bare cold round", f"{_ratio(first.first_s, first.baseline_cold_s):.2f}x "
          f"at N={first.targets}", _ratio(first.first_s, first.baseline_cold_s) <= FIRST_RATIO_GOAL)  # fmt: skip
    if large.targets > small.targets:
        costs = f"{1000 * cost_small:.2f} -> {1000 * cost_large:.2f} ms ({growth:+.0%})"
        _goal(f"CPU per steady poll flat (<= +{FLAT_GOAL:.0%}) from N={small.targets} to N={large.targets}",
              costs, growth <= FLAT_GOAL)  # fmt: skip
    _goal("database growth <= 100 KiB per 10,000 unchanged polls", f"{per_1k * 10 / KIB:,.0f} KiB per 10,000 "
          f"at N={db.targets}", per_1k <= DB_BYTES_PER_1K_GOAL)  # fmt: skip
    _goal(f"/metrics <= 1 s (N={large.targets})", f"{1000 * large.metrics_s:.0f} ms, {large.metrics_bytes / KIB:,.0f} "
          f"KiB", large.metrics_s <= METRICS_S_GOAL)  # fmt: skip
    _goal(f"GET /api/targets, every page, < 1 s (N={large.targets})", f"{1000 * large.read_targets_s:.0f} ms",
          large.read_targets_s < API_TARGETS_S_GOAL)  # fmt: skip
    print(f"  start-up (start() in process; the daemon's is --soak): {large.startup_s:.2f}s empty, "
          f"{large.restart_s:.2f}s restart at N={large.targets}")  # fmt: skip


def _goal(name: str, value: str, met: bool) -> None:
    print(f"  {name:<62} {value:<34} {'met' if met else 'NOT met'}")


# --- entry point ---------------------------------------------------------------------------------


def nginx_version() -> str:
    binary = nginx_binary()
    if binary is None:
        return "nginx (missing)"
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if nginx_binary() is None:
        print("bench_fleet: skipped: nginx is not installed (apt-get install nginx-light); the baseline must be "
              "a fast independent server", flush=True)  # fmt: skip
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            with Nginx(copy_documents(tmp / "documents"), workers=args.nginx_workers) as server:
                print(f"{nginx_version()} on {server.base_url} ({args.nginx_workers} worker); "
                      f"{os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
                if args.soak is not None:
                    from bench.fleet_soak import soak

                    return soak(server, args, tmp)
                results = {b: measure_backend(b, args.target_counts, server, args, tmp) for b in args.backends}
        except NginxError as exc:
            print(f"bench_fleet: nginx did not start: {exc}", file=sys.stderr)
            return 1
    if args.json is not None:
        args.json.write_text(json.dumps({b: [r.as_json() for r in rs] for b, rs in results.items()}, indent=2))
    failed = [r for rs in results.values() for r in rs if r.error or r.failed]
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # nginx, the child process and any PostgreSQL database are gone by now
        print("bench_fleet: interrupted", file=sys.stderr)
        sys.exit(130)
