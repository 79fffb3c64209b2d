"""Benchmark: the bytes on the wire of a round of polls, without and with validators, against a real nginx.

nginx (``bench/nginx.py``, on a free loopback port) serves the real Glance ``images``, ``image``, ``members``
and ``member`` documents for N/4 regions and, as for any static file, sends ``ETag`` and ``Last-Modified`` and
answers ``304 Not Modified`` to a request quoting them. The monitor polls the fleet through the entry points
``check`` uses (``monitor.app.start``, ``service.poll`` for every target, gathered) on a fresh SQLite database:
a first round (every document in full), then a steady round (nothing changed) — once with
``polling.conditional: false`` and once with the default ``true``. nginx's own access log counts the bytes
(``$request_length`` + ``$bytes_sent``: request and response, headers included, as on the wire; TCP/IP
overhead left out), so the figures do not depend on the monitor counting right.

    .venv/bin/python bench/bench_conditional.py [--targets 1000] [--concurrency 100]

It measures twice: nginx sending the documents as they are, and gzip-compressed (``gzip on``, as a real
front end would; the monitor asks for gzip), each with its own table.

Another script calls :func:`measure_bytes` (it starts and stops its own nginx and event loop) and gets a
:class:`BytesResult`. Traffic goes only to loopback; every round has a timeout. Exit code 0 when every poll
succeeded and every steady poll with validators was a 304, 1 otherwise; 0 with a "skipped" line when nginx is
missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a fresh clone

from bench.bench_fleet import nginx_version
from bench.fleet import copy_documents, fleet_config, regions_for
from bench.fleet_rounds import poll_round
from bench.nginx import Nginx, nginx_binary
from monitor.app import start
from monitor.config import parse_config

ROUND_TIMEOUT_S = 600.0
LOG_WAIT_S = 5.0  # nginx writes a request's log line after its response: the last few may trail the round


@dataclass(frozen=True)
class RoundBytes:
    """What one round cost on the wire, as nginx logged it."""

    requests: int = 0
    not_modified: int = 0  # answered 304
    request_bytes: int = 0
    response_bytes: int = 0

    @property
    def total(self) -> int:
        return self.request_bytes + self.response_bytes

    @property
    def per_poll(self) -> float:
        return self.total / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class BytesResult:
    """The first round (full documents) and the steady round without (``plain``) and with validators."""

    targets: int
    first: RoundBytes
    plain: RoundBytes
    conditional: RoundBytes
    failed: int = 0

    @property
    def saving(self) -> float:
        """The share of a steady round's bytes that validators save (0.97: 97 % fewer bytes)."""
        return 1 - self.conditional.total / self.plain.total if self.plain.total else 0.0


def _since(server: Nginx, mark: int, expected: int) -> RoundBytes:
    """The bytes of the requests nginx logged after the first ``mark`` lines (waiting for ``expected`` of them)."""
    deadline = time.monotonic() + LOG_WAIT_S
    while len(logged := server.logged()) < mark + expected and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = logged[mark:]
    return RoundBytes(len(lines), sum(1 for status, _, _ in lines if status == 304),
                      sum(request for _, request, _ in lines), sum(sent for _, _, sent in lines))  # fmt: skip


async def _rounds(
    server: Nginx, database_url: str, targets: int, concurrency: int, *, conditional: bool
) -> tuple[RoundBytes, RoundBytes, int]:
    """A first and a steady round on a fresh database; returns their bytes and how many polls failed."""
    data = fleet_config(server.base_url, database_url, regions_for(targets), concurrency)
    data["polling"]["conditional"] = conditional
    parts = await start(parse_config(data, "bench"))
    try:
        polls = len(parts.specs)
        mark = len(server.logged())
        first = await poll_round(parts, ROUND_TIMEOUT_S, "first round")
        first_bytes = _since(server, mark, polls)
        mark += first_bytes.requests
        steady = await poll_round(parts, ROUND_TIMEOUT_S, "steady round")
        return first_bytes, _since(server, mark, polls), first.failed + steady.failed
    finally:
        await parts.aclose()


def measure_bytes(targets: int, concurrency: int = 100, *, gzip: bool = False) -> BytesResult:
    """Bytes on the wire for a round of ``targets`` polls (rounded up to a multiple of four) against a new nginx
    (compressing with ``gzip``), without and with validators (see the module docstring). Runs its own event
    loop; raises NginxError when nginx is missing or does not start."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-conditional-") as tmp,
        Nginx(copy_documents(Path(tmp) / "documents"), log_bytes=True, gzip=gzip) as server,
    ):
        _, plain, plain_failed = asyncio.run(
            _rounds(server, f"sqlite:///{tmp}/plain.db", targets, concurrency, conditional=False)
        )
        first, conditional, failed = asyncio.run(
            _rounds(server, f"sqlite:///{tmp}/conditional.db", targets, concurrency, conditional=True)
        )
    return BytesResult(first.requests, first, plain, conditional, plain_failed + failed)


def table(result: BytesResult) -> str:
    """The printed table: one line per round, then the saving."""
    rows = [f"{'round':<30} {'requests':>8} {'304s':>6} {'request B':>11} {'response B':>12} {'total B':>11} "
            f"{'B/poll':>8}"]  # fmt: skip
    for name, row in (("first (every document in full)", result.first), ("steady, without validators", result.plain),
                      ("steady, with validators", result.conditional)):  # fmt: skip
        rows.append(f"{name:<30} {row.requests:>8} {row.not_modified:>6} {row.request_bytes:>11,} "
                    f"{row.response_bytes:>12,} {row.total:>11,} {row.per_poll:>8,.0f}")  # fmt: skip
    rows.append(f"saving of a steady round: {result.saving:.1%} ({result.plain.per_poll:,.0f} B -> "
                f"{result.conditional.per_poll:,.0f} B per poll)")  # fmt: skip
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=1000, help="polls per round (default 1000)")
    parser.add_argument("--concurrency", type=int, default=100, help="polls in flight (default 100)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if nginx_binary() is None:
        print("bench_conditional: skipped: nginx is not installed (apt-get install nginx-light)", flush=True)
        return 0
    complete = True
    for gzip in (False, True):
        result = measure_bytes(args.targets, args.concurrency, gzip=gzip)
        print(
            f"conditional requests: bytes on the wire of one round of {result.targets} polls against "
            f"{nginx_version()}, gzip {'on' if gzip else 'off'} ($request_length + $bytes_sent from its access log)"
        )
        print(table(result), flush=True)
        if result.failed or not result.conditional.not_modified == result.conditional.requests == result.targets:
            complete = False
            print(f"bench_conditional: {result.failed} failed poll(s); {result.conditional.not_modified} of "
                  f"{result.conditional.requests} steady polls with validators answered 304")  # fmt: skip
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
