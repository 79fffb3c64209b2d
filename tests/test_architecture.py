"""The import contracts bite: each forbidden import, added to a scratch copy of the package, breaks the
contract that names it (``lint-imports`` exits 1 naming it), while the copy as it is keeps every contract.

A contract that kept passing with the import added would be decoration, not architecture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT

# (contract id, module that gets the import, the forbidden import)
BITES: list[tuple[str, str, str]] = [
    ("layers", "store/repository.py", "import monitor.signals.metrics"),
    ("layers", "fleet/live.py", "import monitor.read.model"),
    ("layers", "judge/canonical.py", "import monitor.config"),
    ("fetch-is-http-only", "poll/fetch.py", "import monitor.store.repository"),
    ("poll-read-independent", "poll/service.py", "import monitor.read.model"),
    ("judge-store-independent", "store/tables.py", "import monitor.judge.canonical"),
    ("judge-pure", "judge/regions.py", "import httpx"),
    ("judge-pure", "judge/kinds/versions.py", "import sqlalchemy"),
    ("store-knows-no-consumers", "store/repository.py", "import prometheus_client"),
    ("read-not-live", "read/model.py", "import monitor.fleet.live"),
    ("read-not-live", "read/reports.py", "import prometheus_client"),
    ("web-not-fleet-live", "web/ui.py", "import monitor.fleet.live"),
    ("web-cli-through-read", "web/api.py", "import monitor.store.repository"),
    ("web-cli-through-read", "cli.py", "import monitor.store.database"),
    ("sqlalchemy-in-store", "read/model.py", "import sqlalchemy"),
    ("prometheus-in-metrics", "fleet/live.py", "import prometheus_client"),
    ("httpx-in-fetch", "auth/manager.py", "import httpx"),
    ("apscheduler-deepdiff", "poll/service.py", "import apscheduler"),
    ("pydantic-yaml-in-config", "store/engine.py", "import yaml"),
    ("web-framework-in-web", "read/model.py", "import fastapi"),
    ("domain-stdlib-only", "domain.py", "import deepdiff"),
    ("dulwich-jsonlogger", "read/reports.py", "import dulwich"),
    ("os-service-types-in-discovery", "config/catalog.py", "import os_service_types"),
    ("bcrypt-in-guard", "web/api.py", "import bcrypt"),
    ("aiohttp-in-fetch", "poll/service.py", "import aiohttp"),
    ("auth-takes-plain-settings", "auth/manager.py", "import monitor.config.models"),
    ("store-records-plain", "store/records.py", "import sqlalchemy"),
    ("fleet-rules-pure", "fleet/rules.py", "import monitor.store.records"),
    ("fleet-rules-pure", "fleet/rules.py", "import monitor.config"),
    ("auth-takes-plain-settings", "targets/discovery.py", "import pydantic"),
]


def lint_imports(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the package in ``tree`` (its pyproject.toml), limited to ``contracts``."""
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"]
    for contract in contracts:
        command += ["--contract", contract]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A copy of the package and its contracts, outside the repository (the installed package is not read)."""
    shutil.copytree(ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    yield tmp_path


def test_the_package_as_it_is_keeps_every_contract(scratch: Path) -> None:
    result = lint_imports(scratch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


@pytest.mark.parametrize(("contract", "module", "line"), BITES, ids=[f"{c}:{m}:{line}" for c, m, line in BITES])
def test_a_forbidden_import_breaks_its_contract(scratch: Path, contract: str, module: str, line: str) -> None:
    target = scratch / "monitor" / module
    target.write_text(target.read_text("utf-8") + f"\n{line}  # noqa\n", "utf-8")
    result = lint_imports(scratch, contract)
    assert result.returncode == 1, f"{contract} kept with {line!r} in {module}:\n{result.stdout}{result.stderr}"
    assert "BROKEN" in result.stdout


def test_every_contract_has_an_id_and_a_bite() -> None:
    """A new contract gets a case above; the ids are what ``--contract`` selects."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    contracts = text.count("[[tool.importlinter.contracts]]")
    ids = {line.split('"')[1] for line in text.splitlines() if line.startswith("id = ")}
    assert len(ids) == contracts
    assert ids == {contract for contract, _, _ in BITES}
