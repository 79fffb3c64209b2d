"""The page benchmark of ``GET /api/targets`` runs end to end at a tiny N and prints sane numbers.

Not a performance test: it asserts that every quantity is there and plausible, and that the walk it times listed
every target once (the benchmark raises otherwise), never how fast.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_api_targets import measure_pages
from bench.targets_fill import DEVIATING_EVERY

pytestmark = pytest.mark.slow  # fills databases and serves them over uvicorn, as the other bench tests

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_api_targets.py"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_measure_pages_fills_serves_and_walks_every_page(backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "postgresql":
        request.getfixturevalue("pg_server")  # skips (or fails under SDM_REQUIRE_POSTGRES) without PostgreSQL
    result = measure_pages(backend, 2 * DEVIATING_EVERY * 4, limit=30, repeat=2)
    assert result.targets == 400 and result.pages == 14 and len(result.walk) == 14
    for seconds in (result.cold_s, result.first_s, result.middle_s, result.last_s, result.slowest_s):
        assert 0 < seconds < 30
    assert result.slowest_s == max(result.walk)


def test_the_command_prints_a_row_per_size_and_the_goal_line() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--targets", "40,120", "--backend", "sqlite", "--limit", "25", "--repeat", "1"],
        capture_output=True, text=True, timeout=240, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = re.split(r"\s{2,}", next(line for line in lines if line.lstrip().startswith("backend")).strip())
    rows = [dict(zip(header, line.split(), strict=True)) for line in lines if line.split()[:1] == ["sqlite"]]
    assert [row["targets"] for row in rows] == ["40", "120"]
    assert [row["pages"] for row in rows] == ["2", "5"]
    assert rows[0]["x middle"] == "1.00x" and float(rows[1]["x middle"].rstrip("x")) > 0
    assert all(0 < float(row[column]) < 30_000 for row in rows for column in ("first ms", "middle ms", "walk max"))
    assert "issue 20: a page in <= 300 ms at any size:" in done.stdout
