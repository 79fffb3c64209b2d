"""The coordination benchmark runs end to end (tiny: 40 targets, 1 and 2 replicas) and prints sane numbers.

Not a performance test: it asserts that every figure is there and plausible, never how fast.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.pgbouncer import pgbouncer_binary

pytestmark = [pytest.mark.slow, pytest.mark.postgres]  # nginx, PgBouncer and PostgreSQL, real daemons

ROOT = Path(__file__).resolve().parents[2]


def test_it_measures_one_and_two_replicas_through_pgbouncer(pg_server: str) -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    pgbouncer_binary()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_replicas.py"), "--targets", "40", "--interval", "2s",
         "--window", "6", "--replicas", "1,2"],
        capture_output=True, text=True, timeout=240, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    cells = [line.split() for line in done.stdout.splitlines()]
    rows = {row[0]: row for row in cells if len(row) > 1 and row[1] != "vs"}
    for replicas in ("1", "2"):
        row = rows[replicas]
        assert row[1] == "40" and float(row[2].replace(",", "")) >= 40  # every target polled in the window
        assert 0.5 <= float(row[3]) <= 1.5  # about once per interval, not once per replica
        assert float(row[4]) > 0 and float(row[5]) > 0  # PgBouncer saw the replicas' queries
    assert "2 vs 1" in done.stdout
