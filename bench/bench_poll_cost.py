"""Benchmark: what an unchanged poll costs the real daemon, against bare HTTP clients, and the daemon at fleet scale.

One command, one run, one nginx for the CPU figures (started on a free loopback port, serving the real Glance
``images``, ``image``, ``members`` and ``member`` documents for N/4 regions). It prints three tables:

**CPU per unchanged poll** (:data:`PER_POLL_ROWS`): ``curl --parallel``, a bare ``aiohttp`` GET + SHA-256 (the
reference, 1.00x) and a bare ``httpx`` GET + SHA-256 over ``--wire-targets`` URLs (``bench/bench_wire.py``'s
``measure``: each client in its own process, CPU of that process), then the daemon's CPU per unchanged poll at
each fleet size, with every ratio to bare aiohttp.

**The daemon at N targets** (:data:`FLEET_COLUMNS`), for each ``--sizes`` N: the real daemon (``python -m monitor
run``, ``bench/fleet_soak.py``'s helpers) polls N targets at ``--interval`` (default: 2 s per 1,000 targets, at
least 10 s) without jitter, so every round is one burst at the start of each interval:

* ``start``: process start to the log line ``polling N of N target(s)``;
* ``first``: from that line to the N-th first snapshot in the database (read directly, not from the daemon);
* ``steady``: the span of a steady round (its first to its last poll start, from the daemon's last-success
  gauges), median over ``--rounds``;
* ``CPU ms/poll``: the daemon's CPU (``/proc``, every thread) over ``--rounds`` whole intervals, read between
  the rounds' bursts, divided by the polls counted in them — housekeeping, ticks and the batched writes of poll
  times included, the scrapes excluded (each scrape is bracketed by CPU readings);
* ``RSS`` / ``peak`` MiB of the daemon; ``/metrics`` seconds and KiB of a scrape; ``series/target``.

**Bytes on the wire** of a round of ``--bytes-targets`` polls without and with validators (conditional
requests), ``bench/bench_conditional.py``'s table.

Adding a figure: a row of the first table is a name and a function of the run (:class:`Run`) returning
:class:`Cost`; a column of the second a name, width and a function of a :class:`FleetRun`. The 100,000-target
size is for manual runs (it takes about a quarter of an hour); CI runs tiny sizes through ``tests/bench/``.

    .venv/bin/python bench/bench_poll_cost.py                          # N = 1,000 and 10,000, SQLite
    .venv/bin/python bench/bench_poll_cost.py --sizes 1000,10000,100000
    .venv/bin/python bench/bench_poll_cost.py --sizes 40 --wire-targets 40 --rounds 1 --interval 3

Traffic goes only to loopback; every wait is bounded. Exit code 0 when every measurement completed with every
poll counted, 1 otherwise; 0 with a "skipped" line when nginx is missing.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a fresh clone

from bench.bench_conditional import measure_bytes
from bench.bench_conditional import table as bytes_table
from bench.bench_fleet import nginx_version
from bench.bench_wire import WireResult
from bench.bench_wire import measure as measure_client
from bench.fleet import copy_documents, fleet_config, regions_for
from bench.fleet_soak import Daemon, soak_database, start_daemon, stop_daemon
from bench.measure import MIB, count_rows, cpu_seconds, peak_rss_mib, rss_mib
from bench.nginx import Nginx, NginxError, free_port, nginx_binary

REFERENCE = "aiohttp"
SAMPLE = re.compile(rb"^(schemadrift_last_success_timestamp_seconds|schemadrift_poll_duration_seconds_count)"
                    rb"\{([^}]*)\} ([0-9.e+-]+)$", re.MULTILINE)  # fmt: skip
"""The samples the rounds are read from: both in the default series (``metrics.detail: basic``)."""
STARTUP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Cost:
    """One row of the first table: CPU seconds per request or poll, how many were measured, what it is."""

    cpu_s: float
    count: int
    what: str
    error: str | None = None


@dataclass
class Scrape:
    """One GET of the daemon's /metrics: its wall time, body, and the daemon's CPU just before and after it."""

    seconds: float
    body: bytes
    cpu_before: float
    cpu_after: float

    @property
    def series(self) -> int:
        return sum(1 for line in self.body.splitlines() if line and not line.startswith(b"#"))

    def polls_and_span(self) -> tuple[int, float]:
        """Polls counted over every target (the per-cloud duration histograms' counts), and the span of the last
        round: its first to its last poll start (each target's last success; every poll of the bench succeeds)."""
        starts: list[float] = []
        polls = 0.0
        for name, _labels, value in SAMPLE.findall(self.body):
            if name == b"schemadrift_poll_duration_seconds_count":
                polls += float(value)
            else:
                starts.append(float(value))
        return int(polls), max(starts) - min(starts) if starts else 0.0


@dataclass
class FleetRun:
    """The daemon at one fleet size: what the second table prints (seconds, MiB)."""

    targets: int
    interval: float
    start_s: float = 0.0
    first_s: float = 0.0
    steady_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # over the steady intervals, scrapes excluded
    polls: int = 0  # counted over the same intervals
    rss_mib: float = 0.0
    peak_mib: float = 0.0
    metrics_s: list[float] = field(default_factory=list)
    metrics_bytes: int = 0
    series: int = 0
    error: str | None = None

    @property
    def cpu_per_poll_s(self) -> float:
        return self.cpu_s / self.polls if self.polls else 0.0


@dataclass
class Run:
    """Everything one invocation measured; the rows and columns read from it."""

    args: argparse.Namespace
    server: Nginx
    tmp: Path
    wire: dict[str, WireResult] = field(default_factory=dict)
    fleet: list[FleetRun] = field(default_factory=list)


# --- the daemon at N targets -------------------------------------------------------------------------


def interval_for(targets: int, asked: float | None) -> float:
    """The poll interval of a fleet run: ``asked``, or 2 s per 1,000 targets (at least 10 s), so a steady round
    (about 1 ms per poll on one core, less on two) ends well within half an interval."""
    return asked if asked is not None else max(10.0, 2.0 * targets / 1000)


def scrape(pid: int, port: int) -> Scrape:
    """GET /metrics, bracketed by readings of the daemon's CPU; raises OSError when it does not answer."""
    import urllib.request

    before, started = cpu_seconds(pid), time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        body = response.read()
    return Scrape(time.perf_counter() - started, body, before, cpu_seconds(pid))


def wait_until(condition: Callable[[], bool], timeout: float, what: str, daemon: Daemon) -> None:
    """Poll ``condition`` every 0.2 s; raises TimeoutError naming ``what`` (or the daemon's exit) when it fails."""
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon.process.poll() is not None:
            raise TimeoutError(f"the daemon exited with {daemon.process.returncode}: {' | '.join(daemon.log_tail)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f}s")
        time.sleep(0.2)


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def fleet_run(run: Run, targets: int) -> FleetRun:
    """Start the daemon on ``targets`` targets, measure start-up, the first round and the steady rounds, stop it."""
    args = run.args
    regions = regions_for(targets)
    result = FleetRun(len(regions) * 4, interval_for(targets, args.interval))
    with soak_database(args.backend, run.tmp) as url:
        port = free_port()
        data = fleet_config(run.server.base_url, url, regions, args.concurrency, interval=f"{result.interval}s",
                            jitter="0s")  # fmt: skip
        data["http"] = {"listen": f"127.0.0.1:{port}"}
        config_file = run.tmp / f"daemon-{targets}.yaml"
        config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
        daemon = start_daemon(config_file, run.tmp / f"daemon-{targets}.log")
        try:
            _observe(daemon, port, url, result, args.rounds)
        except (TimeoutError, OSError) as exc:
            result.error = str(exc)
        finally:
            code = stop_daemon(daemon)
            if code != 0 and result.error is None:
                result.error = f"the daemon stopped with exit code {code}"
    return result


def _observe(daemon: Daemon, port: int, url: str, result: FleetRun, rounds: int) -> None:
    """Start-up, the first round (first snapshots in the database), then ``rounds`` steady intervals, each read
    between two bursts (half an interval after a round started)."""
    daemon.ready.wait(STARTUP_TIMEOUT_S)
    if daemon.ready_at is None:
        raise TimeoutError(f"the daemon did not start: {' | '.join(daemon.log_tail)}")
    pid, ready, interval, targets = daemon.process.pid, daemon.ready_at, result.interval, result.targets
    result.start_s = ready - daemon.started_at
    wait_until(lambda: count_rows(url, "snapshots") >= targets, 20 * interval + 600, "the first round", daemon)
    result.first_s = time.monotonic() - ready
    burst = int(result.first_s // interval) + 1  # the first steady round starting after the first round ended
    sleep_until(ready + (burst + 0.5) * interval)
    before = scrape(pid, port)
    scrapes = [before]
    for k in range(1, rounds + 1):
        sleep_until(ready + (burst + k + 0.5) * interval)
        scrapes.append(scrape(pid, port))
    polls = [s.polls_and_span() for s in scrapes]
    result.polls = polls[-1][0] - polls[0][0]
    result.cpu_s = sum(b.cpu_before - a.cpu_after for a, b in itertools.pairwise(scrapes))
    result.steady_s = [span for _polls, span in polls[1:]]
    result.rss_mib, result.peak_mib = rss_mib(pid), peak_rss_mib(pid)
    result.metrics_s = [s.seconds for s in scrapes]
    result.metrics_bytes, result.series = len(scrapes[-1].body), scrapes[-1].series
    if result.polls != rounds * targets:
        result.error = f"{result.polls} polls counted over {rounds} round(s) of {targets}: a round did not fit"


# --- the rows of the first table: CPU per unchanged poll ---------------------------------------------


def client_row(name: str, what: str) -> Callable[[Run], Cost]:
    """A row for the bare client ``name`` of ``bench/bench_wire.py``, measured once per run in its own process."""

    def row(run: Run) -> Cost:
        if name not in run.wire:
            args = run.args
            run.wire[name] = measure_client(name, run.server.base_url, args.wire_targets, args.concurrency,
                                            args.wire_rounds)  # fmt: skip
        result = run.wire[name]
        return Cost(result.cpu_per_request_s, result.requests, what, result.error)

    return row


def daemon_row(index: int) -> Callable[[Run], Cost]:
    """A row for the daemon at the ``index``-th fleet size."""

    def row(run: Run) -> Cost:
        fleet = run.fleet[index]
        what = f"the daemon, {fleet.targets:,} targets every {fleet.interval:g}s, steady rounds"
        return Cost(fleet.cpu_per_poll_s, fleet.polls, what, fleet.error)

    return row


PER_POLL_ROWS: list[tuple[str, Callable[[Run], Cost]]] = [
    ("curl", client_row("curl", "curl --parallel (C, no hash)")),
    ("aiohttp", client_row("aiohttp", "bare aiohttp ClientSession GET + sha256 (the reference)")),
    ("httpx", client_row("httpx", "bare httpx.AsyncClient (httpcore) GET + sha256")),
]
"""Name and function of each row; :func:`main` appends a daemon row per fleet size."""


def print_per_poll(run: Run, rows: Sequence[tuple[str, Callable[[Run], Cost]]]) -> list[Cost]:
    print(f"\n{'CPU per unchanged poll':<22} {'us':>8} {'x aiohttp':>9} {'count':>9}  what", flush=True)
    costs = [row(run) for _name, row in rows]
    reference = dict(zip((name for name, _row in rows), costs, strict=True)).get(REFERENCE)
    for (name, _row), cost in zip(rows, costs, strict=True):
        if cost.error:
            print(f"{name:<22} failed: {cost.error}")
        ratio = f"{cost.cpu_s / reference.cpu_s:.2f}x" if reference and reference.cpu_s and cost.cpu_s else "-"
        print(f"{name:<22} {1e6 * cost.cpu_s:>8.1f} {ratio:>9} {cost.count:>9,}  {cost.what}", flush=True)
    return costs


# --- the columns of the second table: the daemon at N targets ----------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


FLEET_COLUMNS: list[tuple[str, int, Callable[[FleetRun], str]]] = [
    ("targets", 8, lambda r: f"{r.targets:,}"),
    ("interval", 8, lambda r: f"{r.interval:g}s"),
    ("start", 7, lambda r: f"{r.start_s:.1f}s"),
    ("first", 7, lambda r: f"{r.first_s:.1f}s"),
    ("steady", 7, lambda r: f"{_median(r.steady_s):.1f}s"),
    ("CPU ms/poll", 11, lambda r: f"{1000 * r.cpu_per_poll_s:.3f}"),
    ("polls", 8, lambda r: f"{r.polls:,}"),
    ("RSS MiB", 7, lambda r: f"{r.rss_mib:.0f}"),
    ("peak MiB", 8, lambda r: f"{r.peak_mib:.0f}"),
    ("/metrics s", 10, lambda r: f"{_median(r.metrics_s):.2f}"),
    ("/metrics KiB", 12, lambda r: f"{r.metrics_bytes / 1024:,.0f}"),
    ("series/target", 13, lambda r: f"{r.series / r.targets:.1f}" if r.targets else "-"),
    ("load", 4, lambda _r: f"{os.getloadavg()[0]:.1f}"),
]
"""Name, width and cell of each column."""


def print_fleet_header() -> None:
    print("\nthe daemon at N targets (seconds are wall time)", flush=True)
    print("  ".join(name.rjust(width) for name, width, _cell in FLEET_COLUMNS), flush=True)


def print_fleet_row(result: FleetRun) -> None:
    print("  ".join(cell(result).rjust(width) for _name, width, cell in FLEET_COLUMNS), flush=True)
    if result.error:
        print(f"  {result.targets:,}: {result.error}", flush=True)


# --- entry point -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="fleet sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--interval", type=float, help="poll interval in seconds (default: 2 s per 1,000 targets)")
    parser.add_argument("--rounds", type=int, default=2, help="steady rounds per size (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=100, help="polling.max_concurrency (default: 100)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--wire-targets", type=int, default=4000, help="URLs per bare-client round (default: 4000)")
    parser.add_argument(
        "--bytes-targets",
        type=int,
        default=1000,
        help="polls per round of the bytes-on-the-wire table, 0 to skip (default: %(default)s)",
    )
    parser.add_argument("--wire-rounds", type=int, default=5, help="warm bare-client rounds (default: 5)")
    args = parser.parse_args(argv)
    args.target_counts = [int(n) for n in str(args.sizes).split(",") if n.strip()]
    if not args.target_counts or min(args.target_counts) < 1 or min(args.rounds, args.wire_targets) < 1:
        parser.error("--sizes, --rounds and --wire-targets must be positive")
    return args


def measure_all(run: Run) -> int:
    """Both tables; returns the exit code."""
    print_fleet_header()
    for count in run.args.target_counts:
        run.fleet.append(fleet_run(run, count))
        print_fleet_row(run.fleet[-1])
    failed = print_bytes(run.args.bytes_targets, run.args.concurrency)
    rows = PER_POLL_ROWS + [(f"daemon@{f.targets:,}", daemon_row(i)) for i, f in enumerate(run.fleet)]
    costs = print_per_poll(run, rows)
    return 1 if failed or any(c.error for c in costs) else 0


def print_bytes(targets: int, concurrency: int) -> int:
    """The bytes on the wire of a steady round without and with validators (``bench/bench_conditional.py``, its
    own nginx and in-process pipeline); returns how many polls failed. ``targets`` 0: skipped."""
    if targets < 1:
        return 0
    result = measure_bytes(targets, concurrency)
    print(bytes_table(result), flush=True)
    return result.failed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if nginx_binary() is None:
        print("bench_poll_cost: skipped: nginx is not installed (apt-get install nginx-light)", flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-poll-cost-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            with Nginx(copy_documents(tmp / "documents")) as server:
                print(f"{nginx_version()} on {server.base_url}; {os.cpu_count()} CPU(s), load "
                      f"{os.getloadavg()[0]:.1f}; {args.backend}; concurrency {args.concurrency}; "
                      f"RAM {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / MIB / 1024:.0f} GiB",
                      flush=True)  # fmt: skip
                return measure_all(Run(args, server, tmp))
        except NginxError as exc:
            print(f"bench_poll_cost: nginx did not start: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench_poll_cost: interrupted", file=sys.stderr)
        sys.exit(130)
