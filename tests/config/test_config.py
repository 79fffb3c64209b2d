"""Config loading: the shipped example and the reference load; every mistake is reported in one message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import ConfigError, load_config, parse_config
from monitor.config.settings import PasswordSettings
from monitor.config.types import parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[2]


def _cloud(**overrides: object) -> dict[str, object]:
    cloud: dict[str, object] = {"name": "c", "endpoint": "https://x.{region}.example", "regions": ["r1"]}
    cloud.update(overrides)
    return cloud


EXAMPLE = ROOT / "config.example.yaml"
REFERENCE = ROOT / "docs" / "config.reference.yaml"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def variables(path: Path, *, comments: bool) -> set[str]:
    """The ``${VAR}`` names a file uses (in its YAML only, or in its comments too)."""
    lines = path.read_text("utf-8").splitlines()
    return {name for line in lines if comments or not line.lstrip().startswith("#") for name in _VARIABLE.findall(line)}


def test_the_shipped_example_needs_only_the_token_the_readme_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 18.1: README "Point it at real regions" exports IMS_AUTH_TOKEN and nothing else
    assert variables(EXAMPLE, comments=False) == {"IMS_AUTH_TOKEN"}
    assert "export IMS_AUTH_TOKEN=" in (ROOT / "README.md").read_text("utf-8")
    monkeypatch.setenv("IMS_AUTH_TOKEN", "MIIexample-token")
    config = load_config(EXAMPLE)
    assert [spec.url for spec in config.targets()] == [
        f"https://ims.cn-north-4.myhuaweicloud.com/v2/schemas/{schema}"
        for schema in ("images", "image", "members", "member")
    ]
    huawei = config.targets()[0]
    assert huawei.ignore.paths == ("/properties/images/items/properties/updated_at",)
    assert huawei.confirm_reads == 2 and config.api.token is None
    assert config.ha.replica is None and config.ha.expected_replicas == 1  # the ha block is commented out


def test_the_reference_config_loads_every_kind_of_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    header = REFERENCE.read_text("utf-8").split("clouds:", 1)[0]
    for name in variables(REFERENCE, comments=True):
        assert name in header, f"the reference's header does not name {name}"
        monkeypatch.setenv(name, f"example-{name.lower().replace('_', '-')}")
    config = load_config(REFERENCE)
    keys = {str(spec.key) for spec in config.targets()}
    assert "huawei/cn-north-4/images" in keys
    assert "glance/regionone/tasks" in keys
    # the discovered clouds have no targets before discovery; each Huawei service cloud has one per region
    assert len(keys) == 4 + 2 + 1 + 4 * 2 + 3
    auth_types = {cloud.name: cloud.auth.type for cloud in config.clouds}
    assert auth_types == {"huawei": "token", "huawei-iam": "password", "huawei-aksk": "aksk",
                          "openstack": "application_credential", "openstack-surface": "application_credential",
                          "huawei-ims": "password", "huawei-ecs": "password", "huawei-evs": "password",
                          "huawei-vpc": "password", "glance": "none"}  # fmt: skip
    surface = next(c for c in config.clouds if c.name == "openstack-surface")
    assert (surface.services, surface.regions, surface.schemas) == ("all", "auto", [])
    native = {s.key.cloud: s for s in config.targets() if s.key.region == "cn-north-4" and s.kind != "schema"}
    assert {cloud: (s.url, s.kind, s.service) for cloud, s in native.items()} == {
        "huawei-ims": ("https://ims.cn-north-4.myhuaweicloud.com/", "versions", "image"),
        "huawei-ecs": ("https://ecs.cn-north-4.myhuaweicloud.com/", "versions", "compute"),
        "huawei-evs": ("https://evs.cn-north-4.myhuaweicloud.com/", "versions", "block-storage"),
        "huawei-vpc": ("https://vpc.cn-north-4.myhuaweicloud.com/v2.0/extensions", "extensions", "network"),
    }
    iam = next(s for s in config.targets() if s.key.cloud == "huawei-iam" and s.key.region == "cn-east-3")
    assert isinstance(iam.auth, PasswordSettings)
    assert iam.auth.for_region("cn-east-3").project_name == "cn-east-3"
    tasks = next(s for s in config.targets() if s.key.schema == "tasks")
    assert tasks.url == "https://glance.regionone.example.org:9292/v2/schemas/tasks"
    image = next(s for s in config.targets() if s.key.cloud == "glance" and s.key.schema == "image")
    assert image.interval == 900
    assert image.ignore.min_severity is not None and image.ignore.min_severity.value == "warning"


def test_every_mistake_is_listed_in_one_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """
database: {url: "mysql://nope"}
http: {listen: "no-port"}
defaults: {interval: "5 parsecs", colour: blue}
clouds:
  - name: Huawei
    endpoint: "https://ims.{region}.example"
    regions: ["cn-north-4", "CN North"]
    auth: {type: magic}
"""
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    for expected in (
        "database.url",
        "http.listen",
        "defaults.interval",
        "defaults.colour: unknown key",
        "clouds[0] (Huawei).name",
        "clouds[0] (Huawei).regions",
        "clouds[0] (Huawei).auth: unknown type 'magic'",
    ):
        assert f"{path}: {expected}" in message, expected
    assert len(info.value.problems) == 7


def test_missing_environment_variable_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDM_UNSET_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        parse_config({"clouds": [_cloud(auth={"type": "token", "token": "${SDM_UNSET_TOKEN}"})]}, "f.yaml")
    assert info.value.problems == ["clouds[0] (c).auth.token: environment variable SDM_UNSET_TOKEN is not set"]


def test_environment_variable_is_substituted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDM_TEST_TOKEN", "tok-123")
    config = parse_config({"clouds": [_cloud(auth={"type": "token", "token": "${SDM_TEST_TOKEN}"})]})
    auth = config.clouds[0].auth
    assert auth.type == "token" and auth.resolve() == "tok-123"


def test_token_file_is_read_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    config = parse_config({"clouds": [_cloud(auth={"type": "token", "token_file": str(secret)})]})
    assert config.clouds[0].auth.resolve() == "from-file"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"clouds\[0\] \(c\)\.auth\.token_file: cannot read token_file"):
        parse_config({"clouds": [_cloud(auth={"type": "token", "token_file": str(tmp_path / "nope")})]})


def test_plain_http_needs_allow_http() -> None:
    with pytest.raises(ConfigError, match="allow_http"):
        parse_config({"clouds": [_cloud(endpoint="http://127.0.0.1:1/{region}")]})
    config = parse_config({"clouds": [_cloud(endpoint="http://127.0.0.1:1/{region}", allow_http=True)]})
    assert config.targets()[0].url == "http://127.0.0.1:1/r1/v2/schemas/images"


def test_unknown_auth_type_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"clouds\[0\] \(c\)\.auth: unknown type 'kerberos': use none, token"):
        parse_config({"clouds": [_cloud(auth={"type": "kerberos"})]})


def test_schema_settings_override_cloud_and_defaults() -> None:
    config = parse_config(
        {
            "defaults": {"interval": "5m", "timeout": "7s"},
            "clouds": [_cloud(interval="2m", schemas=["images", {"name": "member", "interval": "30s"}])],
        }
    )
    by_schema = {s.key.schema: s for s in config.targets()}
    assert by_schema["images"].interval == 120 and by_schema["member"].interval == 30
    assert by_schema["images"].timeout == 7


def test_token_never_appears_in_repr() -> None:
    config = parse_config({"clouds": [_cloud(auth={"type": "token", "token": "hunter2-secret"})]})
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" not in str(config.targets())


def test_no_clouds_is_an_error() -> None:
    with pytest.raises(ConfigError, match="at least one cloud"):
        parse_config({})


@pytest.mark.parametrize(("text", "seconds"), [("300s", 300), ("5m", 300), ("1h", 3600), (42, 42), ("250ms", 0.25)])
def test_durations_parse(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "size"), [("5MiB", 5 * 2**20), (1024, 1024), ("2KB", 2000)])
def test_sizes_parse(text: object, size: int) -> None:
    assert parse_size(text) == size


def test_config_check_command_exits_2_on_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("clouds: [{name: X, endpoint: ftp://x, regions: []}]\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "clouds[0] (X).name" in err and "clouds[0] (X).regions" in err


def test_config_check_command_lists_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("clouds: [{name: x, endpoint: 'https://{region}.example', regions: [a, b], schemas: [images]}]\n")
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 target(s)" in out and "x/b/images  https://b.example/v2/schemas/images" in out


def test_database_url_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "db-url"
    secret.write_text("postgresql+psycopg://monitor:pw-in-file@db:5432/drift\n")
    config = parse_config({"database": {"url_file": str(secret)}, "clouds": [_cloud()]})
    assert config.database.url.get_secret_value() == "postgresql+psycopg://monitor:pw-in-file@db:5432/drift"
    assert "pw-in-file" not in repr(config)
    with pytest.raises(ConfigError, match=r"database\.url_file: cannot read '.*missing'"):
        parse_config({"database": {"url_file": str(tmp_path / "missing")}, "clouds": [_cloud()]})


def test_notification_channels_validate_and_keep_urls_secret(tmp_path: Path) -> None:
    url_file = tmp_path / "slack"
    url_file.write_text("https://hooks.example/T000/B000/very-secret\n")
    config = parse_config(
        {
            "notifications": {
                "channels": [
                    {"name": "hook", "type": "webhook", "url": "https://h.example/x", "secret": "k"},
                    {"name": "slack", "type": "slack", "url_file": str(url_file), "min_severity": "breaking"},
                    {"name": "am", "type": "alertmanager", "url": "http://am:9093", "active_for": "30m"},
                ]
            },
            "clouds": [_cloud()],
        }
    )
    slack = config.notifications.channels[1]
    assert slack.url.get_secret_value() == "https://hooks.example/T000/B000/very-secret"
    assert "very-secret" not in repr(config)
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "notifications": {
                    "channels": [
                        {"name": "x", "type": "pager", "url": "https://p"},
                        {"name": "y", "type": "webhook", "url": "ftp://nope", "min_severity": "loud"},
                    ]
                },
                "clouds": [_cloud()],
            }
        )
    text = str(info.value)
    assert "notifications.channels[0] (x): unknown type 'pager': use webhook, slack or alertmanager" in text
    assert "notifications.channels[1] (y).url: must be an http:// or https:// URL" in text
    assert "notifications.channels[1] (y).min_severity" in text


def test_a_token_with_stray_whitespace_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDM_CRLF_TOKEN", "tok-from-crlf-file\r")
    with pytest.raises(ConfigError) as info:
        parse_config({"clouds": [_cloud(auth={"type": "token", "token": "${SDM_CRLF_TOKEN}"})]})
    assert "clouds[0] (c).auth.token: token contains whitespace" in str(info.value)
    assert "tok-from-crlf-file" not in str(info.value)


def test_a_database_url_with_a_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"database\.url: is not a valid database URL"):
        parse_config({"database": {"url": "postgresql+psycopg://u:pw@db:notaport/x"}, "clouds": [_cloud()]})


def test_duplicates_and_unknown_expected_windows_are_named() -> None:
    with pytest.raises(ConfigError, match="region 'r1' is listed twice"):
        parse_config({"clouds": [_cloud(regions=["r1", "r1"])]})
    with pytest.raises(ConfigError, match="cloud 'c' is listed twice"):
        parse_config({"clouds": [_cloud(), _cloud()]})
    window = {"cloud": "nope", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    with pytest.raises(ConfigError, match=r"changes\.expected: unknown cloud 'nope'"):
        parse_config({"changes": {"expected": [window]}, "clouds": [_cloud()]})


def test_metrics_detail_is_basic_unless_full_and_nothing_else() -> None:
    assert parse_config({"clouds": [_cloud()]}).metrics.detail == "basic"
    assert parse_config({"clouds": [_cloud()], "metrics": {"detail": "full"}}).metrics.detail == "full"
    with pytest.raises(ConfigError) as info:
        parse_config({"clouds": [_cloud()], "metrics": {"detail": "verbose", "series": 5}}, "f.yaml")
    message = str(info.value)
    assert "metrics.detail" in message and "'basic'" in message and "'full'" in message
    assert "metrics.series" in message  # an unknown key is a mistake too
