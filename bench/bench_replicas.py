"""Benchmark: what coordinating replicas costs — database round trips and time per poll, 1 replica vs 3.

    .venv/bin/python bench/bench_replicas.py [--targets 600] [--interval 10s] [--window 40] [--replicas 1,3]

For each replica count: nginx serves the real Glance documents for N targets (as ``bench_fleet.py`` does), a
fresh PostgreSQL database is reached through a real PgBouncer in transaction pooling mode (``stats_period =
1``), and that many real daemons (``python -m monitor run``, ``ha.expected_replicas`` set) share the targets.
Once every target has been polled and the shares settled, a window of ``--window`` seconds is measured:

* polls: the sum of ``schemadrift_poll_duration_seconds_count`` over the replicas' /metrics (each poll observed once);
* queries and transactions: PgBouncer's ``SHOW STATS`` for the database (every statement the replicas sent:
  polls, heartbeats, lease renewals, leader work, flushes) — per poll and per second;
* CPU: ``/proc/<pid>/stat`` of every replica, in ms per poll;
* poll time: ``schemadrift_poll_duration_seconds`` sum / count over the window (fetch, confirm, store);
* requests per target per interval, from the polls (1.0 when each target is polled once per interval).

The last table row divides the last replica count's figures by the first's. Nothing is timed against a goal:
the figures are for the README and the issue note. PostgreSQL, pgbouncer and nginx are needed; a missing one
is reported and the benchmark exits 2.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import copy_documents, fleet_config, regions_for
from bench.fleet_rounds import prepare_database
from bench.fleet_soak import Daemon, start_daemon, stop_daemon
from bench.measure import cpu_seconds, create_pg_database, drop_pg_database, postgres_problem
from bench.nginx import Nginx, free_port, nginx_binary
from monitor.config.types import parse_duration
from tests.support.pgbouncer import PgBouncer

SERIES = re.compile(r"^(schemadrift_poll_duration_seconds_(?:sum|count))\{[^}]*\} (\S+)$", re.M)
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sample:
    """Counters at one moment: the replicas' metrics and CPU, PgBouncer's totals for the database."""

    at: float
    polls: float
    duration_sum: float
    duration_count: float
    cpu: float
    queries: int
    transactions: int


@dataclass(frozen=True)
class Result:
    replicas: int
    targets: int
    window: float
    polls: float
    queries: int
    transactions: int
    cpu: float
    duration_sum: float
    duration_count: float
    interval: float

    def row(self) -> list[str]:
        per_poll = max(self.polls, 1.0)
        return [
            str(self.replicas), f"{self.targets:,}", f"{self.polls:,.0f}",
            f"{self.polls * self.interval / self.window / self.targets:.2f}",
            f"{self.queries / per_poll:.2f}", f"{self.transactions / per_poll:.2f}",
            f"{self.queries / self.window:,.0f}", f"{1000 * self.cpu / per_poll:.2f}",
            f"{1000 * self.duration_sum / max(self.duration_count, 1.0):.1f}",
        ]  # fmt: skip


HEADER = ["replicas", "targets", "polls", "req/target/interval", "queries/poll", "xacts/poll", "queries/s",
          "cpu ms/poll", "poll ms"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=600, help="targets (4 schemas x N/4 regions; default 600)")
    parser.add_argument("--interval", default="10s", help="poll interval (default 10s)")
    parser.add_argument("--window", type=float, default=40.0, help="seconds measured per replica count (default 40)")
    parser.add_argument("--replicas", default="1,3", help="comma-separated replica counts (default 1,3)")
    args = parser.parse_args(argv)
    problems = _problems()
    if problems:
        print("bench_replicas: cannot run: " + "; ".join(problems))
        return 2
    counts = [int(c) for c in args.replicas.split(",")]
    interval = parse_duration(args.interval)
    with tempfile.TemporaryDirectory(prefix="sdm-bench-replicas-") as tmp, Nginx(copy_documents(Path(tmp))) as nginx:
        print(f"nginx on {nginx.base_url}; {args.targets:,} targets, interval {args.interval},"
              f" window {args.window:g}s per replica count;"
              " PostgreSQL through PgBouncer in transaction pooling")  # fmt: skip
        results = [_measure(nginx, count, args.targets, interval, args.window, Path(tmp)) for count in counts]
    _print_table(results)
    return 0


def _problems() -> list[str]:
    problems = []
    if nginx_binary() is None:
        problems.append("nginx not found (Debian: apt-get install nginx)")
    if _pgbouncer_binary() is None:
        problems.append("pgbouncer not found (Debian: apt-get install pgbouncer)")
    if (problem := postgres_problem()) is not None:
        problems.append(problem)
    return problems


def _pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")


@contextmanager
def _database_behind_pgbouncer() -> Iterator[tuple[PgBouncer, str, str]]:
    """A fresh, migrated database and a PgBouncer in front of it: (bouncer, database name, its URL)."""
    binary = _pgbouncer_binary()
    assert binary is not None
    name, direct_url = create_pg_database()
    bouncer = PgBouncer(binary, {"stats_period": "1", "default_pool_size": "20"})
    try:
        prepare_database(direct_url)
        bouncer.start()
        yield bouncer, name, bouncer.url(name)
    finally:
        bouncer.cleanup()
        drop_pg_database(name)


def _measure(nginx: Nginx, count: int, targets: int, interval: float, window: float, tmp: Path) -> Result:
    regions = regions_for(targets)
    with _database_behind_pgbouncer() as (bouncer, name, url):
        ports = [free_port() for _ in range(count)]
        daemons = [_start(nginx, url, regions, interval, count, i, port, tmp) for i, port in enumerate(ports)]
        try:
            _wait_ready(daemons, ports, len(regions) * 4, interval)
            first = _sample(daemons, ports, bouncer, name)
            time.sleep(window)
            last = _sample(daemons, ports, bouncer, name)
        finally:
            codes = [stop_daemon(daemon) for daemon in daemons]
        if any(codes):
            print(f"  replica exit codes: {codes}")
    return Result(count, len(regions) * 4, last.at - first.at, last.polls - first.polls,
                  last.queries - first.queries, last.transactions - first.transactions, last.cpu - first.cpu,
                  last.duration_sum - first.duration_sum, last.duration_count - first.duration_count,
                  interval)  # fmt: skip


def _start(nginx: Nginx, url: str, regions: list[str], interval: float, count: int, index: int, port: int,
           tmp: Path) -> Daemon:  # fmt: skip
    data = fleet_config(nginx.base_url, url, regions, 100, interval=f"{interval:g}s", jitter="1s")
    data["http"] = {"listen": f"127.0.0.1:{port}"}
    data["ha"] = {"replica": f"bench-{index}", "expected_replicas": count}
    config_file = tmp / f"replica-{count}-{index}.yaml"
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return start_daemon(config_file, tmp / f"replica-{count}-{index}.log")


def _wait_ready(daemons: list[Daemon], ports: list[int], targets: int, interval: float) -> None:
    """Until every replica logged its start, every target was polled, and two more intervals passed."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    for daemon in daemons:
        daemon.ready.wait(max(0.0, deadline - time.monotonic()))
        if daemon.ready_at is None:
            raise RuntimeError(f"a replica did not start: {' | '.join(daemon.log_tail)}")
    while sum(_series(port)[0] for port in ports) < targets:
        if time.monotonic() > deadline:
            raise RuntimeError("not every target was polled in time")
        time.sleep(1.0)
    time.sleep(2 * interval)  # the shares settle; the first polls' snapshots are behind us


def _sample(daemons: list[Daemon], ports: list[int], bouncer: PgBouncer, database: str) -> Sample:
    series = [_series(port) for port in ports]
    queries, transactions = _pgbouncer_totals(bouncer, database)
    return Sample(
        at=time.monotonic(),
        polls=sum(s[0] for s in series),
        duration_sum=sum(s[1] for s in series),
        duration_count=sum(s[2] for s in series),
        cpu=sum(cpu_seconds(d.process.pid) for d in daemons),
        queries=queries,
        transactions=transactions,
    )


def _series(port: int) -> tuple[float, float, float]:
    """(polls, poll duration sum, poll duration count) from one replica's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    totals = {"schemadrift_poll_duration_seconds_sum": 0.0, "schemadrift_poll_duration_seconds_count": 0.0}
    for name, value in SERIES.findall(text):
        totals[name] += float(value)
    polls = totals["schemadrift_poll_duration_seconds_count"]  # every poll is observed once
    return (polls, totals["schemadrift_poll_duration_seconds_sum"], polls)


def _pgbouncer_totals(bouncer: PgBouncer, database: str) -> tuple[int, int]:
    """PgBouncer's (total_query_count, total_xact_count) for ``database`` (updated every stats_period)."""
    time.sleep(1.1)  # one stats period: the totals include what was sent until now
    with psycopg.connect(bouncer.dsn("pgbouncer"), autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(b"SHOW STATS", prepare=False)
        assert cursor.description is not None
        columns = [c.name for c in cursor.description]
        for row in cursor.fetchall():
            stats = dict(zip(columns, row, strict=True))
            if stats["database"] == database:
                return int(stats["total_query_count"]), int(stats["total_xact_count"])
    return 0, 0


def _print_table(results: list[Result]) -> None:
    rows = [HEADER, *(r.row() for r in results)]
    if len(results) > 1:
        first, last = results[0], results[-1]

        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}x" if b else "-"

        per = [max(r.polls, 1.0) for r in (first, last)]
        rows.append([f"{last.replicas} vs {first.replicas}", "", "", "",
                     ratio(last.queries / per[1], first.queries / per[0]),
                     ratio(last.transactions / per[1], first.transactions / per[0]),
                     ratio(last.queries / last.window, first.queries / first.window),
                     ratio(last.cpu / per[1], first.cpu / per[0]),
                     ratio(last.duration_sum / max(last.duration_count, 1), first.duration_sum /
                           max(first.duration_count, 1))])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
