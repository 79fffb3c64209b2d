"""The shape of the code, read from its source: small functions, and the doors between the packages that
import-linter's layers do not hold by themselves."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

MONITOR = ROOT / "monitor"
ADMIN_DOOR = "monitor.store.admin"


def functions(path: Path) -> list[tuple[str, int]]:
    """(name, length in lines) of every function and method in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_function_is_longer_than_60_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}::{name} ({length} lines)"
        for path in sorted(MONITOR.rglob("*.py"))
        for name, length in functions(path)
        if length > 60
    ]
    assert long == []


def test_the_command_line_and_web_reach_the_store_only_through_read_and_the_admin_door() -> None:
    sources = [MONITOR / "cli.py", *sorted((MONITOR / "web").glob("*.py"))]
    crossing = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources
        for name in imported(path)
        if name.startswith("monitor.store") and name not in (ADMIN_DOOR, "monitor.store")
        and not name.startswith(ADMIN_DOOR + ".")
    }  # fmt: skip
    assert crossing == set()
    assert ADMIN_DOOR in imported(MONITOR / "cli.py")
    assert not any(name.startswith("monitor.store") for p in (MONITOR / "web").glob("*.py") for name in imported(p))
