"""The soak: the real daemon (``python -m monitor run``) polling N targets on nginx for a while.

:func:`soak` writes a config for the fleet (the given ``--interval`` and ``--jitter``, a free loopback
port for /metrics), starts the daemon as a subprocess and reports:

* start-up as the user sees it: process start to the log line ``polling N of N target(s)``;
* every ``--sample`` seconds: CPU of one core (``/proc/<pid>/stat`` utime+stime over wall time) for the
  last interval and on average since start-up, VmRSS, and polls done (from the last scrape);
* every ``--scrape`` seconds: a GET of /metrics, its time, size and the polls done (the sum of
  ``schemadrift_poll_duration_seconds_count``: every poll is observed once, whatever ``metrics.detail`` says);
* at the end: average CPU, RSS at the first sample past 1,000 polls and at the end, the database growth
  per 1,000 polls after every target's first poll, and the daemon's exit code after SIGTERM.

The daemon is always stopped (SIGTERM, then SIGKILL after 60 s), also on Ctrl-C; a PostgreSQL database
is created for the soak and dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.fleet import fleet_config, regions_for
from bench.fleet_rounds import prepare_database
from bench.measure import (
    cpu_seconds,
    create_pg_database,
    database_bytes,
    drop_pg_database,
    postgres_problem,
    rss_mib,
)
from bench.nginx import Nginx, free_port

ROOT = Path(__file__).resolve().parent.parent
STARTED = re.compile(r"polling \d+ of (\d+) target\(s\)")
POLLS = re.compile(rb"^schemadrift_poll_duration_seconds_count\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)
STARTUP_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Scrape:
    seconds: float
    size: int
    polls: int


@dataclass
class Daemon:
    """The running daemon: its process, and what its log said (read by a thread)."""

    process: subprocess.Popen[bytes]
    started_at: float
    ready_at: float | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    log_tail: list[str] = field(default_factory=list)

    def read_log(self, log_file: Path) -> None:
        """Copy stderr to ``log_file``; note when the 'polling N of N target(s)' line appears."""
        assert self.process.stderr is not None
        with log_file.open("wb") as sink:
            for raw in self.process.stderr:
                sink.write(raw)
                line = raw.decode("utf-8", "replace").rstrip()
                self.log_tail = [*self.log_tail[-4:], line]
                if self.ready_at is None and STARTED.search(line):
                    self.ready_at = time.monotonic()
                    self.ready.set()
        self.ready.set()  # the process ended: nobody waits for a line that will not come


def scrape(port: int) -> Scrape | None:
    """GET /metrics; None when the daemon does not answer within 30 s."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            body = response.read()
    except OSError:
        return None
    polls = sum(float(v) for v in POLLS.findall(body))
    return Scrape(time.perf_counter() - started, len(body), int(polls))


@contextlib.contextmanager
def soak_database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh database URL for the soak (PostgreSQL: created, migrated, dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'soak.db'}"
        return
    name, url = create_pg_database()
    try:
        prepare_database(url)
        yield url
    finally:
        drop_pg_database(name)


def start_daemon(config_file: Path, log_file: Path) -> Daemon:
    """``python -m monitor run`` from this checkout, its stderr read by a thread."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config_file)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    daemon = Daemon(process, time.monotonic())
    threading.Thread(target=daemon.read_log, args=(log_file,), daemon=True).start()
    return daemon


def stop_daemon(daemon: Daemon) -> int:
    """SIGTERM (a graceful stop), SIGKILL after STOP_TIMEOUT_S; returns the exit code."""
    if daemon.process.poll() is None:
        daemon.process.send_signal(signal.SIGTERM)
        try:
            daemon.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
    return daemon.process.returncode


def soak(server: Nginx, args: argparse.Namespace, tmp: Path) -> int:
    """Run the soak of ``args`` against ``server``; returns 0 when the daemon ran and stopped cleanly."""
    backend, count = args.backends[0], args.target_counts[0]
    if backend == "postgresql" and (problem := postgres_problem()) is not None:
        print(f"soak skipped: {problem}")
        return 0
    regions = regions_for(count)
    with soak_database(backend, tmp) as url:
        port = free_port()
        data = fleet_config(server.base_url, url, regions, args.concurrency, interval=args.interval, jitter=args.jitter)
        data["http"] = {"listen": f"127.0.0.1:{port}"}
        config_file = tmp / "soak.yaml"
        config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
        print(f"soak: {len(regions) * 4} targets, interval {args.interval}, jitter {args.jitter}, {backend}, "
              f"{args.soak:g}s; daemon log in the temp dir", flush=True)  # fmt: skip
        daemon = start_daemon(config_file, tmp / "daemon.log")
        try:
            return _observe(daemon, port, url, len(regions) * 4, args)
        finally:
            code = stop_daemon(daemon)
            print(f"daemon stopped with exit code {code}", flush=True)


def _observe(daemon: Daemon, port: int, url: str, targets: int, args: argparse.Namespace) -> int:
    """Wait for start-up, then sample until the soak's time is up; prints as it goes."""
    daemon.ready.wait(STARTUP_TIMEOUT_S)
    if daemon.ready_at is None:
        print(f"the daemon did not start: {' | '.join(daemon.log_tail)}", flush=True)
        return 1
    pid = daemon.process.pid
    print(f"start-up: {daemon.ready_at - daemon.started_at:.2f}s from process start to 'polling {targets} of {targets} "
          f"target(s)'", flush=True)  # fmt: skip
    print(f"{'t s':>7}  {'CPU %':>6}  {'avg CPU %':>9}  {'RSS MiB':>7}  {'polls':>8}  {'/metrics ms':>11}  "
          f"{'/metrics KiB':>12}", flush=True)  # fmt: skip
    t0, cpu0 = time.monotonic(), cpu_seconds(pid)
    last_t, last_cpu, last_scrape_t = t0, cpu0, -1e9
    latest: Scrape | None = None
    first_full: tuple[int, int] | None = None  # (polls, db bytes) once every target was polled once
    rss_at_1k: float | None = None
    samples: list[float] = []
    while time.monotonic() - t0 < args.soak and daemon.process.poll() is None:
        time.sleep(min(args.sample, max(0.1, args.soak - (time.monotonic() - t0))))
        now = time.monotonic()
        try:
            cpu = cpu_seconds(pid)
        except OSError:
            break
        if now - last_scrape_t >= 0.9 * args.scrape:
            latest, last_scrape_t = scrape(port), now
        rss = rss_mib(pid)
        polls = latest.polls if latest else 0
        if rss_at_1k is None and polls >= 1000:
            rss_at_1k = rss
        if first_full is None and polls >= targets:
            first_full = (polls, database_bytes(url))
        interval_cpu = 100 * (cpu - last_cpu) / max(1e-9, now - last_t)
        samples.append(rss)
        metrics = f"{1000 * latest.seconds:11.0f}  {latest.size / 1024:12,.0f}" if latest else f"{'-':>11}  {'-':>12}"
        print(f"{now - t0:7.0f}  {interval_cpu:6.1f}  {100 * (cpu - cpu0) / (now - t0):9.1f}  {rss:7.0f}  "
              f"{polls:8,}  {metrics}", flush=True)  # fmt: skip
        last_t, last_cpu = now, cpu
    return _summary(daemon, port, url, t0, cpu0, first_full, rss_at_1k, samples)


def _summary(daemon: Daemon, port: int, url: str, t0: float, cpu0: float, first_full: tuple[int, int] | None,
             rss_at_1k: float | None, samples: list[float]) -> int:  # fmt: skip
    if daemon.process.poll() is not None:
        print(f"the daemon exited early with {daemon.process.returncode}: {' | '.join(daemon.log_tail)}")
        return 1
    wall = time.monotonic() - t0
    cpu = cpu_seconds(daemon.process.pid) - cpu0
    last = scrape(port)
    polls = last.polls if last else 0
    print(f"average CPU since start-up: {100 * cpu / wall:.1f}% of one core ({cpu:.1f}s CPU in {wall:.0f}s); "
          f"goal at 10,000 targets / 5 min: <= 10%")  # fmt: skip
    if samples:
        growth = f" ({samples[-1] / rss_at_1k - 1:+.0%} since 1,000 polls)" if rss_at_1k else ""
        print(f"RSS: first {samples[0]:.0f} MiB, peak {max(samples):.0f} MiB, last {samples[-1]:.0f} MiB{growth}; "
              "goal <= 300 MiB and <= +10% from 1,000 to 100,000 polls")  # fmt: skip
    if last is not None:
        print(f"/metrics at the end: {1000 * last.seconds:.0f} ms, {last.size / 1024:,.0f} KiB; {polls:,} polls")
    if first_full is not None and polls > first_full[0]:
        grown = database_bytes(url) - first_full[1]
        per_10k = grown / (polls - first_full[0]) * 10000
        print(f"database growth after every target's first poll: {grown:,} bytes over {polls - first_full[0]:,} "
              f"polls = {per_10k / 1024:,.0f} KiB per 10,000; goal <= 100 KiB")  # fmt: skip
    return 0
