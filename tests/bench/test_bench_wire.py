"""The wire benchmark runs end to end through a real nginx (40 URLs, one round) and prints sane numbers.

Not a performance test: it asserts that every client was measured, read every document right, and that
the figures are there and plausible, never how fast.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_wire import CLIENTS, measure_here
from bench.fleet import copy_documents
from bench.nginx import Nginx
from tests.conftest import require_tool

pytestmark = pytest.mark.slow  # nginx and a Python process per client

ROOT = Path(__file__).resolve().parents[2]


def test_it_measures_every_client_and_the_fetcher_of_another_commit() -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_wire.py"), "--targets", "40", "--concurrency", "10",
         "--rounds", "1", "--before", "HEAD"],
        capture_output=True, text=True, timeout=240, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout[done.stdout.index("CPU us/req") :].splitlines()[1:]
    rows = {line.split()[0]: line.split() for line in table if line.strip()}
    assert set(rows) == {*CLIENTS, "fetcher@before"}, rows
    for name, row in rows.items():
        cpu, ratio = float(row[2]), float(row[4].rstrip("x"))
        assert 0 < cpu < 100_000 and ratio > 0, (name, row)
    assert rows["aiohttp"][4] == "1.00x"


def test_a_client_can_be_measured_from_another_script_on_uvloop(tmp_path: Path) -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    with Nginx(copy_documents(tmp_path)) as server:
        result = measure_here("fetcher", server.base_url, targets=20, concurrency=5, rounds=2, loop="uvloop")
    assert result.error is None and result.requests == 20 and result.loop == "uvloop"
    assert 0 < result.cpu_min_s <= result.cpu_per_request_s <= result.cpu_max_s
    assert Path(result.source) == ROOT


def test_it_profiles_one_client() -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_wire.py"), "--profile", "fetcher", "--targets", "20",
         "--concurrency", "5"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "function calls per request" in done.stdout and "fetch.py" in done.stdout
