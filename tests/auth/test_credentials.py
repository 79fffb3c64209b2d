"""Credentials against the fake identity service and the simulated regions, over real loopback sockets.

The regions accept only what the identity service issued (``region_authorizer``): a live token scoped
to the region's own project, or a valid AK/SK signature checked by an independent implementation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.auth.credentials import BACKOFF_BASE, KeystoneToken, renew_margin
from monitor.auth.manager import AuthManager
from monitor.config import Config, ConfigError, parse_config
from monitor.config.settings import PasswordSettings
from monitor.domain import FailureReason, TargetSpec
from monitor.poll.fetch import Fetcher, FetchError
from monitor.signals.metrics import Metrics
from monitor.targets.topology import Topology
from tests.auth.conftest import AK, APP_SECRET, DOMAIN, PASSWORD, REGIONS, SK, USER, password_auth
from tests.support.identity import IdentitySimulator, RegionAuthorizer, region_authorizer
from tests.support.regions import Simulator


def config_for(sim: Simulator | None, auth: dict[str, Any], **cloud: Any) -> Config:
    entry: dict[str, Any] = {
        "name": "hw",
        "regions": list(REGIONS),
        "schemas": ["images"],
        "auth": auth,
        "allow_http": True,
        **cloud,
    }
    if sim is not None and "endpoint" not in cloud and cloud.get("regions") != "auto":
        entry["endpoint"] = sim.endpoint_template()
    data = {"defaults": {"timeout": "3s", "retries": 0}, "clouds": [entry]}
    return parse_config(data, "test")


def spec_of(config: Config, region: str) -> TargetSpec:
    return next(spec for spec in config.targets() if spec.key.region == region)


class Harness:
    """A Fetcher and an AuthManager on one event loop, as the service uses them."""

    def __init__(self) -> None:
        self.metrics = Metrics(CollectorRegistry(), "test")
        self.auth = AuthManager(self.metrics)
        self.loop = asyncio.new_event_loop()
        self.fetcher = Fetcher()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def fetch(self, spec: TargetSpec) -> bytes:
        return self.run(self.fetcher.fetch(spec, self.auth.for_target(spec))).body  # type: ignore[no-any-return]

    def failure(self, spec: TargetSpec) -> FetchError:
        with pytest.raises(FetchError) as info:
            self.fetch(spec)
        return info.value

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    def close(self) -> None:
        self.run(self.fetcher.aclose())
        self.auth.close()
        self.loop.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


# --- tokens: scope, reuse, renewal ------------------------------------------------------------------


def test_each_region_gets_a_token_scoped_to_its_own_project(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(regions, password_auth(identity))
    for region in REGIONS:
        assert b'"images"' in harness.fetch(spec_of(config, region))
        assert harness.fetch(spec_of(config, region))  # the second poll reuses the token
    for region in REGIONS:
        assert identity.token_requests(region) == 1
        assert harness.sample("schemadrift_auth_requests_total", cloud="hw", region=region) == 1
        assert harness.sample("schemadrift_auth_failures_total", cloud="hw", region=region) == 0


def test_a_token_of_another_regions_project_is_refused(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(regions, password_auth(identity, project_name="r1"))  # one project for every region
    assert harness.fetch(spec_of(config, "r1"))
    error = harness.failure(spec_of(config, "r2"))
    assert error.reason is FailureReason.AUTH and error.status == 401


@pytest.mark.slow
def test_token_is_renewed_before_it_expires_and_not_before(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    identity.token_lifetime = 3.0
    config = config_for(regions, password_auth(identity))
    spec = spec_of(config, "r1")
    started = time.time()
    harness.fetch(spec)
    expiry = harness.sample("schemadrift_auth_token_expiry_timestamp_seconds", cloud="hw", region="r1")
    assert expiry is not None and started + 2.5 < expiry <= time.time() + 3.0
    renew_after = 3.0 - renew_margin(3.0)
    while time.time() < started + renew_after - 0.5:
        harness.fetch(spec)
        assert identity.token_requests("r1") == 1
        time.sleep(0.2)
    time.sleep(max(0.0, started + renew_after + 0.1 - time.time()))
    harness.fetch(spec)  # the old token is still valid for about a second: renewed anyway
    assert identity.token_requests("r1") == 2
    assert authorizer_rejections(regions) == 0


def authorizer_rejections(sim: Simulator) -> int:
    authorizer = sim._authorizer
    assert isinstance(authorizer, RegionAuthorizer)
    return authorizer.rejected()


def test_renew_margin_is_keystoneauths_for_long_tokens_and_a_fraction_for_short_ones() -> None:
    assert renew_margin(24 * 3600) == 120.0
    assert renew_margin(600) == 120.0
    assert renew_margin(240) == 120.0
    assert renew_margin(200) == 20.0  # keystoneauth would authenticate on every use
    assert renew_margin(5) == 1.0
    assert renew_margin(1) == 0.5


# --- 401 handling -------------------------------------------------------------------------------------


def test_a_revoked_token_is_replaced_once_and_the_poll_succeeds(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(regions, password_auth(identity))
    spec = spec_of(config, "r1")
    harness.fetch(spec)
    identity.revoke_all()
    assert b'"images"' in harness.fetch(spec)
    assert identity.token_requests("r1") == 2
    assert harness.sample("schemadrift_auth_failures_total", cloud="hw", region="r1") == 0


def test_concurrent_polls_refused_together_authenticate_once(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(regions, password_auth(identity), schemas=["images", "image", "members", "member"])
    specs = [s for s in config.targets() if s.key.region == "r1"]
    harness.fetch(specs[0])
    identity.revoke_all()

    async def all_four() -> list[bytes]:
        fetched = await asyncio.gather(*(harness.fetcher.fetch(s, harness.auth.for_target(s)) for s in specs))
        return [f.body for f in fetched]

    assert all(harness.run(all_four()))
    assert identity.token_requests("r1") == 2


def test_a_second_401_fails_with_auth_after_exactly_one_reauthentication(
    identity: IdentitySimulator, harness: Harness
) -> None:
    with Simulator(REGIONS, authorizer=lambda *args: False) as refusing:
        config = config_for(refusing, password_auth(identity))
        error = harness.failure(spec_of(config, "r1"))
        assert error.reason is FailureReason.AUTH and error.status == 401
        assert identity.token_requests("r1") == 2  # the first token, one renewal, no loop
        assert refusing.requests("r1") == 2


def test_a_static_token_refused_is_http_401_without_reauthentication(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(regions, {"type": "token", "token": "not-a-token"})
    error = harness.failure(spec_of(config, "r1"))
    assert error.reason is FailureReason.HTTP_401
    assert regions.requests("r1") == 1 and identity.token_requests() == 0


# --- the identity service failing -----------------------------------------------------------------------


@pytest.mark.slow
def test_identity_down_fails_polls_with_auth_and_backs_off(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(regions, password_auth(identity))
    spec = spec_of(config, "r1")
    identity.set_fault("down")
    first = harness.failure(spec)
    assert first.reason is FailureReason.AUTH and "HTTP 503" in str(first)
    second = harness.failure(spec)  # within the backoff: the identity service is not asked again
    assert second.reason is FailureReason.AUTH and "not asked again" in str(second)
    assert identity.token_requests() == 1
    assert harness.sample("schemadrift_auth_failures_total", cloud="hw", region="r1") == 1
    assert regions.requests("r1") == 0
    identity.set_fault(None)
    time.sleep(BACKOFF_BASE + 0.1)
    assert harness.fetch(spec)
    assert harness.sample("schemadrift_auth_requests_total", cloud="hw", region="r1") == 2


def test_wrong_password_is_counted_and_never_echoed(
    identity: IdentitySimulator, regions: Simulator, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Pa55word-zz9"
    config = config_for(regions, password_auth(identity, password=wrong))
    error = harness.failure(spec_of(config, "r1"))
    assert error.reason is FailureReason.AUTH and "HTTP 401" in str(error)
    assert wrong not in str(error) and wrong not in caplog.text


def test_a_hanging_identity_service_does_not_hold_other_clouds(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    hanging = config_for(regions, password_auth(identity, timeout="1s"))
    with Simulator(["p1"]) as public:
        other = parse_config(
            {"clouds": [{"name": "pub", "endpoint": public.endpoint_template(), "regions": ["p1"],
                         "schemas": ["images"], "allow_http": True}]},
            "test",
        )  # fmt: skip
        identity.set_fault("hang")

        async def both() -> tuple[Any, float]:
            spec = spec_of(hanging, "r1")
            stuck = asyncio.ensure_future(harness.fetcher.fetch(spec, harness.auth.for_target(spec)))
            await asyncio.sleep(0.2)  # the identity request is on its way
            t0 = time.monotonic()
            body = await harness.fetcher.fetch(other.targets()[0], None)
            fast = time.monotonic() - t0
            with pytest.raises(FetchError) as info:
                await stuck
            assert info.value.reason is FailureReason.AUTH
            return body, fast

        body, fast = harness.run(both())
        assert body and fast < 1.0
        identity.set_fault(None)


@pytest.mark.slow
def test_a_hanging_identity_service_does_not_hold_another_clouds_logins(
    identity: IdentitySimulator, harness: Harness
) -> None:
    many = tuple(f"h{i}" for i in range(8))  # more regions than a cloud's identity threads
    for region in many:
        identity.add_project(region, domain=DOMAIN)
    with IdentitySimulator() as other_identity, Simulator([*many, "b1"], authorizer=lambda *args: True) as sim:
        other_identity.add_user(USER, PASSWORD, domain=DOMAIN)
        other_identity.add_project("b1", domain=DOMAIN)
        hanging = config_for(sim, password_auth(identity, timeout="2s"), regions=list(many))
        healthy = config_for(sim, password_auth(other_identity), regions=["b1"], name="other")
        identity.set_fault("hang")

        async def polls() -> tuple[list[Any], float]:
            stuck = [asyncio.ensure_future(harness.fetcher.fetch(s, harness.auth.for_target(s)))
                     for s in hanging.targets()]  # fmt: skip
            await asyncio.sleep(0.3)  # every identity thread of the hanging cloud is taken
            t0 = time.monotonic()
            spec = healthy.targets()[0]
            assert await harness.fetcher.fetch(spec, harness.auth.for_target(spec))
            elapsed = time.monotonic() - t0
            return await asyncio.gather(*stuck, return_exceptions=True), elapsed

        outcomes, elapsed = harness.run(polls())
        identity.set_fault(None)
    assert elapsed < 1.5
    assert all(isinstance(o, FetchError) and o.reason is FailureReason.AUTH for o in outcomes)


def test_region_names_as_openstack_writes_them_are_accepted() -> None:
    config = parse_config(
        {"clouds": [{"name": "os", "endpoint": "https://glance.example.org", "regions": ["RegionOne", "cn-north-4"]}]},
        "test",
    )
    assert [spec.key.region for spec in config.targets()][:1] == ["RegionOne"]


# --- other auth types ------------------------------------------------------------------------------


def test_application_credential_polls(identity: IdentitySimulator, regions: Simulator, harness: Harness) -> None:
    user_id = identity.add_user("svc", "unused-password", domain=DOMAIN)
    project_id = identity.add_project("shared", domain=DOMAIN)
    cred_id = identity.add_application_credential(user_id, APP_SECRET, project_id=project_id)
    with Simulator(REGIONS, authorizer=region_authorizer(identity, per_region_projects=False)) as sim:
        auth = {"type": "application_credential", "auth_url": identity.auth_url,
                "application_credential_id": cred_id, "application_credential_secret": APP_SECRET}  # fmt: skip
        config = config_for(sim, auth)
        assert harness.fetch(spec_of(config, "r2"))
        assert identity.token_requests("shared") == 1


def test_aksk_signatures_from_huaweicloudsdkcore_pass_the_independent_check(
    identity: IdentitySimulator, harness: Harness
) -> None:
    project_ids = {region: f"proj-{region}" for region in REGIONS}
    with Simulator(REGIONS, authorizer=region_authorizer(identity, project_ids=project_ids)) as sim:
        auth = {"type": "aksk", "access_key": AK, "secret_key": SK, "project_id": "proj-{region}"}
        config = config_for(sim, auth)
        for region in REGIONS:
            assert b'"images"' in harness.fetch(spec_of(config, region))
        assert identity.token_requests() == 0


def test_aksk_with_a_wrong_secret_key_is_refused(identity: IdentitySimulator, harness: Harness) -> None:
    with Simulator(REGIONS, authorizer=region_authorizer(identity)) as sim:
        config = config_for(sim, {"type": "aksk", "access_key": AK, "secret_key": "wrong-secret-key"})
        error = harness.failure(spec_of(config, "r1"))
        assert error.reason is FailureReason.HTTP_401


def test_aksk_signs_the_redirect_target_again(identity: IdentitySimulator, harness: Harness) -> None:
    with Simulator(REGIONS, authorizer=region_authorizer(identity)) as sim:
        sim.set_fault("r1", "redirect", location="/r2/v2/schemas/images")
        config = config_for(sim, {"type": "aksk", "access_key": AK, "secret_key": SK})
        # the redirect answer itself is a fault (not checked); the target r2 checks the new signature
        assert b'"images"' in harness.fetch(spec_of(config, "r1"))


# --- discovery ------------------------------------------------------------------------------------------


def discovery_config(identity: IdentitySimulator, **cloud: Any) -> Config:
    auth = password_auth(identity, project_name="r1")
    return config_for(None, auth, regions="auto", **cloud)


def test_catalog_discovery_finds_the_regions_and_follows_changes(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    topology = Topology(discovery_config(identity), harness.auth)
    assert topology.specs() == []
    assert refresh(harness, topology) is True
    urls = {spec.key.region: spec.url for spec in topology.specs()}
    assert urls == {r: f"{regions.base_url}/{r}/v2/schemas/images" for r in REGIONS}
    assert refresh(harness, topology) is False
    identity.set_catalog({"r1": f"{regions.base_url}/r1/v2", "r3": f"{regions.base_url}/r3"})
    assert refresh(harness, topology) is True
    assert sorted(spec.key.region for spec in topology.specs()) == ["r1", "r3"]
    assert spec_of_topology(topology, "r1").url == f"{regions.base_url}/r1/v2/schemas/images"  # /v2 dropped


def refresh(harness: Harness, topology: Topology) -> bool:
    """Discover every dynamic cloud now and keep the result, as the daemon does; True when it changed."""
    found = harness.run(topology.discover(force=True))
    if found is not None:
        topology.commit(found)
    return found is not None


def spec_of_topology(topology: Topology, region: str) -> TargetSpec:
    return next(spec for spec in topology.specs() if spec.key.region == region)


def test_failed_discovery_keeps_the_known_regions(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    topology = Topology(discovery_config(identity), harness.auth)
    refresh(harness, topology)
    identity.set_fault("down")
    assert refresh(harness, topology) is False
    assert len(topology.specs()) == 3
    assert harness.sample("schemadrift_auth_failures_total", cloud="hw", region="_discovery") == 1


def test_discovery_uses_the_configured_interface_and_endpoint_override(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    internal = Topology(discovery_config(identity, discovery={"interface": "internal"}), harness.auth)
    refresh(harness, internal)
    assert {spec.url for spec in internal.specs()} == {
        f"{regions.base_url}/{r}/internal-not-used/v2/schemas/images" for r in REGIONS
    }
    override = f"{regions.base_url}/r2"
    pinned = Topology(discovery_config(identity, endpoint_override=override), AuthManager(harness.metrics))
    refresh(harness, pinned)
    assert {spec.url for spec in pinned.specs()} == {override + "/v2/schemas/images"}


def test_projects_discovery_lists_region_projects_only(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(
        None, password_auth(identity), regions="auto", endpoint=regions.endpoint_template(),
        discovery={"source": "projects", "exclude": "r3"},
    )  # fmt: skip
    topology = Topology(config, harness.auth)
    refresh(harness, topology)
    assert sorted(spec.key.region for spec in topology.specs()) == ["r1", "r2"]  # not MOS, r1_dev or r3
    assert identity.project_list_requests() == 1
    assert all(harness.fetch(spec) for spec in topology.specs())


def test_endpoint_taken_from_the_catalog_for_listed_regions(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(None, password_auth(identity), regions=["r1", "r2"])
    assert config.targets() == []  # known only after asking the catalog
    topology = Topology(config, harness.auth)
    refresh(harness, topology)
    assert [spec.url for spec in topology.specs()] == [
        f"{regions.base_url}/{r}/v2/schemas/images" for r in ("r1", "r2")
    ]
    assert identity.token_requests("r1") == 1 and identity.token_requests("r2") == 1  # the polls' own tokens


# --- configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cloud", "message"),
    [
        ({"regions": "auto", "auth": {"type": "token", "token": "t"}}, "regions: auto needs password"),
        ({"regions": "auto"}, "use source: projects"),
        ({"regions": "auto", "discovery": {"source": "projects"}}, "needs endpoint or endpoint_override"),
        ({"regions": ["r1"], "auth": {"type": "none"}}, "endpoint is required"),
        ({"regions": "auto", "endpoint": "https://ims.{region}.example.com", "discovery": {"source": "projects"},
          "auth_url_per_region": True}, "needs an auth_url without {region}"),
        ({"endpoint": "https://ims.{region}.example.com", "regions": ["r1", "r2"],
          "auth": {"type": "aksk", "access_key": "a", "secret_key": "s", "project_ids": {"r1": "p1"}}},
         "no project for region(s) r2"),
        ({"auth": {"type": "application_credential", "auth_url": "https://k.example.com/v3", "project_name": "x",
                   "application_credential_id": "i", "application_credential_secret": "s"}}, "remove project_name"),
        ({"auth_url_http": True, "allow_http": False}, "(c).auth.auth_url: uses plain http://"),
        ({"auth": {"type": "password", "auth_url": "https://iam.example.com/v3", "username": "u",
                   "password": PASSWORD}}, "user_domain_name"),
        ({"auth": {"type": "aksk", "access_key": "a b", "secret_key": "s"}}, "auth.access_key: is empty or contains"),
        ({"auth": {"type": "application_credential", "auth_url": "https://k.example.com/v3",
                   "application_credential_secret": "s"}}, "application_credential_id"),
    ],
)  # fmt: skip
def test_auth_config_mistakes_are_explained(cloud: dict[str, Any], message: str) -> None:
    entry: dict[str, Any] = {
        "name": "c",
        "regions": ["r1"],
        "auth": {"type": "password", "auth_url": "https://iam.example.com/v3", "username": "u",
                 "password": PASSWORD, "user_domain_name": "d", "project_name": "{region}"},
    }  # fmt: skip
    if cloud.pop("auth_url_per_region", False):
        entry["auth"] = {**entry["auth"], "auth_url": "https://iam.{region}.example.com/v3"}
    if cloud.pop("auth_url_http", False):
        entry["auth"] = {**entry["auth"], "auth_url": "http://keystone.example.com/v3"}
        entry["endpoint"] = "https://ims.{region}.example.com"
    entry.update(cloud)
    with pytest.raises(ConfigError) as info:
        parse_config({"clouds": [entry]}, "test.yaml")
    assert message in str(info.value)
    assert PASSWORD not in str(info.value)


def test_secrets_can_come_from_files(tmp_path: Any) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "sk").write_text(SK + "\n")
    config = parse_config(
        {"clouds": [
            {"name": "a", "endpoint": "https://ims.{region}.example.com", "regions": ["r1"],
             "auth": {"type": "password", "auth_url": "https://iam.example.com/v3", "username": USER,
                      "password_file": str(tmp_path / "pw"), "user_domain_name": DOMAIN, "project_name": "{region}"}},
            {"name": "b", "endpoint": "https://ims.{region}.example.com", "regions": ["r1"],
             "auth": {"type": "aksk", "access_key": AK, "secret_key_file": str(tmp_path / "sk")}},
        ]},
        "test",
    )  # fmt: skip
    assert config.clouds[0].auth.password.get_secret_value() == PASSWORD  # type: ignore[union-attr]
    assert config.clouds[1].auth.secret_key.get_secret_value() == SK  # type: ignore[union-attr]
    assert PASSWORD not in repr(config) and SK not in repr(config)


def test_insecure_is_explicit_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    from monitor.auth.manager import warn_insecure

    config = parse_config(
        {"clouds": [{"name": "lab", "endpoint": "https://ims.{region}.lab", "regions": ["r1"], "insecure": True}]},
        "test",
    )
    assert config.targets()[0].tls.insecure is True
    with caplog.at_level(logging.WARNING):
        warn_insecure(config.clouds)
    assert "cloud lab: insecure: true" in caplog.text
    default = parse_config({"clouds": [{"name": "x", "endpoint": "https://e/{region}", "regions": ["r1"]}]}, "t")
    assert default.targets()[0].tls.insecure is False


def test_keystone_token_never_shows_its_secrets_in_repr(identity: IdentitySimulator, regions: Simulator) -> None:
    config = config_for(regions, password_auth(identity))
    auth = config.clouds[0].credentials()
    assert isinstance(auth, PasswordSettings)
    token = KeystoneToken(auth.for_region("r1"))
    signer = asyncio.run(token.acquire())
    assert PASSWORD not in repr(config.clouds[0]) and PASSWORD not in repr(auth) and "<token>" in repr(signer)


def test_a_yaml_syntax_error_is_located_without_quoting_the_line(tmp_path: Any) -> None:
    from monitor.config import load_config

    path = tmp_path / "broken.yaml"
    path.write_text(f'clouds:\n  - name: a\n    auth: {{type: password, password: "{PASSWORD}"x"}}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not valid YAML" in str(info.value) and "line 3" in str(info.value)
    assert PASSWORD not in str(info.value)


# --- review cases: hardening ------------------------------------------------------------------------


def test_plain_http_catalog_endpoints_are_not_polled_without_allow_http(
    identity: IdentitySimulator, regions: Simulator, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # The config itself may use http:// only with allow_http, so the identity URL needs it; the catalog's
    # URLs are checked again: an internal http:// endpoint must not receive the token.
    allowed = discovery_config(identity)
    strict = allowed.clouds[0].model_copy(update={"allow_http": False})
    topology = Topology(allowed.model_copy(update={"clouds": [strict]}), harness.auth)
    with caplog.at_level(logging.WARNING):
        refresh(harness, topology)
    assert topology.specs() == []
    assert "plain http://; not polled" in caplog.text


def test_a_project_list_refused_with_a_token_gets_one_new_token(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    config = config_for(
        None, password_auth(identity), regions="auto", endpoint=regions.endpoint_template(),
        discovery={"source": "projects"},
    )  # fmt: skip
    topology = Topology(config, harness.auth)
    assert refresh(harness, topology)
    before = identity.token_requests()
    identity.revoke_all()
    refresh(harness, topology)
    assert identity.token_requests() == before + 1
    assert identity.project_list_requests() == 3  # first list, the refused one, the retry


@pytest.mark.slow
def test_a_failed_renewal_keeps_using_the_current_token_until_it_expires(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    identity.token_lifetime = 4.0  # renewed 1 s before expiry
    config = config_for(regions, password_auth(identity))
    spec = spec_of(config, "r1")
    harness.fetch(spec)
    time.sleep(3.2)
    identity.set_fault("down")
    assert harness.fetch(spec)  # renewing failed; the token has most of a second left
    assert harness.sample("schemadrift_auth_failures_total", cloud="hw", region="r1") == 1
    time.sleep(1.0)
    assert harness.failure(spec).reason is FailureReason.AUTH  # expired now, and in backoff


def test_a_fresh_token_refused_again_is_not_replaced_on_every_poll(
    identity: IdentitySimulator, harness: Harness
) -> None:
    with Simulator(REGIONS, authorizer=lambda *args: False) as refusing:
        config = config_for(refusing, password_auth(identity))
        spec = spec_of(config, "r1")
        for _ in range(5):
            assert harness.failure(spec).reason is FailureReason.AUTH
        assert identity.token_requests("r1") == 2  # the first token and one replacement, then a hold


def test_an_unusable_client_certificate_is_a_tls_failure(tmp_path: Any, harness: Harness) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    config = parse_config(
        {"clouds": [{"name": "c", "endpoint": "https://127.0.0.1:9/{region}", "regions": ["r1"], "cert": str(cert)}]},
        "test",
    )
    assert harness.failure(config.targets()[0]).reason is FailureReason.TLS


@pytest.mark.slow
def test_a_failed_discovery_is_tried_again_sooner_than_the_refresh(
    identity: IdentitySimulator, regions: Simulator, harness: Harness
) -> None:
    topology = Topology(discovery_config(identity, discovery={"refresh": "1h"}), harness.auth)
    identity.set_fault("down")
    assert harness.run(topology.discover()) is None
    identity.set_fault(None)
    assert harness.run(topology.discover()) is None  # not due yet: 30 s after a failure
    topology._next["hw"] = 0.0
    time.sleep(BACKOFF_BASE + 0.1)  # and the token's own backoff
    assert harness.run(topology.discover()) is not None
