"""The read API over real HTTP, on SQLite and PostgreSQL: every route, then schemathesis against the API's
own OpenAPI document.

The pipeline is the real one (``app.build``) with its event loop running in a thread, as in the daemon, so an
acknowledgement's refresh callback (``app.refresh_soon``) really runs on the loop. State before each test:
every target polled, then r1's ``images`` changed (breaking) and a property added to r2's ``member`` and
r3's ``image``, each polled again. A second cloud, ``up``, serves r2's documents for cross-cloud comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.core.result import Ok

from monitor.app import run_daemon
from monitor.config import parse_config
from monitor.domain import TargetKey
from monitor.judge.canonical import canonicalize
from monitor.read.model import ReadModel
from monitor.store.records import SnapshotRecord, StoreError
from monitor.store.repository import Repository
from monitor.web.api import ApiContext
from monitor.web.app import create_app
from monitor.web.server import WebServer
from tests.conftest import REGIONS, TOKEN, config_data, fresh_database, migrate
from tests.support.live_api import API_TOKEN, MIN_DISK, R1_IMAGES, Live, api_config, error, start_live
from tests.support.process import wait_for
from tests.support.regions import Simulator

R2_IMAGES = TargetKey("sim", "r2", "images")
PATHS = {
    "/api/",
    "/api/targets",
    "/api/targets/{cloud}/{region}/{schema}/drift",
    "/api/expect",
    "/api/targets/{cloud}/{region}/{schema}/snapshots",
    "/api/targets/{cloud}/{region}/{schema}/diff",
    "/api/targets/{cloud}/{region}/{schema}/ack",
    "/api/documents/{sha256}",
    "/api/targets/{cloud}/{region}/{schema}/transitions",
    "/api/changes",
    "/api/changes/{change_id}",
    "/api/compare",
    "/api/surface",
    "/api/consumers",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def shared_live(
    request: pytest.FixtureRequest, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """One polled pipeline per backend for the tests that only read."""
    directory = tmp_path_factory.mktemp("api")
    with Simulator(REGIONS, token=TOKEN) as simulator, fresh_database(request, backend, directory) as url:
        instance = start_live(simulator, migrate(url))
        yield instance
        instance.close()


@pytest.fixture
def live(request: pytest.FixtureRequest, backend: str, shared_live: Live, tmp_path: Path) -> Iterator[Live]:
    """The polled pipeline: the shared one, or a fresh one of its own for a test marked ``writes``."""
    if request.node.get_closest_marker("writes") is None:
        yield shared_live
        return
    with Simulator(REGIONS, token=TOKEN) as simulator, fresh_database(request, backend, tmp_path) as url:
        instance = start_live(simulator, migrate(url))
        yield instance
        instance.close()


def target_path(key: TargetKey, action: str) -> str:
    return f"/api/targets/{key.cloud}/{key.region}/{key.schema}/{action}"


def target_state(live: Live, key: TargetKey) -> dict[str, Any]:
    targets = live.get("/api/targets")["targets"]
    return next(t for t in targets if (t["cloud"], t["region"], t["schema"]) == (key.cloud, key.region, key.schema))


# --- the document -----------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_and_describes_every_route(live: Live) -> None:
    document = live.get("/api/openapi.json")
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == PATHS
    parameters = document["paths"]["/api/targets/{cloud}/{region}/{schema}/snapshots"]["get"]["parameters"]
    assert {p["name"]: p["schema"]["enum"] for p in parameters} == {
        "cloud": ["sim", "up"],
        "region": ["r1", "r2", "r3"],
        "schema": ["image", "images", "member", "members"],
    }
    loaded = schemathesis.openapi.from_dict(document)
    assert len(all_operations(loaded)) == len(PATHS)


def test_the_document_declares_the_bearer_token_on_the_write_routes_and_since_as_it_is(live: Live) -> None:
    document = live.get("/api/openapi.json")
    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "description": "api.token from the configuration"}
    }
    secured = {(path, method) for path, item in document["paths"].items() for method, operation in item.items()
               if operation.get("security") == [{"bearer": []}]}  # fmt: skip
    assert secured == {("/api/targets/{cloud}/{region}/{schema}/ack", "post"), ("/api/expect", "post")}
    since = next(p for p in document["paths"]["/api/changes"]["get"]["parameters"] if p["name"] == "since")
    assert [branch.get("format") or branch.get("pattern") for branch in since["schema"]["anyOf"]] == [
        "^[0-9]{1,12}(\\.[0-9]{1,6})?(ms|s|m|h|d)?$",
        "date-time",
    ]
    assert "a duration ago (24h, 7d) or an ISO 8601 date-time" in since["description"]
    expect = document["components"]["schemas"]["ExpectRequest"]["properties"]
    assert expect["cloud"]["enum"] == ["sim", "up"] and expect["schema"]["enum"] == ["image", "images", "member",
                                                                                    "members"]  # fmt: skip
    assert live.get("/api/changes", since="240000h")["changes"]  # a duration ago, as the document says


def test_the_api_index_lists_every_route_of_the_document(live: Live) -> None:
    index = live.get("/api/")
    document = live.get("/api/openapi.json")
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert {(r["method"], r["path"]) for r in index["routes"]} == documented - {("GET", "/api/")}
    assert index["openapi"] == "/api/openapi.json" and index["interactive_docs"] is None
    families = {r["path"]: r["family"] for r in index["routes"]}
    assert families["/api/targets/{cloud}/{region}/{schema}/drift"] == "target" and families["/api/expect"] == "expect"
    assert all(r["summary"] for r in index["routes"])
    assert live.http.get("/api", follow_redirects=True).json() == index


def test_interactive_docs_are_not_served_and_the_path_says_why(live: Live) -> None:
    page = live.http.get("/docs")
    assert page.status_code == 404 and "CDN" in page.text and "/api/openapi.json" in page.text
    assert "Content-Security-Policy" in error(live.http.get("/api/docs"), 404)


# --- targets, snapshots, documents ------------------------------------------------------------------


def test_targets_show_database_state_deviation_and_unacknowledged_drift(live: Live) -> None:
    targets = live.get("/api/targets")["targets"]
    assert len(targets) == len(live.parts.specs) == 13
    changed = target_state(live, R1_IMAGES)
    snapshots = live.get(target_path(R1_IMAGES, "snapshots"))["snapshots"]
    assert changed["snapshot_id"] == snapshots[-1]["id"] and changed["sha256"] == snapshots[-1]["sha256"]
    assert changed["baseline_snapshot_id"] == snapshots[0]["id"]
    assert changed["poll_ok"] is True and changed["last_poll_at"] and changed["last_success_at"]
    assert changed["deviates"] is True and changed["flapping"] is False
    assert changed["unacknowledged"] == {"breaking": 1, "warning": 1, "info": 0, "cosmetic": 0}
    assert changed["url"].endswith("/r1/v2/schemas/images")
    steady = target_state(live, R2_IMAGES)
    assert steady["deviates"] is False and steady["snapshot_id"] == steady["baseline_snapshot_id"]
    assert steady["unacknowledged"] == {"breaking": 0, "warning": 0, "info": 0, "cosmetic": 0}


def test_snapshots_list_a_target_oldest_first(live: Live) -> None:
    body = live.get(target_path(R1_IMAGES, "snapshots"))
    assert (body["cloud"], body["region"], body["schema"]) == ("sim", "r1", "images")
    first, second = body["snapshots"]
    assert first["id"] < second["id"] and first["sha256"] != second["sha256"]
    assert first["first_seen"] <= first["last_seen"] <= second["first_seen"]
    assert len(live.get(target_path(R2_IMAGES, "snapshots"))["snapshots"]) == 1


def test_a_document_is_served_byte_for_byte_as_stored(live: Live) -> None:
    sha = live.get(target_path(R1_IMAGES, "snapshots"))["snapshots"][-1]["sha256"]
    response = live.http.get(f"/api/documents/{sha}")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert hashlib.sha256(response.content).hexdigest() == sha
    assert "min_disk" not in response.json()["properties"]["images"]["items"]["properties"]
    assert live.http.get(f"/api/documents/{sha.upper()}").content == response.content
    assert "no stored document" in error(live.http.get(f"/api/documents/{'0' * 64}"), 404)
    assert error(live.http.get("/api/documents/abc"), 400) == "sha256 must be 64 hexadecimal characters (a sha256)"


def test_labels_must_name_a_configured_target(live: Live) -> None:
    assert "no configured target" in error(live.http.get("/api/targets/sim/r9/images/snapshots"), 404)
    assert error(live.http.get("/api/targets/up/r1/images/snapshots"), 404)  # both configured, not together
    assert error(live.http.get("/api/targets/sim/r1/images/diff?from=abc"), 400)


# --- changes ------------------------------------------------------------------------------------------


def test_changes_come_newest_first_with_fingerprint_and_flags(live: Live) -> None:
    changes = live.get("/api/changes")["changes"]
    assert len(changes) == 4
    assert [c["id"] for c in changes] == sorted((c["id"] for c in changes), reverse=True)
    # a poll stores its changes worst last: newest first, its breaking change comes first
    assert [c["severity"] for c in changes if c["schema"] == "images"] == ["breaking", "warning"]
    r1 = live.get("/api/changes", cloud="sim", region="r1", schema="images")["changes"]
    assert {(c["rule"], c["severity"]) for c in r1} == {("property-removed", "breaking"),
                                                        ("enum-value-added", "warning")}  # fmt: skip
    for change in r1:
        assert len(change["fingerprint"]) == 64 and change["ignored"] is False and change["expected"] is False
    assert [c["rule"] for c in live.get("/api/changes", severity="breaking")["changes"]] == ["property-removed"]
    assert live.get("/api/changes", since="2999-01-01T00:00:00Z")["changes"] == []
    assert len(live.get("/api/changes", since="2000-01-01T00:00:00+02:00")["changes"]) == 4


def test_consumers_say_which_requirement_broke_where_and_why(live: Live) -> None:
    [uploader] = live.get("/api/consumers")["consumers"]
    assert (uploader["name"], uploader["clouds"]) == ("uploader", ["sim"])
    missing, writable = (r["id"] for r in uploader["requirements"])
    assert {r["region"]: r["compatible"] for r in uploader["regions"]} == {"r1": False, "r2": True, "r3": True}
    assert uploader["regions"][0]["broken"] == [
        {"requirement": missing, "reason": "no min_disk in /properties/images/items/properties"}
    ]
    assert writable != missing
    only = live.get("/api/consumers", consumer="uploader", region="r2")["consumers"][0]["regions"]
    assert [r["region"] for r in only] == ["r2"]
    assert error(live.http.get("/api/consumers", params={"consumer": "nobody"}), 404) == (
        "no consumer 'nobody' (consumers: uploader)"
    )
    assert error(live.http.get("/api/consumers", params={"region": "r9"}), 404) == (
        "no consumer is judged in region 'r9' (regions: r1, r2, r3)"
    )
    assert "unknown query parameter" in error(live.http.get("/api/consumers", params={"cloud": "sim"}), 400)


def test_a_change_that_broke_a_consumer_carries_the_mark(live: Live) -> None:
    r1 = live.get("/api/changes", cloud="sim", region="r1", schema="images")["changes"]
    marks = {c["rule"]: [(m["consumer"], m["reason"]) for m in c["breaks"]] for c in r1}
    assert marks == {
        "property-removed": [("uploader", "no min_disk in /properties/images/items/properties")],
        "enum-value-added": [],
    }
    removed = next(c for c in r1 if c["rule"] == "property-removed")
    assert live.get(f"/api/changes/{removed['id']}")["breaks"][0]["description"] == f"images: {MIN_DISK} exists"


def test_change_pages_follow_next_and_are_disjoint(live: Live) -> None:
    everything = [c["id"] for c in live.get("/api/changes")["changes"]]
    seen: list[int] = []
    page = live.get("/api/changes", limit=1, cloud="sim")
    while True:
        assert len(page["changes"]) == 1
        seen += [c["id"] for c in page["changes"]]
        if page["next"] is None:
            break
        assert "cloud=sim" in page["next"] and "limit=1" in page["next"]
        page = live.get(page["next"])
    assert seen == everything and len(set(seen)) == len(seen)
    first = live.get("/api/changes", limit=3)
    rest = live.get(first["next"])
    assert len(first["changes"]) == 3 and len(rest["changes"]) == 1 and rest["next"] is None
    assert not {c["id"] for c in first["changes"]} & {c["id"] for c in rest["changes"]}


INVALID_CHANGE_QUERIES = [
    "limit=0", "limit=1001", "limit=x", "before_id=0", "severity=loud", "since=yesterday", "cloud=nope", "region=r9",
    "limit=1&limit=2", "colour=red",
]  # fmt: skip


def test_invalid_change_queries_are_400(live: Live) -> None:
    for query in INVALID_CHANGE_QUERIES:
        error(live.http.get(f"/api/changes?{query}"), 400)


# --- diff ---------------------------------------------------------------------------------------------


def test_diff_defaults_to_the_last_two_snapshots_in_json(live: Live) -> None:
    first, second = live.get(target_path(R1_IMAGES, "snapshots"))["snapshots"]
    (report,) = live.get(target_path(R1_IMAGES, "diff"))
    assert report["title"] == f"sim/r1/images: snapshot {first['id']} → {second['id']}"
    assert {(c["rule"], c["path"]) for c in report["changes"]} == {
        ("property-removed", "/properties/images/items/properties/min_disk"),
        ("enum-value-added", "/properties/images/items/properties/disk_format/enum"),
    }
    (backwards,) = live.get(target_path(R1_IMAGES, "diff"), **{"from": second["id"], "to": first["id"]})
    assert "property-added" in {c["rule"] for c in backwards["changes"]}


def test_diff_as_json_patch_turns_the_old_document_into_the_new(live: Live) -> None:
    first, second = live.get(target_path(R1_IMAGES, "snapshots"))["snapshots"]
    patch = live.get(target_path(R1_IMAGES, "diff"), format="jsonpatch")
    assert patch and {op["op"] for op in patch} <= {"add", "remove", "replace"}
    old = live.get(f"/api/documents/{first['sha256']}")
    new = live.get(f"/api/documents/{second['sha256']}")
    assert jsonpatch.apply_patch(canonicalize(old), patch) == canonicalize(new)


@pytest.mark.parametrize("fmt", ["markdown", "text"])
def test_diff_as_text_or_markdown_is_wrapped_in_json(live: Live, fmt: str) -> None:
    body = live.get(target_path(R1_IMAGES, "diff"), format=fmt)
    assert body["format"] == fmt and "property-removed" in body["body"] and "\033[" not in body["body"]


def test_diff_refuses_foreign_snapshots_and_a_single_snapshot(live: Live) -> None:
    foreign = live.get(target_path(R2_IMAGES, "snapshots"))["snapshots"][0]["id"]
    assert "does not belong" in error(live.http.get(target_path(R1_IMAGES, "diff"), params={"to": foreign}), 404)
    assert "a diff needs two" in error(live.http.get(target_path(R2_IMAGES, "diff")), 409)
    assert error(live.http.get(target_path(R1_IMAGES, "diff"), params={"format": "yaml"}), 400)


# --- compare ------------------------------------------------------------------------------------------


def test_compare_shows_the_deviating_region_its_changes_and_the_rollout(live: Live) -> None:
    body = live.get("/api/compare", cloud="sim", schema="images")
    comparison = body["comparison"]
    assert comparison["deviating"] == ["r1"] and comparison["reference"]["label"] == "majority"
    assert [r["region"] for r in comparison["regions"]] == ["r1", "r2", "r3"]
    (deviation,) = body["deviations"]
    assert deviation["region"] == "r1"
    removed = next(c for c in deviation["changes"] if c["rule"] == "property-removed")
    assert removed["severity"] == "breaking" and removed["path"] == "/properties/images/items/properties/min_disk"
    assert removed["old_present"] is True and removed["new_present"] is False and removed["new"] is None
    (rollout,) = body["rollouts"]
    # r1 moved first, the reference (the majority) not yet: r2 and r3 did not change, they lag behind nothing
    assert rollout["cloud"] == "sim" and rollout["updated"] == ["r1"] and rollout["lagging"] == []
    against_r1 = live.get("/api/compare", cloud="sim", schema="images", reference="r1")
    assert against_r1["comparison"]["deviating"] == ["r2", "r3"]
    assert {c["rule"] for c in against_r1["deviations"][0]["changes"]} >= {"property-added"}


def test_compare_across_clouds_labels_regions_by_cloud(live: Live) -> None:
    body = live.get("/api/compare", cloud="sim", schema="images", other_cloud="up")
    assert body["other_cloud"] == "up"
    assert [r["region"] for r in body["comparison"]["regions"]] == ["sim/r1", "sim/r2", "sim/r3", "up/r2"]
    assert body["comparison"]["deviating"] == ["sim/r1"]
    assert live.get("/api/compare", cloud="sim", schema="images", other_cloud="up",
                    reference="up/r2")["comparison"]["deviating"] == ["sim/r1"]  # fmt: skip


def test_compare_errors(live: Live) -> None:
    assert "required" in error(live.http.get("/api/compare", params={"cloud": "sim"}), 400)
    assert "no configured targets" in error(live.http.get("/api/compare?cloud=up&schema=member"), 404)
    assert "must be one of" in error(live.http.get("/api/compare?cloud=nope&schema=images"), 400)
    assert "not a compared region" in error(live.http.get("/api/compare?cloud=sim&schema=images&reference=up/r2"), 404)


# --- acknowledgement ------------------------------------------------------------------------------------


def ack(live: Live, key: TargetKey, body: Any, token: str | None = API_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return live.http.post(target_path(key, "ack"), json=body, headers=headers)


def unacknowledged(live: Live, key: TargetKey) -> dict[str, str]:
    return {fp: c.severity.value for fp, c in live.parts.intelligence.unacknowledged(key)}


def drift_gauge(live: Live, severity: str) -> float | None:
    labels = {"cloud": "sim", "region": "r1", "schema": "images", "severity": severity}
    return live.parts.metrics.registry.get_sample_value("schemadrift_drift_unacknowledged", labels)


@pytest.mark.writes
@pytest.mark.slow
def test_acknowledging_a_fingerprint_clears_it_after_the_refresh(live: Live) -> None:
    pending = unacknowledged(live, R1_IMAGES)
    breaking = next(fp for fp, severity in pending.items() if severity == "breaking")
    stored = live.get("/api/changes", region="r1", schema="images", severity="breaking")["changes"][0]
    assert stored["fingerprint"] == breaking
    response = ack(live, R1_IMAGES, {"fingerprints": [breaking, "0" * 64], "comment": "known", "by": "alice",
                                     "expires_in_seconds": 3600})  # fmt: skip
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["acknowledged"] == [breaking, "0" * 64] and result["not_pending"] == ["0" * 64]
    assert result["approved_snapshot_id"] is None and result["expires_at"]
    wait_for(lambda: breaking not in unacknowledged(live, R1_IMAGES))
    assert drift_gauge(live, "breaking") == 0 and drift_gauge(live, "warning") == 1
    assert target_state(live, R1_IMAGES)["unacknowledged"]["warning"] == 1


@pytest.mark.writes
def test_approving_makes_the_current_document_the_baseline(live: Live) -> None:
    response = ack(live, R1_IMAGES, {"approve": True, "comment": "rolled out on purpose"})
    assert response.status_code == 200, response.text
    latest = live.get(target_path(R1_IMAGES, "snapshots"))["snapshots"][-1]["id"]
    assert response.json()["approved_snapshot_id"] == latest
    wait_for(lambda: not unacknowledged(live, R1_IMAGES))
    state = target_state(live, R1_IMAGES)
    assert state["baseline_snapshot_id"] == latest and sum(state["unacknowledged"].values()) == 0


INVALID_ACKS: list[Any] = [
    {}, {"approve": True}, {"approve": True, "comment": "  "}, {"approve": False, "comment": "x"},
    {"fingerprints": [], "comment": "x"}, {"fingerprints": ["abc"], "comment": "x"},
    {"approve": True, "fingerprints": ["0" * 64], "comment": "x"},
    {"approve": True, "comment": "x", "expires_in_seconds": 60},
    {"fingerprints": ["0" * 64], "comment": "x", "expires_in_seconds": 0},
    {"fingerprints": ["0" * 64], "comment": "x\u0000"}, {"approve": True, "comment": "x", "by": "b" * 129},
    {"approve": True, "comment": "x", "extra": 1}, [1, 2],
]  # fmt: skip


PYDANTIC_WORDS = ("list[", "constrained", "Input should", "Field required", "JSON decode", "Value error", "literal[",
                  "String should", "pattern")  # fmt: skip


def test_invalid_acknowledgements_are_400_with_a_sentence(live: Live) -> None:
    for body in INVALID_ACKS:
        message = error(ack(live, R1_IMAGES, body), 400)
        assert not [word for word in PYDANTIC_WORDS if word in message], message


SENTENCES = [
    ({"fingerprints": ["abc"], "comment": "x"},
     "fingerprints[0] must be 8 to 64 hexadecimal characters: a fingerprint from drift, or its start"),
    ({"fingerprints": [], "comment": "x"}, "fingerprints must list at least 1 item(s)"),
    ({"fingerprints": "abc", "comment": "x"}, "fingerprints must be a list"),
    ({"approve": False, "comment": "x"}, "approve must be true"),
    ({"approve": True}, "comment is required"),
    ({"approve": True, "comment": "  "}, "comment must be text that is not blank and has no NUL character"),
    ({"approve": True, "comment": "x", "by": "b" * 129}, "by must have at most 128 characters"),
    ({"approve": True, "comment": "x", "extra": 1}, "extra is not a field of this request"),
    ({"fingerprints": ["0" * 64], "comment": "x", "expires_in_seconds": 0}, "expires_in_seconds must be more than 0"),
    ({"approve": True, "comment": "x", "expires_in_seconds": 60},
     "an expiry applies to acknowledged fingerprints, not to approving a document"),
    ([1, 2], "the request body must be a JSON object"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "sentence"), SENTENCES, ids=[s for _, s in SENTENCES])
def test_a_refused_body_names_the_field_and_what_it_must_be(live: Live, body: Any, sentence: str) -> None:
    assert error(ack(live, R1_IMAGES, body), 400) == sentence


def test_a_body_that_is_not_json_says_so(live: Live) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
    broken = live.http.post(target_path(R1_IMAGES, "ack"), content=b'{"approve": true,}', headers=headers)
    assert error(broken, 400) == "the request body is not valid JSON: Expecting property name enclosed in double quotes"


REFUSED_QUERIES = [
    ("limit=0", "limit must be at least 1"), ("limit=x", "limit must be a whole number"),
    ("before_id=0", "before_id must be at least 1"),
    ("severity=loud", "severity must be one of: 'breaking', 'warning', 'info', 'cosmetic'"),
    ("since=yesterday", "since must be a duration ago (24h, 7d) or an ISO 8601 date-time"),
]  # fmt: skip


def test_refused_queries_name_the_parameter(live: Live) -> None:
    for query, sentence in REFUSED_QUERIES:
        assert error(live.http.get(f"/api/changes?{query}"), 400).startswith(sentence), query
    assert error(live.http.get(target_path(R1_IMAGES, "diff"), params={"format": "yaml"}), 400) == (
        "format must be one of: 'json', 'jsonpatch', 'markdown', 'text'"
    )


def test_drift_lists_the_fingerprints_ack_takes_as_the_cli_does(live: Live) -> None:
    body = live.get(target_path(R1_IMAGES, "drift"))
    assert (body["cloud"], body["region"], body["schema"]) == ("sim", "r1", "images")
    assert {(c["rule"], c["acknowledged"]) for c in body["changes"]} <= {
        ("property-removed", False), ("enum-value-added", False), ("property-removed", True),
        ("enum-value-added", True),
    }  # fmt: skip
    stored = {c["fingerprint"] for c in live.get("/api/changes", region="r1", schema="images")["changes"]}
    assert {c["fingerprint"] for c in body["changes"]} == stored
    assert live.get(target_path(R2_IMAGES, "drift"))["changes"] == []


def test_acknowledging_needs_the_bearer_token_and_never_echoes_it(live: Live, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"approve": True, "comment": "x"}
    for response in (
        ack(live, R1_IMAGES, body, token="wrong"),
        ack(live, R1_IMAGES, body, token=None),
        live.http.post(target_path(R1_IMAGES, "ack"), json=body, headers={"Authorization": API_TOKEN}),
    ):
        assert "bearer token" in error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert API_TOKEN not in response.text
    assert "no configured target" in error(ack(live, TargetKey("sim", "r9", "images"), body), 404)
    broken = live.http.post(
        target_path(R1_IMAGES, "ack"), content=b"{", headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert "JSON object" in error(broken, 400)
    assert API_TOKEN not in caplog.text


def test_write_endpoints_are_off_without_a_token(simulator: Simulator, migrated_db_url: str) -> None:
    live = Live(api_config(simulator, migrated_db_url, token=None))
    try:
        live.poll(R1_IMAGES)
        response = ack(live, R1_IMAGES, {"approve": True, "comment": "x"}, token="anything")
        assert error(response, 403) == "write endpoints are disabled: set api.token"
        assert live.get("/api/targets")["targets"]
    finally:
        live.close()


# --- HTTP details -----------------------------------------------------------------------------------


def test_unknown_routes_and_methods_answer_json(live: Live) -> None:
    assert "see /api/openapi.json" in error(live.http.get("/api/nope"), 404)
    response = live.http.delete("/api/targets")
    assert "not allowed" in error(response, 405) and response.headers["allow"] == "GET"
    assert live.http.get(target_path(R1_IMAGES, "ack")).headers["allow"] == "POST"
    assert "unknown query parameter" in error(live.http.get("/api/targets?verbose=1"), 400)
    assert live.http.get("/metrics").status_code == 200 and live.http.get("/healthz").text == "ok\n"


def test_status_routes_answer_within_a_second_while_the_daemon_loop_is_stalled(live: Live) -> None:
    """The HTTP side has its own thread and loop: a daemon loop blocked for 3 s delays no scrape."""
    stalled = threading.Event()

    def stall() -> None:
        stalled.set()
        time.sleep(3.0)

    live.loop.call_soon_threadsafe(stall)
    assert stalled.wait(5)
    for path in ("/metrics", "/healthz", "/readyz"):
        started = time.monotonic()
        response = live.http.get(path)
        assert response.status_code == 200 and time.monotonic() - started < 1.0, path


class BrokenRepository(Repository):
    """A database that fails every snapshot read."""

    def snapshots(self, target_id: int) -> list[SnapshotRecord]:
        raise StoreError("read", "OperationalError: connection refused to db.internal:5432")


@pytest.mark.slow
def test_a_database_failure_is_a_503_without_details(live: Live) -> None:
    parts = live.parts
    read = ReadModel(parts.config, parts.database)
    read._repository = BrokenRepository(parts.database.engine)
    broken = ApiContext(parts.config, read, parts.database.drift)
    broken.set_targets(parts.specs)
    server = WebServer(create_app(parts.metrics, lambda: {"scheduler": True}, broken), "127.0.0.1", 0)
    server.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}{target_path(R1_IMAGES, 'snapshots')}", timeout=10)
    finally:
        server.stop()
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "the database is not available; see the monitor's log"}


def test_the_daemon_serves_the_api(simulator: Simulator, migrated_db_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data = config_data(simulator, migrated_db_url)
    data["http"] = {"listen": f"127.0.0.1:{port}"}
    config = parse_config(data, "test")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(run_daemon(config, stop),), daemon=True)
    thread.start()
    try:
        answer = wait_for(lambda: _get_or_none(f"http://127.0.0.1:{port}/api/targets"), timeout=20)
        assert answer.status_code == 200 and len(answer.json()["targets"]) == 12
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def _get_or_none(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


# --- schemathesis -------------------------------------------------------------------------------------


def all_operations(schema: Any) -> list[Any]:
    """Every operation of a loaded schema; fails on one schemathesis could not load."""
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


@pytest.mark.writes
@pytest.mark.slow
def test_the_api_conforms_to_its_openapi_document(live: Live) -> None:
    """Generated requests (positive, ≤ 20 per operation) and known-good ones, validated against the document."""
    schema = schemathesis.openapi.from_dict(live.get("/api/openapi.json"))  # from_url would skip that route
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    operations = {op.label: op for op in all_operations(schema)}
    assert {label.split(" ", 1)[1] for label in operations} == PATHS
    for case in known_good_cases(live, operations):
        response = case.call_and_validate(base_url=live.base_url, headers=headers)
        assert response.status_code == 200, response.text
    for label in sorted(operations, key=lambda label: label.startswith("POST")):  # acks (approve) last

        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operations[label].as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(base_url=live.base_url, headers=headers)

        check()


def known_good_cases(live: Live, operations: dict[str, Any]) -> list[Any]:
    """Requests that answer 200, so every success body is validated whatever the generator picks."""
    target = {"cloud": "sim", "region": "r1", "schema": "images"}
    sha = live.get(target_path(R1_IMAGES, "snapshots"))["snapshots"][-1]["sha256"]
    diff = operations["GET /api/targets/{cloud}/{region}/{schema}/diff"]
    return [
        operations["GET /api/documents/{sha256}"].Case(path_parameters={"sha256": sha}),
        *(
            diff.Case(path_parameters=target, query={"format": fmt})
            for fmt in ("json", "jsonpatch", "markdown", "text")
        ),
        operations["GET /api/compare"].Case(query={"cloud": "sim", "schema": "images", "other_cloud": "up"}),
        operations["GET /api/changes"].Case(query={"limit": 2}),
        operations["GET /api/consumers"].Case(query={"consumer": "uploader", "region": "r1"}),
    ]
