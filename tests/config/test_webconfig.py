"""The exporter-toolkit web configuration file: every key read with its default and meaning; every option the
port cannot honour refused by name; no secret in an error or a ``repr``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config import ConfigError, parse_config
from monitor.config.webconfig import load_web_config, parse_go_duration, parse_web_config

# bcrypt of "fakepassword" at cost 10, in the $2y$ spelling htpasswd writes (exporter-toolkit's decoy hash)
HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nnot-really-a-key-but-secret\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with a certificate, a key and a CA file (contents do not matter to the parser)."""
    for name in ("server.pem", "server.key", "ca.pem"):
        (tmp_path / name).write_text("PEM")
    return tmp_path


def web(folder: Path, data: Any) -> Path:
    path = folder / "web.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems(folder: Path, data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_web_config(web(folder, data))
    return str(info.value)


TLS = {"cert_file": "server.pem", "key_file": "server.key"}


def test_an_empty_file_is_plain_http_without_authentication(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("")
    settings = load_web_config(path)
    assert (settings.tls, settings.users, settings.headers, settings.rate_limit) == (None, {}, (), None)


def test_every_key_is_read_with_exporter_toolkits_defaults(files: Path) -> None:
    settings = load_web_config(web(files, {"tls_server_config": TLS, "basic_auth_users": {"prom": HASH}}))
    assert settings.tls is not None
    assert (settings.tls.client_auth, settings.tls.min_version, settings.tls.max_version) == (
        "NoClientCert", "TLS12", "TLS13",
    )  # fmt: skip
    assert settings.tls.prefer_server_cipher_suites is True
    assert settings.tls.cert_file == files / "server.pem" and settings.tls.key_file == files / "server.key"
    assert settings.user_names == ("prom",)
    assert settings.users["prom"].get_secret_value() == HASH


def test_relative_files_are_relative_to_the_web_config_folder(files: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "web.yml").write_text(yaml.safe_dump({"tls_server_config": {
        "cert_file": "../server.pem", "key_file": str(files / "server.key"),
        "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "../ca.pem",
    }}))  # fmt: skip
    tls = load_web_config(elsewhere / "web.yml").tls
    assert tls is not None
    assert tls.cert_file == elsewhere / "../server.pem" and tls.key_file == files / "server.key"
    assert tls.files == (elsewhere / "../server.pem", files / "server.key", elsewhere / "../ca.pem")


def test_mutual_tls_settings_are_kept(files: Path) -> None:
    tls_config = {**TLS, "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "ca.pem",
                  "client_allowed_sans": ["prometheus.example", "127.0.0.1"], "min_version": "TLS13",
                  "prefer_server_cipher_suites": False}  # fmt: skip
    tls = load_web_config(web(files, {"tls_server_config": tls_config})).tls
    assert tls is not None
    assert tls.client_auth == "RequireAndVerifyClientCert" and tls.client_ca_file == files / "ca.pem"
    assert tls.client_allowed_sans == ("prometheus.example", "127.0.0.1")
    assert tls.min_version == "TLS13" and tls.prefer_server_cipher_suites is False


def test_inline_certificate_and_key_are_accepted_and_the_key_is_not_shown(tmp_path: Path) -> None:
    settings = load_web_config(web(tmp_path, {"tls_server_config": {"cert": "CERT PEM", "key": KEY_PEM}}))
    assert settings.tls is not None and settings.tls.key_pem is not None
    assert settings.tls.key_pem.get_secret_value() == KEY_PEM
    assert "not-really-a-key" not in repr(settings) and HASH not in repr(settings)


def test_headers_rate_limit_and_http2_false(tmp_path: Path) -> None:
    data = {
        "http_server_config": {"http2": False, "headers": {
            "X-Frame-Options": "sameorigin", "Strict-Transport-Security": "max-age=31536000",
            "Content-Security-Policy": "",  # blank: not set
        }},
        "rate_limit": {"interval": "1m30s", "burst": 5},
    }  # fmt: skip
    settings = load_web_config(web(tmp_path, data))
    assert dict(settings.headers) == {"X-Frame-Options": "sameorigin", "Strict-Transport-Security": "max-age=31536000"}
    assert settings.rate_limit is not None and (settings.rate_limit.interval, settings.rate_limit.burst) == (90.0, 5)


def test_tls_is_off_when_no_tls_setting_is_given(tmp_path: Path) -> None:
    settings = load_web_config(web(tmp_path, {"tls_server_config": {"cert_file": "", "min_version": "TLS13"}}))
    assert settings.tls is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tls_server_config": {**TLS, "cipher_suites": ["TLS_AES_128_GCM_SHA256"]}},
         "tls_server_config.cipher_suites: Go cipher-suite names cannot be honoured"),
        ({"tls_server_config": {**TLS, "curve_preferences": ["X25519"]}},
         "tls_server_config.curve_preferences: Go curve names cannot be honoured"),
        ({"tls_server_config": {**TLS, "client_auth_type": "RequestClientCert", "client_ca_file": "ca.pem"}},
         "client_auth_type: RequestClientCert cannot be honoured"),
        ({"tls_server_config": {**TLS, "client_auth_type": "RequireAnyClientCert"}},
         "client_auth_type: RequireAnyClientCert cannot be honoured"),
        ({"http_server_config": {"http2": True}}, "http_server_config.http2: HTTP/2 cannot be honoured"),
    ],
)  # fmt: skip
def test_options_python_ssl_cannot_honour_are_refused_by_name(files: Path, data: Any, expected: str) -> None:
    assert expected in problems(files, data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"tls_config": TLS}, "tls_config: unknown key (did you mean tls_server_config?)"),
        ({"tls_server_config": {**TLS, "certfile": "x"}}, "tls_server_config.certfile: unknown key"),
        ({"http_server_config": {"headers": {"X-Powered-By": "me"}}}, "header 'X-Powered-By' cannot be configured"),
        ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}},
         "headers.X-Frame-Options: expected one of deny, sameorigin, got 'allow'"),
        ({"tls_server_config": {"cert_file": "server.pem"}}, "missing one of key or key_file"),
        ({"tls_server_config": {"key_file": "server.key"}}, "missing one of cert or cert_file"),
        ({"tls_server_config": {**TLS, "cert": "PEM"}}, "give cert or cert_file, not both"),
        ({"tls_server_config": {**TLS, "client_ca_file": "ca.pem"}}, "a client CA is configured without client_auth"),
        ({"tls_server_config": {**TLS, "client_auth_type": "RequireAndVerifyClientCert"}}, "needs client_ca_file"),
        ({"tls_server_config": {**TLS, "client_auth_type": "Sometimes"}}, "unknown value 'Sometimes'"),
        ({"tls_server_config": {**TLS, "client_auth_type": "VerifyClientCertIfGiven", "client_ca_file": "ca.pem",
                                "client_allowed_sans": ["x"]}}, "client_allowed_sans needs client_auth_type"),
        ({"tls_server_config": {**TLS, "min_version": "TLS13", "max_version": "TLS12"}}, "is above max_version"),
        ({"tls_server_config": {**TLS, "min_version": "SSL3"}}, "tls_server_config.min_version: Input should be"),
        ({"tls_server_config": {**TLS, "cert_file": "missing.pem"}}, "is not a readable file"),
        ({"rate_limit": {"interval": "1s"}}, "rate_limit.burst: must be at least 1"),
        ({"rate_limit": {"interval": "soon", "burst": 1}}, "expected a duration like 1s"),
        (["a", "list"], "(top level): expected a mapping"),
    ],
)  # fmt: skip
def test_invalid_files_are_refused_with_the_key_and_the_fix(files: Path, data: Any, expected: str) -> None:
    message = problems(files, data)
    assert expected in message, message
    assert str(files / "web.yml") in message


def test_every_problem_is_listed_at_once(files: Path) -> None:
    data = {"tls_server_config": {**TLS, "cipher_suites": ["X"], "curve_preferences": ["Y"]},
            "http_server_config": {"http2": True}}  # fmt: skip
    message = problems(files, data)
    assert "3 problem(s)" in message and "cipher_suites" in message and "curve_preferences" in message


def test_a_password_that_is_not_a_bcrypt_hash_is_refused_without_repeating_it(tmp_path: Path) -> None:
    message = problems(tmp_path, {"basic_auth_users": {"alice": "plain-text-Secret1", "bob": HASH[:-1]}})
    assert "user 'alice' is not a bcrypt hash" in message and "user 'bob' is not a bcrypt hash" in message
    assert "htpasswd -nBC 10" in message
    assert "plain-text-Secret1" not in message and HASH[:-1] not in message


def test_yaml_errors_do_not_quote_the_line(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {HASH}\n  bob: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    assert "not valid YAML" in str(info.value) and "line" in str(info.value) and HASH not in str(info.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the web configuration file: No such file"):
        load_web_config(tmp_path / "nope.yml")


def test_go_durations() -> None:
    assert [parse_go_duration(v) for v in ("1s", "250ms", "1m30s", "1.5h", 2, "0")] == [1, 0.25, 90, 5400, 2, 0]
    with pytest.raises(ValueError, match="expected a duration"):
        parse_go_duration("1 s")


def test_the_main_config_names_the_web_config_file(tmp_path: Path) -> None:
    config = parse_config({"http": {"web_config_file": "web.yml"}, "clouds": [{
        "name": "c", "endpoint": "https://x.example", "regions": ["r1"]}]})  # fmt: skip
    assert config.http.web_config_file == Path("web.yml")
    assert parse_web_config(None, str(tmp_path / "w.yml")).tls is None


def test_run_refuses_a_bad_web_config_file_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'db'}"}, "clouds": [
        {"name": "c", "endpoint": "https://x.example", "regions": ["r1"]}]}))  # fmt: skip
    bad = web(tmp_path, {"tls_server_config": {**TLS, "cipher_suites": ["TLS_RSA_WITH_AES_128_CBC_SHA"]}})
    assert main(["run", "--config", str(config), "--web.config.file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: tls_server_config.cipher_suites" in err
    assert not (tmp_path / "db").exists(), "nothing may start before the web configuration is accepted"


def test_demo_refuses_a_bad_web_config_file_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the demo writes data/ under the working directory
    bad = web(tmp_path, {"http_server_config": {"http2": True}})
    assert main(["demo", "--web.config.file", str(bad), "--duration", "1s", "--listen", "127.0.0.1:0"]) == 2
    assert "http_server_config.http2: HTTP/2 cannot be honoured" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
