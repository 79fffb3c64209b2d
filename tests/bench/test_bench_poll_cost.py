"""The poll-cost benchmark runs end to end through nginx and the real daemon (tiny sizes) and prints both tables.

Not a performance test: it asserts that every figure is there and plausible, never how fast.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_poll_cost import FLEET_COLUMNS, PER_POLL_ROWS
from tests.conftest import require_tool

pytestmark = pytest.mark.slow  # nginx, a process per bare client and the real daemon

ROOT = Path(__file__).resolve().parents[2]


def test_it_prints_the_cost_per_poll_of_each_client_and_the_daemon_and_the_fleet_rounds() -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_poll_cost.py"), "--sizes", "40,80", "--wire-targets", "40",
         "--wire-rounds", "1", "--rounds", "1", "--interval", "3", "--bytes-targets", "40"],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

    header = next(line for line in out.splitlines() if line.lstrip().startswith("targets"))
    names = re.split(r"\s{2,}", header.strip())
    assert names == [name for name, _width, _cell in FLEET_COLUMNS]
    fleet: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] in ("40", "80") and len(cells) == len(names):
            fleet[cells[0]] = dict(zip(names, cells, strict=True))
    assert set(fleet) == {"40", "80"}, out
    for targets, row in fleet.items():
        assert row["polls"] == targets  # one steady round, every poll counted
        assert 0 < float(row["start"].rstrip("s")) < 120 and 0 < float(row["first"].rstrip("s")) < 120
        assert float(row["CPU ms/poll"]) > 0 and 20 < float(row["RSS MiB"]) <= float(row["peak MiB"])
        assert float(row["/metrics s"]) >= 0 and float(row["/metrics KiB"]) > 0  # a scrape of 40 takes < 5 ms
        assert 1 <= float(row["series/target"]) <= 12  # the default budget (metrics.detail basic)

    assert re.search(r"steady, with validators +40 +40 ", out), out  # every poll of the round a 304
    assert re.search(r"saving of a steady round: \d+\.\d%", out), out

    costs = {line.split()[0]: line.split() for line in out[out.index("CPU per unchanged poll") :].splitlines()[1:]}
    assert set(costs) == {name for name, _row in PER_POLL_ROWS} | {"daemon@40", "daemon@80"}, out
    assert costs["aiohttp"][2] == "1.00x"
    for name, cost in costs.items():
        assert float(cost[1]) > 0 and float(cost[2].rstrip("x")) > 0, (name, cost)
