"""The bytes benchmark runs end to end through a real nginx (a small fleet) and counts what it claims.

Not a performance test: it asserts that nginx answered the steady round with validators by 304s only, the one
without them by full documents, and that the table says so; bytes are counted, never timed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_conditional import measure_bytes
from tests.conftest import require_tool

pytestmark = pytest.mark.slow  # nginx and two fleets of polls

ROOT = Path(__file__).resolve().parents[2]


def test_a_steady_round_with_validators_is_all_304s_and_costs_fewer_bytes() -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    result = measure_bytes(targets=22, concurrency=5)  # rounded up to whole regions: 24

    assert result.targets == 24 and result.failed == 0
    assert (result.first.requests, result.plain.requests, result.conditional.requests) == (24, 24, 24)
    assert result.first.not_modified == result.plain.not_modified == 0
    assert result.conditional.not_modified == 24
    assert result.plain.response_bytes == result.first.response_bytes  # the same documents, in full
    assert result.conditional.request_bytes > result.plain.request_bytes  # the validators quoted
    assert 0 < result.conditional.total < result.plain.total and 0 < result.saving < 1


def test_the_command_prints_a_table_and_the_saving_with_gzip_off_and_on() -> None:
    require_tool("nginx", "SDM_REQUIRE_NGINX", "nginx")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_conditional.py"), "--targets", "8", "--concurrency", "4"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("steady, with validators")]
    assert [row.split()[3:5] for row in rows] == [["8", "8"], ["8", "8"]]  # requests, 304s: gzip off, then on
    assert "gzip off" in done.stdout and "gzip on" in done.stdout
    assert done.stdout.count("saving of a steady round:") == 2
