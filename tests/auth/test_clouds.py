"""``auth: {type: cloud}``: clouds.yaml, secure.yaml and ``OS_*`` as openstacksdk finds them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.auth import clouds
from monitor.config import CloudConfig, ConfigError, apply_clouds_yaml, parse_config
from monitor.config.auth import ApplicationCredentialAuth, CloudsYamlAuth, PasswordAuth, TokenAuth
from monitor.config.settings import PasswordSettings

PASSWORD = "s3cret-Passw0rd-{not-a-placeholder}"
SECRET = "app-cred-secret-7f3e9d"
TOKEN = "gAAAAAB-static-token-1234"
AUTH_URL = "https://keystone.example.com/v3"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and working directory, no OS_* variables, and no site-wide clouds.yaml."""
    for name in list(os.environ):
        if name.startswith("OS_") or name in ("XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "SNAP_REAL_HOME"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    monkeypatch.setattr(clouds, "_site_config_dirs", list)  # /etc/openstack of this machine stays out
    return home


def _write(path: Path, clouds_: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"clouds": clouds_}), encoding="utf-8")
    return path


def _password_cloud(**extra: Any) -> dict[str, Any]:
    return {
        "auth": {
            "auth_url": AUTH_URL,
            "username": "alice",
            "password": PASSWORD,
            "project_name": "demo",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        **extra,
    }


def _cloud(name: str | None = "mycloud", **fields: Any) -> CloudConfig:
    data: dict[str, Any] = {"name": "x", "endpoint": "https://ims.{region}.example.com", **fields}
    data["auth"] = {"type": "cloud", "cloud": name}
    return CloudConfig.model_validate(data)


def resolve(cloud: CloudConfig) -> CloudConfig:
    """The cloud completed from clouds.yaml, as loading a config does."""
    assert isinstance(cloud.auth, CloudsYamlAuth)
    return apply_clouds_yaml(cloud, clouds.resolve(cloud.auth.cloud))


def _error(cloud: CloudConfig) -> str:
    with pytest.raises(ValueError) as info:
        resolve(cloud)
    message = str(info.value)
    for secret in (PASSWORD, SECRET, TOKEN):
        assert secret not in message
    return message


def test_password_cloud_in_the_current_directory_gives_auth_regions_and_ca_bundle(home: Path) -> None:
    ca = Path.cwd() / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    _write(Path.cwd() / "clouds.yaml", {"mycloud": _password_cloud(regions=["r1", "r2"], cacert=str(ca))})

    cloud = resolve(_cloud())

    assert isinstance(cloud.auth, PasswordAuth)
    assert cloud.auth.auth_url == AUTH_URL
    assert (cloud.auth.username, cloud.auth.project_name) == ("alice", "demo")
    assert (cloud.auth.user_domain_name, cloud.auth.project_domain_name) == ("Default", "Default")
    assert cloud.auth.password.get_secret_value() == PASSWORD
    assert cloud.regions == ["r1", "r2"]
    assert cloud.ca_bundle == ca
    assert cloud.insecure is False


def test_secure_yaml_supplies_the_password(home: Path) -> None:
    public = _password_cloud(regions=["r1"])
    del public["auth"]["password"]
    _write(Path.cwd() / "clouds.yaml", {"mycloud": public})
    _write(Path.cwd() / "secure.yaml", {"mycloud": {"auth": {"password": PASSWORD}}})

    cloud = resolve(_cloud())

    assert isinstance(cloud.auth, PasswordAuth)
    assert cloud.auth.password.get_secret_value() == PASSWORD
    assert cloud.auth.username == "alice"


def test_os_client_config_file_is_used_before_the_search_path(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(Path.cwd() / "clouds.yaml", {"mycloud": _password_cloud(regions=["from-cwd"])})
    elsewhere = _write(home / "elsewhere" / "my-clouds.yaml", {"mycloud": _password_cloud(regions=["from-env"])})
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(elsewhere))

    assert resolve(_cloud()).regions == ["from-env"]


def test_clouds_yaml_in_the_user_config_directory_is_found(home: Path) -> None:
    _write(home / ".config" / "openstack" / "clouds.yaml", {"mycloud": _password_cloud(regions=["r1"])})

    cloud = resolve(_cloud())

    assert isinstance(cloud.auth, PasswordAuth) and cloud.regions == ["r1"]


def test_application_credential_cloud(home: Path) -> None:
    _write(
        Path.cwd() / "clouds.yaml",
        {
            "appcred": {
                "auth_type": "v3applicationcredential",
                "auth": {
                    "auth_url": AUTH_URL,
                    "application_credential_id": "ac-id-1",
                    "application_credential_secret": SECRET,
                },
                "region_name": "r1",
            }
        },
    )

    cloud = resolve(_cloud("appcred"))

    assert isinstance(cloud.auth, ApplicationCredentialAuth)
    assert cloud.auth.application_credential_id == "ac-id-1"
    assert cloud.auth.application_credential_secret.get_secret_value() == SECRET
    assert cloud.auth.auth_url == AUTH_URL
    assert cloud.regions == ["r1"]


def test_an_application_credential_drops_the_project_scope_it_cannot_use(home: Path) -> None:
    auth = {"auth_url": AUTH_URL, "application_credential_id": "ac", "application_credential_secret": SECRET,
            "project_name": "demo", "project_domain_name": "Default"}  # fmt: skip
    _write(Path.cwd() / "clouds.yaml", {"c": {"auth_type": "v3applicationcredential", "auth": auth, "regions": ["r1"]}})

    cloud = resolve(_cloud("c"))

    assert isinstance(cloud.auth, ApplicationCredentialAuth)
    assert cloud.auth.project_name is None and cloud.auth.project_domain_name is None


def test_applicationcredential_alias_is_accepted(home: Path) -> None:
    auth = {"auth_url": AUTH_URL, "application_credential_id": "ac", "application_credential_secret": SECRET}
    _write(Path.cwd() / "clouds.yaml", {"c": {"auth_type": "applicationcredential", "auth": auth, "regions": ["r1"]}})

    assert isinstance(resolve(_cloud("c")).auth, ApplicationCredentialAuth)


def test_token_cloud_becomes_a_static_token(home: Path) -> None:
    _write(
        Path.cwd() / "clouds.yaml",
        {"tok": {"auth_type": "v3token", "auth": {"auth_url": AUTH_URL, "token": TOKEN}, "regions": ["r1"]}},
    )

    cloud = resolve(_cloud("tok"))

    assert isinstance(cloud.auth, TokenAuth)
    assert cloud.auth.resolve() == TOKEN


def test_cloud_without_auth_type_with_only_a_token_is_a_token_cloud(home: Path) -> None:
    _write(Path.cwd() / "clouds.yaml", {"tok": {"auth": {"auth_url": AUTH_URL, "token": TOKEN}, "regions": ["r1"]}})

    cloud = resolve(_cloud("tok"))

    assert isinstance(cloud.auth, TokenAuth) and cloud.auth.resolve() == TOKEN


def test_os_cloud_names_the_cloud_when_the_config_does_not(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(
        Path.cwd() / "clouds.yaml",
        {"one": _password_cloud(regions=["r1"]), "two": _password_cloud(regions=["r2", "r3"])},
    )
    monkeypatch.setenv("OS_CLOUD", "two")

    assert resolve(_cloud(None)).regions == ["r2", "r3"]


def test_os_variables_make_a_password_cloud_when_no_cloud_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "OS_AUTH_URL": AUTH_URL,
        "OS_USERNAME": "bob",
        "OS_PASSWORD": PASSWORD,
        "OS_PROJECT_NAME": "proj",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "regionone",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    cloud = resolve(_cloud(None))

    assert isinstance(cloud.auth, PasswordAuth)
    assert (cloud.auth.auth_url, cloud.auth.username, cloud.auth.project_name) == (AUTH_URL, "bob", "proj")
    assert cloud.auth.password.get_secret_value() == PASSWORD
    assert cloud.regions == ["regionone"]


def test_os_token_without_auth_type_makes_a_token_cloud(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_AUTH_URL", AUTH_URL)
    monkeypatch.setenv("OS_TOKEN", TOKEN)

    cloud = resolve(_cloud(None, regions=["r1"]))

    assert isinstance(cloud.auth, TokenAuth) and cloud.auth.resolve() == TOKEN


def test_no_cloud_named_and_nothing_in_the_environment_is_an_error(home: Path) -> None:
    # a single cloud in clouds.yaml is not picked silently (openstacksdk's loader would)
    _write(Path.cwd() / "clouds.yaml", {"only": _password_cloud(regions=["r1"])})

    assert "no cloud named" in _error(_cloud(None))


def test_unknown_cloud_is_named_in_the_error(home: Path) -> None:
    _write(Path.cwd() / "clouds.yaml", {"mycloud": _password_cloud(regions=["r1"])})

    message = _error(_cloud("nope"))

    assert "'nope' not found" in message and "mycloud" in message


def test_missing_clouds_yaml_says_where_it_looked(home: Path) -> None:
    message = _error(_cloud("mycloud"))

    assert "'mycloud' not found" in message and str(home) in message


def test_unsupported_auth_type_is_refused_without_showing_the_secret(home: Path) -> None:
    cloud = _password_cloud(regions=["r1"], auth_type="v3oidcpassword")
    _write(Path.cwd() / "clouds.yaml", {"mycloud": cloud})

    message = _error(_cloud())

    assert "'v3oidcpassword' is not supported" in message and "v3applicationcredential" in message


def test_missing_required_field_is_reported_without_values(home: Path) -> None:
    cloud = _password_cloud(regions=["r1"])
    del cloud["auth"]["user_domain_name"]
    del cloud["auth"]["project_domain_name"]
    _write(Path.cwd() / "clouds.yaml", {"mycloud": cloud})

    message = _error(_cloud())

    assert "user_domain_name" in message and "input_value" not in message


def test_missing_auth_url_is_reported(home: Path) -> None:
    cloud = _password_cloud(regions=["r1"])
    del cloud["auth"]["auth_url"]
    _write(Path.cwd() / "clouds.yaml", {"mycloud": cloud})

    assert "auth_url" in _error(_cloud())


def test_secrets_never_reach_errors_or_logs(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # openstacksdk str.format()s top-level values: a secret with braces would end up in a KeyError
    monkeypatch.setenv("OS_AUTH_URL", AUTH_URL)
    monkeypatch.setenv("OS_AUTH_TYPE", "password")
    monkeypatch.setenv("OS_USERNAME", "bob")
    monkeypatch.setenv("OS_PASSWORD", PASSWORD)
    monkeypatch.setenv("OS_APPLICATION_CREDENTIAL_SECRET", "leak{leakedpart}")
    caplog.set_level(logging.DEBUG)

    message = _error(_cloud(None))

    assert "leak" not in message and "placeholder" in message
    assert PASSWORD not in caplog.text and "leakedpart" not in caplog.text


def test_the_config_wins_over_clouds_yaml(home: Path) -> None:
    ca = Path.cwd() / "ca.pem"
    ca.write_text("x", encoding="utf-8")
    _write(
        Path.cwd() / "clouds.yaml",
        {
            "mycloud": _password_cloud(
                regions=["r1", "r2"],
                image_endpoint_override="https://other.example.com",
                cacert=str(ca),
                verify=False,
                interface="internal",
            )
        },
    )

    own_ca = Path.cwd() / "own-ca.pem"
    own_ca.write_text("x", encoding="utf-8")

    cloud = resolve(_cloud(regions=["mine"], insecure=False, discovery={"interface": "admin"}, cacert=str(own_ca)))

    assert cloud.regions == ["mine"]
    assert cloud.endpoint == "https://ims.{region}.example.com" and cloud.endpoint_override is None
    assert cloud.insecure is False
    assert cloud.discovery.interface == "admin"
    assert cloud.ca_bundle == own_ca


def test_clouds_yaml_fills_endpoint_tls_and_interface_left_unset(home: Path) -> None:
    cert, key = Path.cwd() / "client.pem", Path.cwd() / "client.key"
    cert.write_text("c", encoding="utf-8")
    key.write_text("k", encoding="utf-8")
    _write(
        Path.cwd() / "clouds.yaml",
        {
            "mycloud": _password_cloud(
                regions=["r1"],
                image_endpoint_override="https://ims.example.com",
                cert=str(cert),
                key=str(key),
                verify=False,
                interface="internal",
            )
        },
    )

    cloud = resolve(CloudConfig.model_validate({"name": "x", "auth": {"cloud": "mycloud"}}))

    assert cloud.endpoint_override == "https://ims.example.com"
    assert (cloud.cert, cloud.key) == (cert, key)
    assert cloud.insecure is True
    assert cloud.discovery.interface == "internal"


def test_values_that_differ_only_by_region_become_region_templates(home: Path) -> None:
    # openstacksdk expands {region_name} in auth_url and top-level values, not in the rest of auth:
    # a project per region is written as per-region values
    regions = [{"name": r, "values": {"auth": {"project_name": r}}} for r in ("cn-north-4", "ap-southeast-1")]
    cloud = _password_cloud(regions=regions, image_endpoint_override="https://ims.{region_name}.myhuaweicloud.com")
    cloud["auth"]["auth_url"] = "https://iam.{region_name}.myhuaweicloud.com/v3"
    _write(Path.cwd() / "clouds.yaml", {"mycloud": cloud})

    resolved = resolve(CloudConfig.model_validate({"name": "x", "auth": {"cloud": "mycloud"}}))

    assert isinstance(resolved.auth, PasswordAuth)
    assert resolved.auth.auth_url == "https://iam.{region}.myhuaweicloud.com/v3"
    assert resolved.auth.project_name == "{region}"
    settings = resolved.credentials()
    assert isinstance(settings, PasswordSettings) and settings.for_region("cn-north-4").project_name == "cn-north-4"
    assert resolved.regions == ["cn-north-4", "ap-southeast-1"]
    assert resolved.base_url("ap-southeast-1") == "https://ims.ap-southeast-1.myhuaweicloud.com"


def test_region_placeholder_in_clouds_yaml_gets_a_hint(home: Path) -> None:
    cloud = _password_cloud(regions=["r1"], image_endpoint_override="https://ims.{region}.example.com")
    _write(Path.cwd() / "clouds.yaml", {"mycloud": cloud})

    assert "{region_name}" in _error(_cloud(endpoint=None))


def test_other_per_region_differences_are_refused(home: Path) -> None:
    cloud = _password_cloud(regions=["r1", {"name": "r2", "values": {"auth": {"password": "other-" + PASSWORD}}}])
    _write(Path.cwd() / "clouds.yaml", {"mycloud": cloud})

    message = _error(_cloud())

    assert "auth.password differs between the regions r1, r2" in message and "other-" not in message


def test_tenant_name_is_taken_as_project_name(home: Path) -> None:
    cloud = _password_cloud(regions=["r1"])
    cloud["auth"]["tenant_name"] = cloud["auth"].pop("project_name")
    _write(Path.cwd() / "clouds.yaml", {"mycloud": cloud})

    resolved = resolve(_cloud())

    assert isinstance(resolved.auth, PasswordAuth) and resolved.auth.project_name == "demo"


def test_cloud_without_any_region_is_reported_as_missing_regions(home: Path) -> None:
    _write(Path.cwd() / "clouds.yaml", {"mycloud": _password_cloud()})

    assert "regions is required" in _error(_cloud())
    assert resolve(_cloud(regions="auto")).regions == "auto"


def test_remote_vendor_profile_is_not_fetched(home: Path) -> None:
    _write(Path.cwd() / "clouds.yaml", {"mycloud": _password_cloud(profile="https://cloud.example.com")})

    assert "remote vendor profiles are not fetched" in _error(_cloud())


def test_a_config_with_a_clouds_yaml_cloud_needs_the_reader() -> None:
    data = {"clouds": [{"name": "x", "endpoint": "https://e.example", "auth": {"cloud": "mycloud"}}]}

    with pytest.raises(ConfigError) as info:
        parse_config(data)  # no clouds.yaml reader: openstacksdk is not installed

    assert "type cloud needs openstacksdk" in str(info.value)


def test_parse_config_resolves_clouds_yaml_into_targets(home: Path) -> None:
    _write(Path.cwd() / "clouds.yaml", {"mycloud": _password_cloud(regions=["r1", "r2"])})

    config = parse_config(
        {"clouds": [{"name": "x", "endpoint": "https://ims.{region}.example.com", "auth": {"cloud": "mycloud"}}]},
        clouds_yaml=clouds.resolve,
    )

    assert isinstance(config.clouds[0].auth, PasswordAuth)
    assert sorted({t.key.region for t in config.targets()}) == ["r1", "r2"]
    assert config.targets()[0].url == "https://ims.r1.example.com/v2/schemas/images"


def test_parse_config_reports_a_clouds_yaml_problem_as_config_error(home: Path) -> None:
    _write(Path.cwd() / "clouds.yaml", {"mycloud": _password_cloud(regions=["r1"])})

    with pytest.raises(ConfigError) as info:
        parse_config(
            {"clouds": [{"name": "x", "endpoint": "https://ims.{region}.example.com", "auth": {"cloud": "other"}}]},
            clouds_yaml=clouds.resolve,
        )

    assert "clouds[0] (x).auth: cloud 'other' not found" in str(info.value)
    assert PASSWORD not in str(info.value)
