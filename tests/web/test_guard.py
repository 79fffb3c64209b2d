"""The guarded port over real loopback sockets: TLS (and mutual TLS), basic auth with its cache, the bearer
token, headers, the rate limit, reloading without a restart, and the ``healthcheck`` command.

Certificates are made for the test (:mod:`tests.support.pki`); bcrypt hashes use cost 4 so the tests stay fast
(the cost does not change what is checked).
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml
from cryptography import x509
from pydantic import SecretStr

from monitor.cli import main
from monitor.config import ConfigError
from monitor.signals.metrics import Metrics
from monitor.web.app import create_app
from monitor.web.guard import Guard
from monitor.web.server import WebServer, guarded_server
from tests.support.pki import Pair, issue, make_ca
from tests.support.process import free_port, wait_for

PASSWORD = "correct-horse-9f1e"
OTHER_PASSWORD = "battery-staple-77aa"
TOKEN = "bearer-token-for-guard-tests-3c4d"


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: Path
    server: Pair
    renewed: Pair  # another certificate for the same names, for rotation
    client: tuple[Path, Path]  # signed by the client CA, SAN prometheus.test
    stranger: tuple[Path, Path]  # signed by a CA the server does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, client_ca = make_ca("guard test CA"), make_ca("guard client CA")
    ca.write(folder, "ca")
    client_ca.write(folder, "client-ca")
    prometheus = [x509.DNSName("prometheus.test")]
    return Pki(
        folder=folder,
        ca=folder / "ca.pem",
        server=issue(ca, "127.0.0.1", server=True),
        renewed=issue(ca, "127.0.0.1 renewed", server=True),
        client=issue(client_ca, "prometheus", server=False, names=prometheus).write(folder, "client"),
        stranger=issue(make_ca("unknown CA"), "someone", server=False, names=prometheus).write(folder, "stranger"),
    )


@dataclass
class Port:
    """A server behind a guard, the web configuration file it reads, and how to reach it."""

    guard: Guard
    server: WebServer
    web_config: Path
    pki: Pki

    @property
    def url(self) -> str:
        return f"{self.guard.scheme}://127.0.0.1:{self.server.port}"

    def client(self, cert: tuple[Path, Path] | None = None, **kwargs: Any) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if cert is not None:
            context.load_cert_chain(*map(str, cert))
        return httpx.Client(base_url=self.url, verify=context, timeout=5, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.get(path, **kwargs)

    def rewrite(self, data: dict[str, Any]) -> None:
        self.web_config.write_text(yaml.safe_dump(data))


def tls_config(folder: Path, **extra: Any) -> dict[str, Any]:
    return {"cert_file": str(folder / "server.pem"), "key_file": str(folder / "server.key"), **extra}


PortFactory = Callable[..., Port]
"""Starts a guarded server for web configuration data (and an API token); stopped after the test."""


@pytest.fixture
def port_factory(pki: Pki, tmp_path: Path) -> Iterator[PortFactory]:
    started: list[Port] = []
    pki.server.write(tmp_path, "server")

    def start(data: dict[str, Any], token: str | None = TOKEN) -> Port:
        path = tmp_path / "web.yml"
        path.write_text(yaml.safe_dump(data))
        guard = Guard.load(path, SecretStr(token) if token else None)
        server = guarded_server(create_app(Metrics(), lambda: {"scheduler": True}), "127.0.0.1", 0, guard)
        server.start()
        started.append(Port(guard, server, path, pki))
        return started[-1]

    yield start
    for port in started:
        port.server.stop()
        port.guard.close()


@pytest.fixture
def basic(port_factory: PortFactory, tmp_path: Path) -> Port:
    """TLS and one basic-auth user."""
    users = {"prom": bcrypt_hash(PASSWORD)}
    return port_factory({"tls_server_config": tls_config(tmp_path), "basic_auth_users": users})


def test_a_user_reads_over_tls_and_everyone_else_is_refused(basic: Port) -> None:
    assert basic.url.startswith("https://")
    assert basic.get("/metrics", auth=("prom", PASSWORD)).status_code == 200
    for auth in (("prom", "wrong"), ("nobody", PASSWORD), ("prom", "")):
        refused = basic.get("/metrics", auth=auth)
        assert refused.status_code == 401, auth
        assert refused.headers["www-authenticate"].startswith('Basic realm="schema-drift-monitor"')
    assert basic.get("/metrics").status_code == 401
    assert basic.get("/metrics", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
    api = basic.get("/api/targets")
    assert api.status_code == 401 and "authentication required" in api.json()["error"]


def test_the_api_bearer_token_authenticates_on_its_own(basic: Port) -> None:
    assert basic.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert basic.get("/metrics", headers={"Authorization": "Bearer not-the-token"}).status_code == 401


def test_without_an_api_token_a_bearer_header_is_refused(port_factory: PortFactory, tmp_path: Path) -> None:
    port = port_factory({"basic_auth_users": {"prom": bcrypt_hash(PASSWORD)}}, token=None)
    assert port.url.startswith("http://")
    assert port.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 401
    assert port.get("/metrics", auth=("prom", PASSWORD)).status_code == 200


def test_health_routes_answer_without_credentials(basic: Port) -> None:
    for path in ("/healthz", "/readyz", "/-/healthy", "/-/ready"):
        assert basic.get(path).status_code == 200, path
    assert basic.get("/-/healthy").text == "ok\n"


def test_plain_http_to_the_tls_port_gets_no_http_answer(basic: Port) -> None:
    with socket.create_connection(("127.0.0.1", basic.server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = sock.recv(100)
    assert not answer.startswith(b"HTTP/"), answer
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{basic.server.port}/healthz", timeout=5)


def test_a_verified_password_costs_one_bcrypt_then_comes_from_the_cache(basic: Port) -> None:
    with basic.client(auth=("prom", PASSWORD)) as client:
        assert all(client.get("/metrics").status_code == 200 for _ in range(20))
    with basic.client(auth=("prom", "wrong")) as client:
        assert all(client.get("/metrics").status_code == 401 for _ in range(5))
    credentials = basic.guard.state.credentials
    assert credentials.verifications == 2
    assert repr(credentials) == "Credentials(users=['prom'], token=set)"


def test_the_landing_page_links_what_the_port_serves_when_the_ui_is_off(basic: Port) -> None:
    page = basic.get("/", auth=("prom", PASSWORD))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<a href="/metrics">' in page.text and '<a href="/healthz">' in page.text
    assert basic.get("/").status_code == 401


def test_configured_headers_go_on_every_response_but_a_page_keeps_its_own(port_factory: PortFactory) -> None:
    headers = {"Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "deny",
               "Strict-Transport-Security": "max-age=60"}  # fmt: skip
    port = port_factory({"http_server_config": {"headers": headers}})
    health = port.get("/healthz")
    assert {name: health.headers[name] for name in headers} == headers
    landing = port.get("/")
    assert landing.headers["content-security-policy"] == "default-src 'none'"  # the page's own, stricter one
    assert landing.headers["strict-transport-security"] == "max-age=60"


def test_the_rate_limit_answers_429_but_never_to_the_health_routes(port_factory: PortFactory) -> None:
    port = port_factory({"rate_limit": {"interval": "1h", "burst": 2}})
    assert [port.get("/metrics").status_code for _ in range(3)] == [200, 200, 429]
    assert port.get("/healthz").status_code == 200


@pytest.mark.parametrize("auth", ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"])
def test_mutual_tls_verifies_client_certificates(
    port_factory: PortFactory, tmp_path: Path, pki: Pki, auth: str
) -> None:
    settings = tls_config(tmp_path, client_auth_type=auth, client_ca_file=str(pki.folder / "client-ca.pem"))
    port = port_factory({"tls_server_config": settings})
    with port.client(cert=pki.client) as client:
        assert client.get("/metrics").status_code == 200
    with port.client(cert=pki.stranger) as client, pytest.raises(httpx.TransportError):
        client.get("/metrics")
    with port.client() as client:
        if auth == "RequireAndVerifyClientCert":  # a client without a certificate is refused in the handshake
            with pytest.raises(httpx.TransportError):
                client.get("/healthz")
        else:
            assert client.get("/healthz").status_code == 200


def test_client_allowed_sans_refuses_a_trusted_certificate_with_other_names(
    port_factory: PortFactory, tmp_path: Path, pki: Pki
) -> None:
    ca = str(pki.folder / "client-ca.pem")
    settings = tls_config(tmp_path, client_auth_type="RequireAndVerifyClientCert", client_ca_file=ca,
                          client_allowed_sans=["grafana.test"])  # fmt: skip
    port = port_factory({"tls_server_config": settings})
    with port.client(cert=pki.client) as client, pytest.raises(httpx.TransportError):
        client.get("/metrics")
    settings["client_allowed_sans"] = ["grafana.test", "prometheus.test"]
    port.rewrite({"tls_server_config": settings})
    assert port.guard.check()
    with port.client(cert=pki.client) as client:
        assert client.get("/metrics").status_code == 200


def test_a_minimum_tls_version_refuses_older_clients(port_factory: PortFactory, tmp_path: Path, pki: Pki) -> None:
    port = port_factory({"tls_server_config": tls_config(tmp_path, min_version="TLS13")})
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.TransportError):
        httpx.get(port.url + "/healthz", verify=context, timeout=5)
    assert port.get("/healthz").status_code == 200


def test_an_inline_certificate_and_key_are_served(port_factory: PortFactory, pki: Pki) -> None:
    port = port_factory({"tls_server_config": {"cert": pki.server.cert_pem, "key": pki.server.key_pem}})
    assert served_serial(port) == pki.server.cert.serial_number


def served_serial(port: Port) -> int:
    """The serial number of the certificate a new connection to ``port`` is shown."""
    context = ssl.create_default_context(cafile=str(port.pki.ca))
    with (
        socket.create_connection(("127.0.0.1", port.server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(basic: Port, pki: Pki) -> None:
    folder = basic.web_config.parent
    assert served_serial(basic) == pki.server.cert.serial_number
    with basic.client(auth=("prom", PASSWORD)) as kept:
        assert kept.get("/metrics").status_code == 200
        pki.renewed.write(folder, "server")  # as cert-manager or certbot would: the files change, not the config
        assert basic.guard.check()
        assert served_serial(basic) == pki.renewed.cert.serial_number
        assert kept.get("/metrics").status_code == 200  # an open keep-alive connection carries on


def test_changed_users_apply_at_once_and_the_watcher_notices_by_itself(basic: Port, tmp_path: Path) -> None:
    basic.rewrite(
        {"tls_server_config": tls_config(tmp_path), "basic_auth_users": {"grafana": bcrypt_hash(OTHER_PASSWORD)}}
    )
    assert basic.guard.reload("test")
    assert basic.get("/metrics", auth=("grafana", OTHER_PASSWORD)).status_code == 200
    assert basic.get("/metrics", auth=("prom", PASSWORD)).status_code == 401

    basic.guard._interval = 0.05  # the watcher's period, shortened for the test
    basic.guard.watch()
    basic.rewrite({"tls_server_config": tls_config(tmp_path), "basic_auth_users": {"prom": bcrypt_hash(PASSWORD)}})
    wait_for(lambda: basic.get("/metrics", auth=("prom", PASSWORD)).status_code == 200, 10, "the watcher's reload")


def test_a_bad_file_later_keeps_the_last_good_one_and_says_so(
    basic: Port, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_hash = bcrypt_hash(OTHER_PASSWORD)
    bad = [
        {"tls_server_config": tls_config(tmp_path, cipher_suites=["TLS_AES_128_GCM_SHA256"]),
         "basic_auth_users": {"prom": secret_hash}},
        {"basic_auth_users": {"prom": secret_hash}},  # TLS off: needs a restart
        {"tls_server_config": tls_config(tmp_path), "basic_auth_users": {"prom": secret_hash[:-2]}},
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="monitor.web.guard"):
        for data in bad:
            basic.rewrite(data)
            assert not basic.guard.check()
            assert not basic.guard.check(), "an unchanged bad file is reported once, not at every look"
        basic.web_config.write_text("tls_server_config: [\n")
        assert not basic.guard.reload()
    assert basic.guard.failed_reloads == 4 and basic.guard.reloads == 0
    assert basic.get("/metrics", auth=("prom", PASSWORD)).status_code == 200
    assert caplog.text.count("the last good one stays in force") == 4
    assert "cipher_suites" in caplog.text and "turning TLS on or off needs a restart" in caplog.text
    assert secret_hash[:20] not in caplog.text and PASSWORD not in caplog.text


def test_a_certificate_that_appears_after_a_failed_reload_is_picked_up_by_the_next_look(
    basic: Port, tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    later = tmp_path / "later"
    users = {"prom": bcrypt_hash(PASSWORD)}
    settings = {"cert_file": str(later / "server.pem"), "key_file": str(later / "server.key")}
    with caplog.at_level(logging.ERROR, logger="monitor.web.guard"):
        basic.rewrite({"tls_server_config": settings, "basic_auth_users": users})  # its files are not there yet
        assert not basic.guard.check() and not basic.guard.check()
        assert caplog.text.count("is not a readable file") == 2  # cert_file and key_file, in one report
    later.mkdir()
    pki.renewed.write(later, "server")  # the config file itself does not change again
    assert basic.guard.check()
    assert served_serial(basic) == pki.renewed.cert.serial_number


def test_certificate_problems_are_clear_errors(tmp_path: Path, pki: Pki) -> None:
    pki.server.write(tmp_path, "server")
    pki.renewed.write(tmp_path, "other")
    cases = {
        "not PEM, or the key does not match": tls_config(tmp_path, key_file=str(tmp_path / "other.key")),
        "cannot load the client CA": tls_config(tmp_path, client_auth_type="RequireAndVerifyClientCert",
                                                client_ca_file=str(tmp_path / "server.key")),
    }  # fmt: skip
    for expected, settings in cases.items():
        path = tmp_path / "web.yml"
        path.write_text(yaml.safe_dump({"tls_server_config": settings}))
        with pytest.raises(ConfigError, match=expected):
            Guard.load(path, None)


def test_an_encrypted_key_is_refused_instead_of_prompting(tmp_path: Path, pki: Pki) -> None:
    from cryptography.hazmat.primitives import serialization

    pki.server.write(tmp_path, "server")
    encrypted = pki.server.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(b"passphrase"))  # fmt: skip
    (tmp_path / "server.key").write_bytes(encrypted)
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump({"tls_server_config": tls_config(tmp_path)}))
    with pytest.raises(ConfigError, match="the private key is encrypted"):
        Guard.load(path, None)


def monitor_config(folder: Path, port: int, web_config: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({
        "http": {"listen": f"127.0.0.1:{port}", "web_config_file": str(web_config)},
        "clouds": [{"name": "c", "endpoint": "https://x.example", "regions": ["r1"]}],
    }))  # fmt: skip
    return path


def healthcheck(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["healthcheck", *args])
    return code, capsys.readouterr().out


def test_healthcheck_uses_the_scheme_and_trusts_the_configured_certificate(
    basic: Port, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = monitor_config(tmp_path, basic.server.port, basic.web_config)
    code, out = healthcheck("--config", str(config), capsys=capsys)
    assert (code, out) == (0, f"healthy: https://127.0.0.1:{basic.server.port}/healthz answered 200\n")

    plain = tmp_path / "plain.yml"
    plain.write_text("{}")
    code, out = healthcheck("--config", str(config), "--web.config.file", str(plain), capsys=capsys)
    assert (
        code == 1 and out.startswith(f"unhealthy: http://127.0.0.1:{basic.server.port}/healthz") and out.endswith("\n")
    )

    closed = monitor_config(tmp_path, free_port(), basic.web_config)
    code, out = healthcheck("--config", str(closed), capsys=capsys)
    assert code == 1 and out.startswith("unhealthy: https://127.0.0.1:") and out.count("\n") == 1


def test_healthcheck_presents_a_client_certificate_under_mutual_tls(
    port_factory: PortFactory, tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tls_config(tmp_path, client_auth_type="RequireAndVerifyClientCert",
                          client_ca_file=str(pki.folder / "client-ca.pem"))  # fmt: skip
    port = port_factory({"tls_server_config": settings})
    config = monitor_config(tmp_path, port.server.port, port.web_config)
    assert healthcheck("--config", str(config), capsys=capsys)[0] == 1
    cert, key = map(str, pki.client)
    code, out = healthcheck("--config", str(config), "--client-cert", cert, "--client-key", key, capsys=capsys)
    assert (code, out.split(":")[0]) == (0, "healthy")


def test_healthcheck_reports_an_unreadable_web_config_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = monitor_config(tmp_path, free_port(), tmp_path / "missing.yml")
    code, out = healthcheck("--config", str(config), capsys=capsys)
    assert code == 1 and out.startswith("unhealthy: ") and "cannot read the web configuration file" in out
    assert out.count("\n") == 1
