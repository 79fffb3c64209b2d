"""How configuration problems are told: each once, each naming its cloud by name and the field, each URL error
saying what the config in force allows (issues 18.1 and 18.8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
UNSET = "SDM_TEST_UNSET_SECRET"


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)


def _cloud(name: str = "c", **fields: Any) -> dict[str, Any]:
    return {"name": name, "endpoint": "https://ims.{region}.example", "regions": ["r1"], **fields}


def _password(**fields: Any) -> dict[str, Any]:
    return {"type": "password", "auth_url": "https://iam.example/v3", "username": "u", "user_domain_name": "d",
            "password": "p", **fields}  # fmt: skip


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "f.yaml")
    return info.value.problems


def test_a_problem_names_its_cloud_by_name_not_only_by_index() -> None:
    clouds = [_cloud(f"ok-{i}") for i in range(5)] + [_cloud("huawei-iam", auth=_password(password=f"${{{UNSET}}}"))]

    assert problems({"clouds": clouds}) == [
        f"clouds[5] (huawei-iam).auth.password: environment variable {UNSET} is not set"
    ]


@pytest.mark.parametrize(
    ("field", "auth"),
    [
        ("auth.token", {"type": "token", "token": f"${{{UNSET}}}"}),
        ("auth.password", _password(password=f"${{{UNSET}}}")),
        ("auth.password_file", _password(password=None, password_file=f"${{{UNSET}}}")),
        ("auth.application_credential_secret", {
            "type": "application_credential", "auth_url": "https://k.example/v3", "application_credential_id": "i",
            "application_credential_secret": f"${{{UNSET}}}"}),
        ("auth.secret_key", {"type": "aksk", "access_key": "AK", "secret_key": f"${{{UNSET}}}"}),
        ("auth.access_key", {"type": "aksk", "access_key": f"prefix-${{{UNSET}}}", "secret_key": "SK"}),
    ],
)  # fmt: skip
def test_an_unset_variable_is_one_problem_not_also_an_empty_value(field: str, auth: dict[str, Any]) -> None:
    # before: "... is not set" and then "... is empty" (or an unreadable file '') for the same cause
    assert problems({"clouds": [_cloud(auth={k: v for k, v in auth.items() if v is not None})]}) == [
        f"clouds[0] (c).{field}: environment variable {UNSET} is not set"
    ]


def test_an_unset_endpoint_variable_is_one_problem() -> None:
    assert problems({"clouds": [_cloud(endpoint=f"${{{UNSET}}}")]}) == [
        f"clouds[0] (c).endpoint: environment variable {UNSET} is not set"
    ]


def test_a_variable_shared_by_clouds_through_an_anchor_is_one_problem_naming_each_use(tmp_path: Path) -> None:
    path = tmp_path / "anchored.yaml"
    path.write_text(
        "clouds:\n"
        f"  - {{name: a, endpoint: 'https://a/{{region}}', regions: [r1], auth: &iam {yaml.safe_dump(_password(password='${' + UNSET + '}'), default_flow_style=True).strip()}}}\n"  # noqa: E501
        "  - {name: b, endpoint: 'https://b/{region}', regions: [r1], auth: *iam}\n"
        "  - {name: c, endpoint: 'https://c/{region}', regions: [r1], auth: *iam}\n"
    )

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.problems == [
        f"clouds[0] (a).auth.password: environment variable {UNSET} is not set "
        "(also used by clouds[1] (b).auth.password, clouds[2] (c).auth.password)"
    ]


def test_the_reference_config_with_only_the_readme_secret_lists_each_missing_variable_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 18.1: the old example gave "invalid configuration (30 problem(s))", by index, each variable twice
    reference = ROOT / "docs" / "config.reference.yaml"
    wanted = ("HWC_ACCOUNT", "HWC_IAM_USER", "HWC_IAM_PASSWORD", "HWC_AK", "HWC_SK", "HWC_PROJECT_AP_SOUTHEAST_1",
              "OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET")  # fmt: skip
    for name in wanted:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMS_AUTH_TOKEN", "token")

    with pytest.raises(ConfigError) as info:
        load_config(reference)

    told = info.value.problems
    assert sorted(next(n for n in wanted if f" {n} is not set" in line) for line in told) == sorted(wanted)
    assert all(" (huawei-" in line.split(".")[0] or " (openstack" in line.split(".")[0] for line in told), told
    assert all(line.split(": ", 1)[1].startswith("environment variable ") for line in told), told


def test_a_value_of_the_wrong_shape_is_one_sentence_without_library_internals() -> None:
    told = problems({"clouds": [_cloud(regions=[]), _cloud("d", regions="everywhere", services=5)]})

    assert told == [
        "clouds[0] (c).regions: lists no region: name at least one, or write auto",
        "clouds[1] (d).regions: expected a list of region names, or auto",
        "clouds[1] (d).services: expected a list of service types (compute, network, ...), or all",
    ]


def test_a_missing_auth_type_and_a_missing_field_are_sentences() -> None:
    no_password = {"type": "password", "auth_url": "https://k", "username": "u", "user_domain_name": "x"}
    told = problems({"clouds": [_cloud(auth={"token": "t"}), _cloud("d", auth=no_password)]})

    assert told == [
        "clouds[0] (c).auth: needs a type: none, token, password, application_credential, aksk or cloud",
        "clouds[1] (d).auth.password: is required",
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"endpoint": "ftp://x/{region}"}, "endpoint: must be an https:// URL (http:// needs allow_http), got ftp://"),
        ({"endpoint": "ftp://x/{region}", "allow_http": True},
         "endpoint: must be an http:// or https:// URL, got ftp://"),
        ({"endpoint_override": "ims.example", "allow_http": True},
         "endpoint_override: must be an http:// or https:// URL, got no scheme"),
        ({"endpoint": "http://x/{region}"},
         "endpoint: uses plain http://: use https://, or set allow_http: true for this cloud"),
        ({"auth": _password(auth_url="ftp://iam.example/v3")},
         "auth.auth_url: must be an https:// URL (http:// needs allow_http), got ftp://"),
        ({"auth": _password(auth_url="ftp://iam.example/v3"), "allow_http": True},
         "auth.auth_url: must be an http:// or https:// URL, got ftp://"),
    ],
)  # fmt: skip
def test_a_url_error_says_what_the_cloud_allows(fields: dict[str, Any], expected: str) -> None:
    # issue 18.8: the ftp-URL error said "https://" even with allow_http: true
    assert problems({"clouds": [_cloud(**fields)]}) == [f"clouds[0] (c).{expected}"]


def test_a_url_error_never_echoes_what_follows_the_scheme() -> None:
    [told] = problems({"clouds": [_cloud(endpoint="ftp://user:hunter2-pw@x/{region}")]})

    assert "hunter2-pw" not in told and told.endswith("got ftp://")


def test_the_database_url_error_lists_every_accepted_scheme() -> None:
    [told] = problems({"database": {"url": "mysql://db/x"}, "clouds": [_cloud()]})

    assert told == "database.url: must start with sqlite://, postgresql:// or postgresql+psycopg://"
