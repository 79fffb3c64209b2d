"""The fake Keystone v3 / Huawei IAM identity service over real loopback sockets, keystoneauth1 against it,
the AK/SK verifier against the documented algorithm and the Huawei SDK's signer, and the region simulator
enforcing the credentials through ``region_authorizer``."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import generic, v3

from tests.support.identity import IdentitySimulator, region_authorizer
from tests.support.regions import Simulator

REGIONS = ("cn-north-4", "ap-southeast-1")
USER, PASSWORD = "monitor", "pw-Do-Not-Echo-7f3a"
PROJECT_DOMAIN = "Default"


@pytest.fixture
def identity() -> Iterator[IdentitySimulator]:
    with IdentitySimulator() as service:
        service.add_user(USER, PASSWORD)
        for region in REGIONS:
            service.add_project(region)
        service.add_project("MOS")
        service.add_project(f"{REGIONS[0]}_sub")
        service.set_catalog({region: f"https://ims.{region}.example.test" for region in REGIONS})
        yield service


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as http:
        yield http


def password_body(
    project: dict[str, Any] | str | None = None, user: dict[str, Any] | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    """A Keystone password auth request; ``project`` is a project name (Default domain) or a scope dict."""
    user_ref = user or {"name": USER, "domain": {"name": "Default"}}
    auth: dict[str, Any] = {
        "identity": {"methods": ["password"], "password": {"user": {**user_ref, "password": password}}}
    }
    if isinstance(project, str):
        auth["scope"] = {"project": {"name": project, "domain": {"name": PROJECT_DOMAIN}}}
    elif project is not None:
        auth["scope"] = project
    return {"auth": auth}


def get_token(identity: IdentitySimulator, client: httpx.Client, project: str | None = REGIONS[0]) -> str:
    response = client.post(f"{identity.auth_url}/auth/tokens", json=password_body(project))
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def parse_time(value: str) -> float:
    assert value.endswith("Z") and len(value) == len("2024-05-01T12:00:00.000000Z")
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def ks_session() -> Any:
    return ksa_session.Session(timeout=5)


def ks_v3() -> Any:
    return v3


# -- tokens ------------------------------------------------------------------------------------------


def test_password_auth_by_name_scoped_to_a_project_returns_a_token_expiry_and_image_catalog(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    before = time.time()
    response = client.post(f"{identity.auth_url}/auth/tokens", json=password_body(REGIONS[0]))
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert len(response.headers["X-Subject-Token"]) >= 32
    token = response.json()["token"]
    assert token["methods"] == ["password"]
    assert token["user"]["name"] == USER and token["user"]["domain"] == {"id": "default", "name": "Default"}
    assert token["project"]["name"] == REGIONS[0]
    assert token["project"]["domain"] == {"id": "default", "name": "Default"}
    assert token["roles"]
    lifetime = parse_time(token["expires_at"]) - parse_time(token["issued_at"])
    assert lifetime == pytest.approx(3600, abs=0.01)
    assert before - 1 <= parse_time(token["issued_at"]) <= time.time() + 1
    [image] = token["catalog"]
    assert (image["type"], image["name"]) == ("image", "glance")
    public = {e["region"]: e["url"] for e in image["endpoints"] if e["interface"] == "public"}
    assert public == {region: f"https://ims.{region}.example.test" for region in REGIONS}
    assert all(e["region_id"] == e["region"] for e in image["endpoints"])


def test_password_auth_by_user_id_and_project_id_and_domain_id(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    user_id = identity.add_user("by-id", "pw-2", user_id="u-fixed-id", domain="acme")
    project_id = identity.add_project("MOS", domain="acme", project_id="p-fixed-id")
    by_id = password_body({"project": {"id": project_id}}, user={"id": user_id}, password="pw-2")
    response = client.post(f"{identity.auth_url}/auth/tokens", json=by_id)
    assert response.status_code == 201
    token = response.json()["token"]
    assert token["user"]["id"] == "u-fixed-id" and token["user"]["domain"]["name"] == "acme"
    assert token["project"] == {
        "id": "p-fixed-id",
        "name": "MOS",
        "domain": {"id": identity.domain_id("acme"), "name": "acme"},
    }

    acme = {"id": identity.domain_id("acme")}
    by_domain_id = password_body(
        {"project": {"name": "MOS", "domain": acme}}, user={"name": "by-id", "domain": acme}, password="pw-2"
    )
    assert (
        client.post(f"{identity.auth_url}/auth/tokens", json=by_domain_id).json()["token"]["project"]["id"]
        == project_id
    )


def test_keystoneauth_password_plugin_gets_a_token_and_the_image_endpoints_per_region(
    identity: IdentitySimulator,
) -> None:
    v3 = ks_v3()
    auth = v3.Password(
        auth_url=identity.auth_url,
        username=USER,
        password=PASSWORD,
        user_domain_name="Default",
        project_name=REGIONS[1],
        project_domain_name=PROJECT_DOMAIN,
    )
    auth_ref = auth.get_auth_ref(ks_session())
    assert auth_ref.project_name == REGIONS[1]
    assert identity.validate_token(auth_ref.auth_token) is not None
    assert 3500 < (auth_ref.expires - datetime.now(UTC)).total_seconds() <= 3600
    public = auth_ref.service_catalog.get_endpoints(service_type="image", interface="public")["image"]
    assert {e["region_id"]: e["url"] for e in public} == {r: f"https://ims.{r}.example.test" for r in REGIONS}
    url = auth_ref.service_catalog.url_for(service_type="image", interface="public", region_name=REGIONS[0])
    assert url == f"https://ims.{REGIONS[0]}.example.test"
    internal = auth_ref.service_catalog.url_for(service_type="image", interface="internal", region_name=REGIONS[0])
    assert internal == f"https://ims.{REGIONS[0]}.example.test/internal-not-used"


def test_keystoneauth_password_plugin_by_ids(identity: IdentitySimulator) -> None:
    v3 = ks_v3()
    user_id = identity.add_user("svc", "pw-3")
    project_id = identity.add_project("cn-south-1")
    auth = v3.Password(auth_url=identity.auth_url, user_id=user_id, password="pw-3", project_id=project_id)
    auth_ref = auth.get_auth_ref(ks_session())
    assert (auth_ref.user_id, auth_ref.project_id, auth_ref.project_name) == (user_id, project_id, "cn-south-1")


def test_keystoneauth_domain_scoped_token_has_the_domain_and_no_catalog(identity: IdentitySimulator) -> None:
    v3 = ks_v3()
    auth = v3.Password(
        auth_url=identity.auth_url, username=USER, password=PASSWORD, user_domain_name="Default", domain_name="Default"
    )
    auth_ref = auth.get_auth_ref(ks_session())
    assert auth_ref.domain_scoped and auth_ref.domain_id == "default"
    assert not auth_ref.has_service_catalog()
    info = identity.validate_token(auth_ref.auth_token)
    assert info is not None and info["project_name"] is None


def test_keystoneauth_application_credential_gets_a_token_of_its_project(identity: IdentitySimulator) -> None:
    v3 = ks_v3()
    user_id = identity.add_user("app-owner", "pw-4")
    project_id = identity.add_project("eu-west-101")
    cred_id = identity.add_application_credential(user_id, "app-secret", project_id=project_id)
    auth = v3.ApplicationCredential(
        auth_url=identity.auth_url, application_credential_id=cred_id, application_credential_secret="app-secret"
    )
    auth_ref = auth.get_auth_ref(ks_session())
    assert auth_ref.project_name == "eu-west-101" and auth_ref.user_id == user_id
    assert auth_ref.service_catalog.get_endpoints(service_type="image", interface="public")["image"]
    assert identity.token_requests("eu-west-101") == 1


def test_application_credential_by_name_and_user_and_a_wrong_secret(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    user_id = identity.add_user("app-owner", "pw-4")
    identity.add_application_credential(user_id, "app-secret", project_id=identity.add_project("x-1"), name="poller")

    def attempt(secret: str, scope: Any = None) -> httpx.Response:
        cred = {"name": "poller", "secret": secret, "user": {"name": "app-owner", "domain": {"name": "Default"}}}
        auth: dict[str, Any] = {"identity": {"methods": ["application_credential"], "application_credential": cred}}
        if scope is not None:
            auth["scope"] = scope
        return client.post(f"{identity.auth_url}/auth/tokens", json={"auth": auth})

    assert attempt("app-secret").json()["token"]["project"]["name"] == "x-1"
    refused = attempt("not-the-app-secret")
    assert refused.status_code == 401 and "not-the-app-secret" not in refused.text
    assert attempt("app-secret", scope={"project": {"name": "MOS", "domain": {"name": "Default"}}}).status_code == 401
    assert identity.token_requests("x-1") == 2
    assert identity.token_requests("MOS") == 1  # an explicit scope is attributed to the project it names


def test_generic_keystoneauth_plugin_discovers_v3_from_the_root(identity: IdentitySimulator) -> None:
    auth = generic.Password(
        auth_url=identity.base_url,
        username=USER,
        password=PASSWORD,
        user_domain_name="Default",
        project_name="MOS",
        project_domain_name=PROJECT_DOMAIN,
    )
    assert auth.get_auth_ref(ks_session()).project_name == "MOS"


def test_a_wrong_password_is_a_keystone_401_that_echoes_nothing(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    wrong = "Wr0ng-Secret-Value-91"
    for body in (
        password_body(REGIONS[0], password=wrong),
        password_body(REGIONS[0], user={"name": "nobody-known", "domain": {"name": "Default"}}, password=wrong),
        password_body(REGIONS[0], user={"id": "no-such-id"}, password=wrong),
    ):
        response = client.post(f"{identity.auth_url}/auth/tokens", json=body)
        assert response.status_code == 401
        assert response.json() == {
            "error": {
                "code": 401,
                "title": "Unauthorized",
                "message": "The request you have made requires authentication.",
            }
        }
        assert "X-Subject-Token" not in response.headers
        assert wrong not in response.text and "nobody-known" not in response.text


@pytest.mark.parametrize(
    "scope",
    [
        {"project": {"name": "xx-nowhere-1", "domain": {"name": "Default"}}},
        {"project": {"id": "no-such-project"}},
        {"project": {"name": REGIONS[0], "domain": {"name": "OtherDomain"}}},
        {"domain": {"name": "OtherDomain"}},
        {"system": {"all": True}},
    ],
)
def test_an_unknown_project_or_domain_or_unsupported_scope_is_401(
    identity: IdentitySimulator, client: httpx.Client, scope: dict[str, Any]
) -> None:
    response = client.post(f"{identity.auth_url}/auth/tokens", json=password_body(scope))
    assert response.status_code == 401
    assert "xx-nowhere-1" not in response.text


def test_a_body_that_is_not_an_auth_request_is_400(identity: IdentitySimulator, client: httpx.Client) -> None:
    url = f"{identity.auth_url}/auth/tokens"
    assert client.post(url, content=b"{not json").status_code == 400
    assert client.post(url, json={"auth": {"identity": "password"}}).status_code == 400
    assert client.post(url, json={"auth": {"identity": {"methods": ["password"], "password": {}}}}).status_code == 400
    assert identity.token_requests() == 3


def test_unscoped_token_carries_no_project_and_no_catalog(identity: IdentitySimulator, client: httpx.Client) -> None:
    response = client.post(f"{identity.auth_url}/auth/tokens", json=password_body(None))
    token = response.json()["token"]
    assert response.status_code == 201 and "project" not in token and "catalog" not in token
    info = identity.validate_token(response.headers["X-Subject-Token"])
    assert info is not None and info["project_id"] is None


def test_tokens_expire_after_the_lifetime(identity: IdentitySimulator, client: httpx.Client) -> None:
    identity.token_lifetime = 0.5
    response = client.post(f"{identity.auth_url}/auth/tokens", json=password_body(REGIONS[0]))
    body = response.json()["token"]
    assert parse_time(body["expires_at"]) - parse_time(body["issued_at"]) == pytest.approx(0.5, abs=0.01)
    token = response.headers["X-Subject-Token"]
    info = identity.validate_token(token)
    assert info is not None and info["project_name"] == REGIONS[0]
    assert info["expires_at"] == pytest.approx(parse_time(body["expires_at"]), abs=1e-5)
    time.sleep(0.6)
    assert identity.validate_token(token) is None
    assert client.get(f"{identity.auth_url}/auth/projects", headers={"X-Auth-Token": token}).status_code == 401


def test_revoke_all_invalidates_every_token_issued_so_far(identity: IdentitySimulator, client: httpx.Client) -> None:
    old = [get_token(identity, client, region) for region in REGIONS]
    identity.revoke_all()
    assert all(identity.validate_token(token) is None for token in old)
    assert identity.validate_token(get_token(identity, client)) is not None
    assert identity.validate_token("never-issued") is None


def test_set_catalog_changes_later_tokens_and_nocatalog_omits_it(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    identity.set_catalog({"la-south-2": "http://127.0.0.1:9/la-south-2"})
    url = f"{identity.auth_url}/auth/tokens"
    [image] = client.post(url, json=password_body("MOS")).json()["token"]["catalog"]
    assert {(e["region"], e["interface"], e["url"]) for e in image["endpoints"]} == {
        ("la-south-2", "public", "http://127.0.0.1:9/la-south-2"),
        ("la-south-2", "internal", "http://127.0.0.1:9/la-south-2/internal-not-used"),
    }
    assert "catalog" not in client.post(url + "?nocatalog", json=password_body("MOS")).json()["token"]
    identity.set_catalog({})
    assert client.post(url, json=password_body("MOS")).json()["token"]["catalog"] == []


# -- other routes ------------------------------------------------------------------------------------


def test_auth_projects_lists_every_project_with_a_valid_token_only(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    url = f"{identity.auth_url}/auth/projects"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"X-Auth-Token": "bogus"}).status_code == 401
    response = client.get(url, headers={"X-Auth-Token": get_token(identity, client)})
    assert response.status_code == 200
    projects = response.json()["projects"]
    assert sorted(p["name"] for p in projects) == sorted([*REGIONS, "MOS", f"{REGIONS[0]}_sub"])
    assert all(p["enabled"] is True and p["domain_id"] == "default" and p["id"] for p in projects)
    assert identity.project_list_requests() == 3


def test_version_document_and_404_for_anything_else(identity: IdentitySimulator, client: httpx.Client) -> None:
    for path in ("/v3", "/v3/"):
        version = client.get(identity.base_url + path).json()["version"]
        assert version["id"] == "v3.14" and version["status"] == "stable"
        assert version["links"] == [{"rel": "self", "href": f"{identity.base_url}/v3/"}]
    for method, path in (("GET", "/v3/users"), ("GET", "/v3/auth/tokens"), ("POST", "/v3/auth/projects")):
        response = client.request(method, identity.base_url + path)
        assert response.status_code == 404 and response.json()["error"]["code"] == 404


def test_an_unreadable_body_is_a_400_that_announces_the_close_and_the_client_carries_on(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    """A chunked body is not read: the 400 closes the connection and must say so, or the keep-alive
    client's next request goes to a closing socket and gets no answer."""
    for _ in range(100):
        refused = client.post(f"{identity.auth_url}/auth/tokens", content=iter([b"{}"]))  # chunked
        assert (refused.status_code, refused.headers.get("connection")) == (400, "close")
        served = client.get(identity.auth_url)
        assert (served.status_code, served.headers.get("connection")) == (200, None)


def test_token_requests_are_counted_per_project_name_failures_included(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    url = f"{identity.auth_url}/auth/tokens"
    client.post(url, json=password_body(REGIONS[0]))
    client.post(url, json=password_body(REGIONS[0], password="wrong"))
    project_id = identity.add_project("ru-moscow-1")
    client.post(url, json=password_body({"project": {"id": project_id}}))
    client.post(url, json=password_body(None))
    identity.set_fault("down")
    client.post(url, json=password_body(REGIONS[1]))
    assert identity.token_requests(REGIONS[0]) == 2
    assert identity.token_requests("ru-moscow-1") == 1
    assert identity.token_requests(REGIONS[1]) == 1
    assert identity.token_requests("MOS") == 0
    assert identity.token_requests() == 5


# -- faults ------------------------------------------------------------------------------------------


def test_fault_down_answers_503_on_every_route_until_cleared(identity: IdentitySimulator, client: httpx.Client) -> None:
    token = get_token(identity, client)
    identity.set_fault("down")
    for method, path in (("POST", "/v3/auth/tokens"), ("GET", "/v3/auth/projects"), ("GET", "/v3"), ("GET", "/x")):
        response = client.request(method, identity.base_url + path, headers={"X-Auth-Token": token})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == 503
    identity.set_fault(None)
    assert client.get(f"{identity.auth_url}/auth/projects", headers={"X-Auth-Token": token}).status_code == 200


@pytest.mark.parametrize("code", [401, 429, 500, 502])
def test_fault_status_answers_that_code(identity: IdentitySimulator, client: httpx.Client, code: int) -> None:
    identity.set_fault("status", code=code)
    response = client.post(f"{identity.auth_url}/auth/tokens", json=password_body(REGIONS[0]))
    assert response.status_code == code and response.json()["error"]["code"] == code
    assert PASSWORD not in response.text


def test_fault_hang_answers_nothing_then_serves_when_cleared(identity: IdentitySimulator, client: httpx.Client) -> None:
    identity.set_fault("hang")
    with pytest.raises(httpx.ReadTimeout):
        client.post(f"{identity.auth_url}/auth/tokens", json=password_body(REGIONS[0]), timeout=0.3)
    results: list[int] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            httpx.post(f"{identity.auth_url}/auth/tokens", json=password_body(REGIONS[0]), timeout=5).status_code
        )
    )
    waiter.start()
    time.sleep(0.3)
    assert results == []
    identity.set_fault(None)
    waiter.join(5)
    assert results == [201]


def test_stop_releases_a_hanging_request() -> None:
    identity = IdentitySimulator()
    identity.start()
    identity.set_fault("hang")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.get(identity.auth_url, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    identity.stop()
    caller.join(5)
    assert time.monotonic() - started < 2.0
    assert not caller.is_alive() and len(errors) == 1


def test_invalid_configuration_is_refused(identity: IdentitySimulator) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        identity.set_fault("explode")
    with pytest.raises(ValueError):
        identity.set_fault("down", code=500)
    with pytest.raises(ValueError):
        identity.set_fault("status", code=200)
    with pytest.raises(ValueError):
        identity.add_project(REGIONS[0])
    with pytest.raises(ValueError):
        identity.add_user(USER, "other")
    with pytest.raises(ValueError):
        identity.add_application_credential("no-such-user", "s", project_id="p")
    with pytest.raises(ValueError):
        identity.token_lifetime = -1
    with pytest.raises(RuntimeError):
        _ = IdentitySimulator().base_url


# -- the region simulator enforcing identity credentials ----------------------------------------------


def schema_url(sim: Simulator, region: str) -> str:
    return f"{sim.base_url}/{region}/v2/schemas/images"


def test_region_simulator_accepts_only_a_token_scoped_to_the_regions_project(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    authorizer = region_authorizer(identity)
    with Simulator(REGIONS, authorizer=authorizer) as sim:
        north, south = (get_token(identity, client, region) for region in REGIONS)
        assert client.get(schema_url(sim, REGIONS[0]), headers={"X-Auth-Token": north}).status_code == 200
        assert client.get(schema_url(sim, REGIONS[1]), headers={"x-auth-token": south}).status_code == 200
        wrong_region = client.get(schema_url(sim, REGIONS[0]), headers={"X-Auth-Token": south})
        assert wrong_region.status_code == 401 and wrong_region.json()["error"]["code"] == "APIGW.0301"
        assert client.get(schema_url(sim, REGIONS[0])).status_code == 401
        sub = get_token(identity, client, f"{REGIONS[0]}_sub")
        assert client.get(schema_url(sim, REGIONS[0]), headers={"X-Auth-Token": sub}).status_code == 401
        identity.revoke_all()
        assert client.get(schema_url(sim, REGIONS[0]), headers={"X-Auth-Token": north}).status_code == 401
        assert authorizer.rejected(REGIONS[0]) == 4 and authorizer.rejected() == 4
        assert sim.requests() == 6


def test_region_authorizer_without_per_region_projects_accepts_any_live_token(
    identity: IdentitySimulator, client: httpx.Client
) -> None:
    with Simulator(REGIONS, authorizer=region_authorizer(identity, per_region_projects=False)) as sim:
        token = get_token(identity, client, "MOS")
        assert client.get(schema_url(sim, REGIONS[1]), headers={"X-Auth-Token": token}).status_code == 200


def test_a_failing_authorizer_fails_closed() -> None:
    def broken(region: str, method: str, target: str, headers: Any) -> bool:
        raise RuntimeError("bug")

    with Simulator(["r1"], token="ignored", authorizer=broken) as sim:
        assert httpx.get(schema_url(sim, "r1"), headers={"X-Auth-Token": "ignored"}).status_code == 401


def test_the_authorizer_sees_region_method_target_and_case_insensitive_headers() -> None:
    seen: list[tuple[str, str, str, str | None, list[str]]] = []

    def spy(region: str, method: str, target: str, headers: Any) -> bool:
        seen.append((region, method, target, headers.get("X-CUSTOM"), sorted(headers)))
        return True

    with Simulator(["r1"], authorizer=spy) as sim:
        response = httpx.get(schema_url(sim, "r1") + "?a=%20b", headers={"X-Custom": "v"})
        assert response.status_code == 200
    [(region, method, target, custom, names)] = seen
    assert (region, method, target, custom) == ("r1", "GET", "/r1/v2/schemas/images?a=%20b", "v")
    assert "x-custom" in names and "host" in names


# -- AK/SK (SDK-HMAC-SHA256) --------------------------------------------------------------------------

AK, SK = "HPUAEXAMPLEACCESSKEY", "examplesecretkey0123456789abcdefghijklmno"
DATE = "20240501T120000Z"
DATE_EPOCH = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
HOST = "127.0.0.1:8000"
SIGNED = "host;x-project-id;x-sdk-date"
PROJECT_ID = "0123456789abcdef0123456789abcdef"
TARGET = "/cn-north-4/v2/schemas/images?marker=a%20b&limit=10"

# The known-answer vector, written out from the documented algorithm: method, canonical URI (always ending
# in "/"), canonical query string (sorted by name, percent-encoded), canonical headers (each "name:value\n"
# in SignedHeaders order), an empty line from that trailing newline, SignedHeaders, hex SHA-256 of the body.
CANONICAL_REQUEST = (
    "GET\n"
    "/cn-north-4/v2/schemas/images/\n"
    "limit=10&marker=a%20b\n"
    "host:127.0.0.1:8000\n"
    "x-project-id:0123456789abcdef0123456789abcdef\n"
    "x-sdk-date:20240501T120000Z\n"
    "\n"
    "host;x-project-id;x-sdk-date\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
STRING_TO_SIGN = "SDK-HMAC-SHA256\n20240501T120000Z\n" + hashlib.sha256(CANONICAL_REQUEST.encode()).hexdigest()
SIGNATURE = hmac.new(SK.encode(), STRING_TO_SIGN.encode(), hashlib.sha256).hexdigest()
EXPECTED_SIGNATURE = (
    "3e7b5265e898ddbc1852aa578000a80853014adebf0bd431ccc3fec3a2047ceb"  # pinned: the algorithm must not drift
)


def vector_headers(**changes: str) -> dict[str, str]:
    headers = {
        "Host": HOST,
        "X-Project-Id": PROJECT_ID,
        "X-Sdk-Date": DATE,
        "Authorization": f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={SIGNED}, Signature={SIGNATURE}",
    }
    headers.update(changes)
    return headers


@pytest.fixture
def verifier() -> IdentitySimulator:
    service = IdentitySimulator()  # verify_aksk needs no server
    service.add_aksk(AK, SK)
    return service


def sdk_signed(method: str, host: str, path: str, query: list[tuple[str, Any]], headers: dict[str, str]) -> Any:
    """A request signed by huaweicloudsdkcore's Signer (the production signer)."""
    request = SdkRequest(
        method=method, schema="http", host=host, resource_path=path, query_params=query, header_params=headers, body=""
    )
    return Signer(BasicCredentials(AK, SK)).sign(request)


def test_aksk_known_answer_vector_verifies(verifier: IdentitySimulator) -> None:
    assert SIGNATURE == EXPECTED_SIGNATURE
    assert verifier.verify_aksk("GET", TARGET, vector_headers(), now=DATE_EPOCH + 60) == AK
    lowered = {name.lower(): value for name, value in vector_headers().items()}
    assert verifier.verify_aksk("get", TARGET, lowered, now=DATE_EPOCH) == AK


def test_the_huawei_sdk_signer_produces_the_known_answer(verifier: IdentitySimulator) -> None:
    signed = sdk_signed(
        "GET",
        HOST,
        "/cn-north-4/v2/schemas/images",
        [("marker", "a b"), ("limit", 10)],
        {"X-Project-Id": PROJECT_ID, "X-Sdk-Date": DATE},
    )
    assert signed.header_params["Authorization"] == vector_headers()["Authorization"]
    assert verifier.verify_aksk("GET", signed.uri, signed.header_params, now=DATE_EPOCH) == AK


def test_sdk_signatures_over_awkward_paths_and_queries_verify(verifier: IdentitySimulator) -> None:
    signed = sdk_signed(
        "GET", HOST, "/r-1/v2/schemas/a b~c(d)", [("z", "1"), ("a", "x/y+z"), ("m", "ü")], {"X-Sdk-Date": DATE}
    )
    target = "/r-1/v2/schemas/a%20b~c%28d%29?" + signed.uri.partition("?")[2]
    assert verifier.verify_aksk("GET", target, signed.header_params, now=DATE_EPOCH) == AK


@pytest.mark.parametrize(
    ("target", "changes"),
    [
        ("/ap-southeast-1/v2/schemas/images?marker=a%20b&limit=10", {}),  # path
        ("/cn-north-4/v2/schemas/images?marker=a%20b&limit=11", {}),  # query
        (TARGET, {"X-Sdk-Date": "20240501T120001Z"}),  # date
        (TARGET, {"X-Project-Id": "fedcba9876543210fedcba9876543210"}),  # signed header
        (TARGET, {"Host": "127.0.0.1:8001"}),  # signed host
        (TARGET, {"Authorization": vector_headers()["Authorization"][:-1] + "0"}),  # signature (ends in "b")
        (TARGET, {"Authorization": vector_headers()["Authorization"].replace(AK, "HPUAOTHERACCESSKEY00")}),
        (TARGET, {"Authorization": vector_headers()["Authorization"].replace("SDK-HMAC-SHA256", "SDK-HMAC-SM3")}),
    ],
)
def test_tampering_fails_verification(verifier: IdentitySimulator, target: str, changes: dict[str, str]) -> None:
    assert verifier.verify_aksk("GET", target, vector_headers(**changes), now=DATE_EPOCH) is None


def test_unsigned_or_stale_dates_and_unsigned_bodies_fail(verifier: IdentitySimulator) -> None:
    assert verifier.verify_aksk("GET", TARGET, vector_headers(), now=DATE_EPOCH + 15 * 60 + 1) is None
    assert verifier.verify_aksk("GET", TARGET, vector_headers(), now=DATE_EPOCH - 15 * 60 - 1) is None
    assert verifier.verify_aksk("GET", TARGET, vector_headers(), b"{}", now=DATE_EPOCH) is None  # body hash differs
    assert verifier.verify_aksk("POST", TARGET, vector_headers(), now=DATE_EPOCH) is None
    # A correct signature over host only: refused because X-Sdk-Date is not signed.
    canonical = "GET\n/cn-north-4/v2/schemas/images/\nlimit=10&marker=a%20b\nhost:127.0.0.1:8000\n\nhost\n" + (
        hashlib.sha256(b"").hexdigest()
    )
    to_sign = f"SDK-HMAC-SHA256\n{DATE}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(SK.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    host_only = f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host, Signature={signature}"
    assert verifier.verify_aksk("GET", TARGET, vector_headers(Authorization=host_only), now=DATE_EPOCH) is None
    assert verifier.verify_aksk("GET", TARGET, {"Host": HOST, "X-Sdk-Date": DATE}, now=DATE_EPOCH) is None


def test_temporary_credentials_need_the_signed_security_token(verifier: IdentitySimulator) -> None:
    verifier.add_aksk(AK, SK, security_token="sts-token-1")
    assert verifier.verify_aksk("GET", TARGET, vector_headers(), now=DATE_EPOCH) is None
    signed = sdk_signed(
        "GET", HOST, "/cn-north-4/v2/schemas/images", [], {"X-Sdk-Date": DATE, "X-Security-Token": "sts-token-1"}
    )
    assert verifier.verify_aksk("GET", signed.uri, signed.header_params, now=DATE_EPOCH) == AK
    forged = {**signed.header_params, "X-Security-Token": "sts-token-2"}
    assert verifier.verify_aksk("GET", signed.uri, forged, now=DATE_EPOCH) is None


def test_region_simulator_accepts_sdk_signed_requests_for_the_regions_project(identity: IdentitySimulator) -> None:
    identity.add_aksk(AK, SK)
    project_ids = {REGIONS[0]: PROJECT_ID, REGIONS[1]: "fedcba9876543210fedcba9876543210"}
    authorizer = region_authorizer(identity, project_ids=project_ids)
    with Simulator(REGIONS, authorizer=authorizer) as sim, httpx.Client(timeout=5.0) as http:
        host = sim.base_url.removeprefix("http://")

        def fetch(region: str, project_id: str, **tamper: str) -> int:
            path = f"/{region}/v2/schemas/images"
            signed = sdk_signed("GET", host, path, [], {"X-Project-Id": project_id})
            return http.get(sim.base_url + signed.uri, headers={**signed.header_params, **tamper}).status_code

        assert fetch(REGIONS[0], PROJECT_ID) == 200
        assert fetch(REGIONS[1], PROJECT_ID) == 401  # another region's project id
        assert fetch(REGIONS[0], PROJECT_ID, **{"X-Sdk-Date": "20200101T000000Z"}) == 401
        assert authorizer.rejected() == 2
