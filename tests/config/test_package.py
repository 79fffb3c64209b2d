"""The configuration package's shape (issue 17.2): one job per module, and a small ``__init__`` that only
re-exports the names the rest of the monitor imports from ``monitor.config``."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import monitor.config

PACKAGE = Path(monitor.config.__file__).parent

# what callers outside the package import from monitor.config (monitor/, tests/, bench/ before the split)
USED_NAMES = (
    "BASE", "NO_CLOUDS_YAML", "AlertmanagerChannel", "ChangesConfig", "ChannelSettings", "CloudConfig",
    "CloudsYamlCloud", "Config", "ConfigError", "HaConfig", "NotificationsConfig", "SlackChannel", "WebhookChannel",
    "apply_clouds_yaml", "load_config", "parse_config",
)  # fmt: skip
MODULES = (
    "auth", "catalog", "cloud", "clouds_yaml", "consumers", "errors", "loading", "models", "settings", "targets",
    "types", "webconfig",
)  # fmt: skip


def test_init_defines_nothing_and_re_exports_what_callers_import() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text("utf-8"))
    definitions = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
    assert not definitions, [node.name for node in definitions]
    assert ast.get_docstring(tree) and "May import" in (ast.get_docstring(tree) or "")
    for name in USED_NAMES:
        assert name in monitor.config.__all__, name
        assert getattr(monitor.config, name).__module__ != "monitor.config" if callable(getattr(monitor.config, name))\
            else True  # fmt: skip


def test_each_module_has_its_job_in_its_docstring_and_fits_in_one_read() -> None:
    found = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert found == set(MODULES)
    for name in MODULES:
        module = importlib.import_module(f"monitor.config.{name}")
        assert module.__doc__, name
        assert len((PACKAGE / f"{name}.py").read_text("utf-8").splitlines()) <= 400, name
