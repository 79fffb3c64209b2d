"""The fleet benchmark runs end to end through a real nginx (tiny N, SQLite) and prints sane numbers.

Not a performance test: it asserts that every measured quantity is there and plausible, never how fast.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.slow  # nginx and the real daemon

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_fleet.py"


def run_bench(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=240, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def table_row(output: str, targets: int) -> dict[str, str]:
    """The row of ``targets`` keyed by the header's column names (header cells are separated by 2+ spaces)."""
    lines = output.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("targets"))
    names = re.split(r"\s{2,}", header.strip())
    row = next(line for line in lines if line.split() and line.split()[0] == str(targets))
    return dict(zip(names, row.split(), strict=True))


def number(cell: str) -> float:
    return float(cell.rstrip("sx").replace(",", ""))


def test_it_measures_a_small_fleet_through_nginx_and_prints_the_table() -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    output = run_bench("--targets", "40", "--backend", "sqlite", "--rounds", "1", "--round-timeout", "60")
    row = table_row(output, 40)
    assert row["failed"] == "0"
    for column in ("base cold", "base warm", "first", "steady", "start", "restart", "after restart"):
        assert 0 < number(row[column]) < 60, (column, row)
    assert 0 < number(row["steady x"]) < 100
    assert number(row["series"]) > 40  # one series per target at least
    assert number(row["/metrics KiB"]) > 0
    assert 20 < number(row["RSS MiB"]) <= number(row["peak MiB"])
    assert number(row["DB B/1k polls"]) >= 0
    assert "goals of issue 13" in output


def test_it_soaks_the_real_daemon_and_reports_its_start_up_and_cpu() -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    output = run_bench("--soak", "6", "--targets", "8", "--backend", "sqlite", "--interval", "2s", "--jitter", "0s",
                       "--sample", "2", "--scrape", "2")  # fmt: skip
    assert re.search(r"start-up: [0-9.]+s from process start to 'polling 8 of 8 target\(s\)'", output), output
    assert re.search(r"average CPU since start-up: [0-9.]+% of one core", output), output
    assert "daemon stopped with exit code 0" in output
