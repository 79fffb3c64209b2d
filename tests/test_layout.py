"""The shape of the code, read from its source: small functions, few modules at the top, packages that say what
they own. (The doors between packages are import-linter's contracts, proven by tests/test_architecture.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

MONITOR = ROOT / "monitor"


def functions(path: Path) -> list[tuple[str, int]]:
    """(name, length in lines) of every function and method in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_no_function_is_longer_than_60_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}::{name} ({length} lines)"
        for path in sorted(MONITOR.rglob("*.py"))
        for name, length in functions(path)
        if length > 60
    ]
    assert long == []


def test_the_top_level_holds_at_most_eight_modules_beside_the_packages() -> None:
    """The folders say where a poll, a rule, a read and a signal live; the top holds only the composition root,
    the command line, the plain types and logging (and the package's own two files)."""
    modules = sorted(path.name for path in MONITOR.glob("*.py"))
    assert len(modules) <= 8, modules


def test_every_package_says_what_it_owns_and_what_it_may_import() -> None:
    packages = sorted(path.parent for path in MONITOR.rglob("__init__.py"))
    silent = []
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
        if len(doc) < 40 or (package.parent == MONITOR and "May import" not in doc):
            silent.append(str(package.relative_to(ROOT)))
    assert silent == []
