"""The installed package (not just the source tree) carries every module, migration and data file."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_of_the_source_tree_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "monitor").rglob("__init__.py")}
    found |= {"monitor.migrations", "monitor.migrations.versions"}  # mapped from migrations/
    assert found == listed
    assert config["package-dir"]["monitor.migrations"] == "migrations"
