"""The plain settings the configuration builds for credentials and discovery (issue 17.4): frozen standard-library
data, secrets that never print themselves, and the only thing ``auth/`` and ``targets/discovery.py`` import from
the configuration."""

from __future__ import annotations

import ast
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from monitor.config import parse_config
from monitor.config.settings import (
    AkSkSettings,
    ApplicationCredentialSettings,
    NoAuthSettings,
    PasswordSettings,
    Secret,
    TokenSettings,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-never-printed-7d1c"
SECRET = "app-secret-never-printed-93ab"
SK = "sk-never-printed-51fe"
TOKEN = "tok-never-printed-0c2e"


def _cloud(name: str, auth: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": name, "endpoint": "https://ims.{region}.example", "regions": ["r1", "r2"], "auth": auth, **fields}


CONFIG = {
    "clouds": [
        _cloud("none", {"type": "none"}),
        _cloud("token", {"type": "token", "token": TOKEN}),
        _cloud("password", {"type": "password", "auth_url": "https://iam.{region}.example/v3", "username": "u",
                            "user_domain_name": "acct", "password": PASSWORD, "project_name": "{region}",
                            "timeout": "3s"}),
        _cloud("appcred", {"type": "application_credential", "auth_url": "https://k.example/v3",
                           "application_credential_id": "ac1", "application_credential_secret": SECRET}),
        _cloud("aksk", {"type": "aksk", "access_key": "AK1", "secret_key": SK,
                        "project_ids": {"r1": "p1", "r2": "p2"}}),
    ]
}  # fmt: skip


def test_every_target_carries_plain_frozen_settings_for_its_credentials() -> None:
    by_cloud = {spec.key.cloud: spec.auth for spec in parse_config(CONFIG).targets() if spec.key.region == "r2"}

    assert by_cloud["none"] == NoAuthSettings()
    assert by_cloud["token"] == TokenSettings(token=Secret(TOKEN))
    password = by_cloud["password"]
    assert isinstance(password, PasswordSettings) and password.per_region and password.timeout == 3.0
    regional = password.for_region("r2")
    assert (regional.auth_url, regional.project_name) == ("https://iam.r2.example/v3", "r2")
    assert regional.password.get_secret_value() == PASSWORD and regional.scope_label() == "project r2"
    assert password.domain_scoped().domain_name == "acct" and password.domain_scoped().project_name is None
    appcred = by_cloud["appcred"]
    assert isinstance(appcred, ApplicationCredentialSettings) and appcred.domain_scoped() is appcred
    assert appcred.scope_label() == "application credential ac1"
    aksk = by_cloud["aksk"]
    assert isinstance(aksk, AkSkSettings) and aksk.project_for("r2") == "p2" and aksk.project_for("r9") is None
    for settings in by_cloud.values():
        assert dataclasses.is_dataclass(settings) and not hasattr(settings, "model_fields"), settings
        assert settings.__dataclass_params__.frozen
        for field in dataclasses.fields(settings):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(settings, field.name, None)
        hash(settings)  # targets are compared and kept in sets


def test_no_secret_shows_in_repr_str_format_or_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    config = parse_config(CONFIG)
    specs = config.targets()
    shown = [repr(specs), str(specs), f"{specs}", repr([cloud.settings() for cloud in config.clouds])]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("specs: %s %r", specs, [s.auth for s in specs])
    for secret in (PASSWORD, SECRET, SK, TOKEN):
        assert not [text for text in [*shown, caplog.text] if secret in text], secret
    assert repr(Secret("x")) == "Secret('**********')" and f"{Secret('x')}" == "**********"


def test_a_cloud_gives_discovery_its_regions_services_and_filters() -> None:
    data = {"clouds": [{"name": "os", "regions": "auto", "services": ["compute"], "allow_http": True,
                        "discovery": {"source": "catalog", "include": "r.*", "exclude": "r9", "refresh": "2m"},
                        "auth": {"type": "password", "auth_url": "http://k.example/v3", "user_id": "u1",
                                 "password": PASSWORD, "project_id": "p"}}]}  # fmt: skip
    settings = parse_config(data).clouds[0].settings()

    assert settings.regions is None and settings.services == ("compute",) and not settings.watches_schemas
    assert settings.endpoint is None and settings.base_url("r1") is None and settings.allow_http
    assert settings.discovery.refresh == 120 and settings.discovery.wants("r1") and not settings.discovery.wants("r9")
    assert not settings.discovery.wants("x1")
    assert isinstance(settings.auth, PasswordSettings) and not settings.auth.per_region


def _config_imports(path: Path) -> set[str]:
    """Every module the file imports (``from a.b import c`` counts as ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize(
    "path",
    [*sorted((ROOT / "monitor" / "auth").glob("*.py")), ROOT / "monitor" / "targets" / "discovery.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_credentials_and_discovery_import_only_the_plain_settings_of_the_configuration(path: Path) -> None:
    # lint-imports holds the same line (pyproject.toml); this names the file that crosses it
    imports = _config_imports(path)
    config = {name for name in imports if name.startswith("monitor.config")}
    assert config <= {"monitor.config.settings"} | {n for n in config if n.startswith("monitor.config.settings.")}
    assert not {name for name in imports if name.split(".")[0] in ("pydantic", "yaml")}
