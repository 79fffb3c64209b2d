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


# test_pgbouncer.py collects every scenario of test_repository.py again, through PgBouncer: it imports that
# module for its tests, not for helpers (those live in tests/support/ and the conftest.py files)
RERUNS = {("tests/store/test_pgbouncer.py", "tests.store.test_repository")}


def imported_test_modules(source: str, module: str) -> set[str]:
    """The test modules (``tests.….test_*``) that ``source``, the text of the module named ``module``, imports:
    by ``import``, by ``from … import`` of a name or of the module itself, absolute or relative."""
    package = module.split(".")[:-1]
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join([*base, *([node.module] if node.module else [])])
            imported.add(origin)
            imported.update(f"{origin}.{alias.name}" for alias in node.names)
    return {name for name in imported if name.startswith("tests.") and name.split(".")[-1].startswith("test_")}


def test_no_module_of_the_tests_imports_a_test_module() -> None:
    """Helpers shared between test modules live in tests/support/ (or a conftest.py), never in a test module."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        relative = path.relative_to(ROOT)
        module = ".".join(relative.with_suffix("").parts)
        for name in sorted(imported_test_modules(path.read_text(encoding="utf-8"), module)):
            if (str(relative), name) not in RERUNS:
                found.append(f"{relative} imports {name}")
    assert found == []


def test_the_import_check_sees_every_form_of_import() -> None:
    module, api = "tests.web.test_ui", "tests.web.test_api"
    assert imported_test_modules(f"from {api} import Live", module) == {api}
    assert imported_test_modules("from tests.web import test_api", module) == {api}
    assert imported_test_modules(f"import {api}", module) == {api}
    assert imported_test_modules("from .test_api import Live", module) == {api}
    assert imported_test_modules("from ..poll import test_fetch", module) == {"tests.poll.test_fetch"}
    assert imported_test_modules("from tests.support.live_api import Live", module) == set()
