"""TLS against a real HTTPS server on loopback with certificates made for the test (FAULTS 19).

A private CA signs the region server's certificate (for 127.0.0.1); a second CA signs the monitor's
client certificate for the mutual-TLS cases. Verification is on unless the cloud says ``insecure``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.auth.manager import AuthManager, warn_insecure
from monitor.config import Config, parse_config
from monitor.domain import FailureReason
from monitor.poll.fetch import Fetcher, FetchError
from monitor.signals.metrics import Metrics
from tests.support.fetching import fetch as fetch_spec
from tests.support.identity import IdentitySimulator, region_authorizer
from tests.support.pki import issue, make_ca
from tests.support.regions import Simulator


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: tuple[Path, Path]
    client_ca: Path
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]  # a client certificate from a CA the server does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, client_ca, other_ca = make_ca("test region CA"), make_ca("test client CA"), make_ca("unknown CA")
    ca.write(folder, "ca")
    client_ca.write(folder, "client-ca")
    return Pki(
        ca=folder / "ca.pem",
        server=issue(ca, "127.0.0.1", server=True).write(folder, "server"),
        client_ca=folder / "client-ca.pem",
        client=issue(client_ca, "schema-drift-monitor", server=False).write(folder, "client"),
        stranger=issue(other_ca, "someone else", server=False).write(folder, "stranger"),
    )


def server_context(pki: Pki, *, require_client: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, pki.server))
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(pki.client_ca))
    return context


@pytest.fixture
def https(pki: Pki) -> Iterator[Simulator]:
    with Simulator(["r1"], tls=server_context(pki)) as sim:
        yield sim


@pytest.fixture
def mutual(pki: Pki) -> Iterator[Simulator]:
    with Simulator(["r1"], tls=server_context(pki, require_client=True)) as sim:
        yield sim


def cloud(sim: Simulator, **settings: Any) -> Config:
    entry = {"name": "c", "endpoint": sim.endpoint_template(), "regions": ["r1"], "schemas": ["images"], **settings}
    return parse_config({"defaults": {"timeout": "3s", "retries": 0}, "clouds": [entry]}, "test")


def fetch(config: Config) -> bytes:
    return fetch_spec(config.targets()[0])


def failure(config: Config) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(config)
    return info.value


def test_a_certificate_from_an_unknown_ca_is_a_tls_failure(https: Simulator) -> None:
    error = failure(cloud(https))
    assert error.reason is FailureReason.TLS and "CERTIFICATE_VERIFY_FAILED" in str(error)


def test_a_custom_ca_bundle_is_trusted_in_addition_to_the_usual_ones(https: Simulator, pki: Pki) -> None:
    assert b'"images"' in fetch(cloud(https, cacert=str(pki.ca)))
    assert b'"images"' in fetch(cloud(https, ca_bundle=str(pki.ca)))  # the older name still works


def test_insecure_polls_without_verification_only_when_written_and_warns(
    https: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    config = cloud(https, insecure=True)
    assert b'"images"' in fetch(config)
    with caplog.at_level(logging.WARNING):
        warn_insecure(config.clouds)
    assert "TLS certificates are NOT verified" in caplog.text


def test_a_client_certificate_is_presented_when_the_server_asks(mutual: Simulator, pki: Pki) -> None:
    cert, key = pki.client
    assert b'"images"' in fetch(cloud(mutual, cacert=str(pki.ca), cert=str(cert), key=str(key)))


def test_no_or_a_wrong_client_certificate_fails_as_tls_or_connect(mutual: Simulator, pki: Pki) -> None:
    # TLS 1.3 sends the server's refusal after the client's handshake finished: some stacks see it as the
    # connection being reset rather than a TLS alert. Either way the poll fails and nothing is retried forever.
    for settings in ({}, {"cert": str(pki.stranger[0]), "key": str(pki.stranger[1])}):
        error = failure(cloud(mutual, cacert=str(pki.ca), **settings))
        assert error.reason in (FailureReason.TLS, FailureReason.CONNECT), (settings, error.reason, str(error))


# --- the identity service over HTTPS ------------------------------------------------------------------


@pytest.fixture
def https_identity(pki: Pki) -> Iterator[IdentitySimulator]:
    with IdentitySimulator(tls=server_context(pki)) as identity:
        identity.add_user("monitor", "tls-test-password", domain="acme")
        identity.add_project("r1", domain="acme")
        yield identity


def keystone_cloud(sim: Simulator, identity: IdentitySimulator, **settings: Any) -> Config:
    auth = {"type": "password", "auth_url": identity.auth_url, "username": "monitor", "password": "tls-test-password",
            "user_domain_name": "acme", "project_name": "{region}"}  # fmt: skip
    return cloud(sim, auth=auth, **settings)


def poll_with_auth(config: Config) -> bytes:
    async def go() -> bytes:
        metrics = Metrics(CollectorRegistry(), "t")
        auth, fetcher = AuthManager(metrics), Fetcher()
        try:
            spec = config.targets()[0]
            return (await fetcher.fetch(spec, auth.for_target(spec))).body
        finally:
            await fetcher.aclose()
            auth.close()

    return asyncio.run(go())


def test_an_identity_service_with_an_unknown_ca_is_an_auth_failure_naming_tls(
    https_identity: IdentitySimulator, pki: Pki
) -> None:
    with Simulator(["r1"], tls=server_context(pki), authorizer=region_authorizer(https_identity)) as sim:
        with pytest.raises(FetchError) as info:
            poll_with_auth(keystone_cloud(sim, https_identity))  # no cacert: neither is trusted
        assert info.value.reason is FailureReason.AUTH and "TLS verification failed" in str(info.value)
        assert https_identity.token_requests() == 0  # the handshake failed before any request
        assert b'"images"' in poll_with_auth(keystone_cloud(sim, https_identity, cacert=str(pki.ca)))
        assert https_identity.token_requests("r1") == 1
