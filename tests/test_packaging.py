"""The installed package (not just the source tree) carries every module, migration and data file, and none
of the test machinery; the README's first command works from a plain install of the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.process import free_port

ROOT = Path(__file__).resolve().parent.parent
BUILD_INPUTS = ("pyproject.toml", "README.md", "monitor", "migrations")
"""What setuptools reads to build the wheel (copied, so the build never writes into the source tree)."""
INSTALL_TIMEOUT_S = 600  # dependencies come from the package index: generous on a loaded machine
SLOW_TEST_TIMEOUT_S = 2 * INSTALL_TIMEOUT_S + 300  # pytest-timeout counts the fixtures' builds too
SHIPPED_DATA = (
    "monitor/demo/documents/images.json",
    "monitor/demo/documents/image.json",
    "monitor/demo/documents/members.json",
    "monitor/demo/documents/member.json",
    "monitor/demo/server.py",
    "monitor/demo/loopback.py",
    "monitor/migrations/env.py",
    "monitor/migrations/script.py.mako",
    "monitor/web/templates/base.html",
    "monitor/web/templates/overview.html",
    "monitor/web/static/ui.css",
    "monitor/web/static/ui.js",
    "monitor/web/static/favicon.svg",
)
NOT_SHIPPED = (
    "monitor/simulator.py",
    "monitor/simulator_identity.py",
    "monitor/simserver.py",
    "monitor/simdata/images.json",
    "tests/support/regions.py",
    "tests/support/identity.py",
)
FAULT_MACHINERY = ("set_fault", "/_sim/", "gzip_bomb", "IdentitySimulator", "verify_aksk")
"""Names that only the test simulators define; no shipped module may contain them."""


def test_every_package_of_the_source_tree_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "monitor").rglob("__init__.py")}
    found |= {"monitor.migrations", "monitor.migrations.versions"}  # mapped from migrations/
    assert found == listed
    assert config["package-dir"]["monitor.migrations"] == "migrations"


def run(command: list[str], timeout: float, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """Run ``command``; returns its stdout, fails the test with its output when it exits non-zero."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False)
    assert result.returncode == 0, f"{command[:3]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built by pip from a clean copy of the build inputs (a stale ``build/`` in the
    source tree could otherwise leak removed modules into it)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(out), "-q"]
    run(command, INSTALL_TIMEOUT_S, cwd=out)
    (built,) = out.glob("schema_drift_monitor-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel (and its dependencies) installed; returns its bin/."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(venv)], 120, cwd=venv)
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], INSTALL_TIMEOUT_S, cwd=venv)
    return venv / "bin"


def shipped_modules(archive: zipfile.ZipFile) -> dict[str, str]:
    """Name -> source of every Python module in the wheel."""
    return {name: archive.read(name).decode("utf-8") for name in archive.namelist() if name.endswith(".py")}


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TEST_TIMEOUT_S)
def test_the_wheel_ships_the_demo_and_migrations_and_no_test_machinery(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        modules = shipped_modules(archive)
    migrations = {f"monitor/migrations/versions/{p.name}" for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert migrations and migrations <= names
    assert set(SHIPPED_DATA) <= names
    assert not names & set(NOT_SHIPPED)
    assert not [name for name in names if name.startswith("tests/") or "simulator" in name]
    assert not {(name, word) for name, text in modules.items() for word in FAULT_MACHINERY if word in text}


@pytest.mark.slow
@pytest.mark.timeout(SLOW_TEST_TIMEOUT_S)
def test_the_demo_runs_from_a_plain_install_of_the_wheel(installed: Path, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    command = [str(installed / "schema-drift-monitor"), "demo", "--duration", "12s", "--interval", "2s",
               "--change-after", "4s", "--listen", f"127.0.0.1:{free_port()}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert "demo: simulated regions cn-north-4, cn-east-3, ap-southeast-1 at http://127.0.0.1:" in result.stdout
    assert "first snapshot" in result.stderr
    assert "schema changed: 2 change(s), worst breaking" in result.stderr
    assert (tmp_path / "data" / "demo.db").stat().st_size > 0
