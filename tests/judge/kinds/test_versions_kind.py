"""The versions kind on the real discovery documents of tests/data/openstack_surface."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.domain import FailureReason
from monitor.judge.canonical import DocumentError, canonical_json
from monitor.judge.kinds import Microversion, VersionEntry, get_kind, version_entries
from monitor.judge.kinds.versions import fold_headers, normalise_status, reconciled
from tests.support.paths import DATA

REAL = DATA / "openstack_surface"
VERSIONS = get_kind("versions")


def body(document: str) -> bytes:
    """A real body, by ``<service folder>/<name>``."""
    return (REAL / f"{document}.json").read_bytes()


def served_headers(document: str) -> dict[str, str]:
    """The real response headers of a document, lower-case names (a repeated header joined with ', ')."""
    headers = json.loads((REAL / f"{document}.headers.json").read_text(encoding="utf-8"))["headers"]
    return {name.lower(): ", ".join(v) if isinstance(v, list) else v for name, v in headers.items()}


def normalised(document: str, **options: Any) -> dict[str, Any]:
    return VERSIONS.normalise(body(document), served_headers(document), **options)


def test_nova_root_normalises_to_its_canonical_form() -> None:
    assert normalised("nova-27.5.1/root") == {
        "headers": {},
        "versions": {
            "v2.0": {
                "id": "v2.0",
                "links": [{"href": "/v2/", "rel": "self"}],
                "max_version": None,
                "min_version": None,
                "status": "SUPPORTED",
                "updated": "2011-01-21T11:33:21Z",
            },
            "v2.1": {
                "id": "v2.1",
                "links": [{"href": "/v2.1/", "rel": "self"}],
                "max_version": "2.95",
                "min_version": "2.1",
                "status": "CURRENT",
                "updated": "2013-07-23T11:33:21Z",
            },
        },
    }


def test_keep_hosts_keeps_the_hosts_of_the_links() -> None:
    doc = normalised("nova-27.5.1/root", keep_hosts=True)

    assert doc["versions"]["v2.1"]["links"] == [{"href": "http://127.0.0.1:19500/v2.1/", "rel": "self"}]


def test_the_canonical_text_does_not_depend_on_key_order_or_whitespace() -> None:
    original = json.loads(body("cinder-22.3.0/root"))
    reordered = json.dumps({"versions": [dict(reversed(list(original["versions"][0].items())))]}).encode()

    assert canonical_json(VERSIONS.normalise(reordered, {})) == canonical_json(
        VERSIONS.normalise(body("cinder-22.3.0/root"), {})
    )


def test_keystone_values_shape_and_stable_status_read_as_keystoneauth_reads_them() -> None:
    entry = normalised("keystone-23.0.2/root")["versions"]["v3.14"]

    assert (entry["status"], entry["min_version"], entry["max_version"]) == ("CURRENT", None, None)
    assert entry["links"] == [{"href": "/v3/", "rel": "self"}]


def test_placement_keeps_its_empty_relative_href_and_reads_max_version() -> None:
    doc = normalised("placement-5.0.1/root")

    assert doc["versions"]["v1.0"]["links"] == [{"href": "", "rel": "self"}]
    assert (doc["versions"]["v1.0"]["min_version"], doc["versions"]["v1.0"]["max_version"]) == ("1.0", "1.36")
    assert doc["headers"] == {}  # the served microversion is no part of the surface


def test_placement_served_at_latest_is_the_same_document_as_served_at_the_default() -> None:
    root, latest = normalised("placement-5.0.1/root"), normalised("placement-5.0.1/root-latest")

    assert VERSIONS.classify(root, latest) == []
    assert canonical_json(root) == canonical_json(latest)


def test_nova_v2_0_empty_microversions_mean_none() -> None:
    entry = normalised("nova-27.5.1/v2")["versions"]["v2.0"]

    assert (entry["min_version"], entry["max_version"]) == (None, None)
    assert "version" not in entry


def test_the_single_version_shape_of_nova_is_one_entry() -> None:
    doc = normalised("nova-27.5.1/v2.1")

    assert list(doc["versions"]) == ["v2.1"]
    assert "other" not in doc
    assert doc["headers"] == {}


def test_nova_served_at_latest_is_the_same_document_as_served_at_the_default() -> None:
    assert canonical_json(normalised("nova-27.5.1/v2.1")) == canonical_json(normalised("nova-27.5.1/v2.1-latest"))


def test_the_single_version_shape_of_ironic_keeps_its_resources_under_other() -> None:
    doc = normalised("ironic-21.4.4/v1")

    assert version_entries(doc) == [VersionEntry("v1", "CURRENT", Microversion(1, 1), Microversion(1, 82))]
    assert doc["other"]["nodes"] == [{"href": "/v1/nodes/", "rel": "self"}, {"href": "/nodes/", "rel": "bookmark"}]
    assert doc["headers"] == {}  # the range headers restate the body's (1.1-1.82), the served version is none


def test_the_same_version_through_root_and_single_shape_has_the_same_entry() -> None:
    via_root = normalised("cinder-22.3.0/root")["versions"]["v3.0"]
    nova_root, nova_single = normalised("nova-27.5.1/root"), normalised("nova-27.5.1/v2.1")

    assert via_root["max_version"] == "3.70"
    assert {k: v for k, v in nova_single["versions"]["v2.1"].items() if k not in ("links", "media-types")} == {
        k: v for k, v in nova_root["versions"]["v2.1"].items() if k != "links"
    }


def test_ironic_root_default_version_is_kept_by_its_id() -> None:
    doc = normalised("ironic-21.4.4/root")

    assert doc["other"]["default_version"] == "v1"
    assert doc["other"]["name"] == "OpenStack Ironic API"


def test_only_the_microversion_range_headers_are_folded() -> None:
    headers = {
        "openstack-api-version": "Compute   2.1",
        "x-openstack-nova-api-version": " 2.1 ",
        "x-openstack-ironic-api-minimum-version": "1.01",
        "x-openstack-ironic-api-maximum-version": "1.82",
        "X-OpenStack-Manila-API-Version": "2.78",
        "x-openstack-request-id": "req-1",
        "openstack-request-id": "req-2",
        "x-compute-request-id": "req-3",
        "date": "Tue, 01 Dec 2026 19:22:57 GMT",
        "last-modified": "Tue, 01 Dec 2026 19:22:57 GMT",
        "server": "Apache",
        "vary": "OpenStack-API-Version",
        "content-type": "application/json",
    }

    assert fold_headers(headers) == {
        "x-openstack-ironic-api-minimum-version": "1.1",
        "x-openstack-ironic-api-maximum-version": "1.82",
    }


def test_a_malformed_maximum_header_is_kept_as_text() -> None:
    assert fold_headers({"x-openstack-ironic-api-maximum-version": "1.82, 1.82"}) == {
        "x-openstack-ironic-api-maximum-version": "1.82, 1.82"
    }


@pytest.mark.parametrize(
    ("raw", "status"),
    [("stable", "CURRENT"), ("current", "CURRENT"), (" Supported ", "SUPPORTED"), ("deprecated", "DEPRECATED")],
)
def test_statuses_are_case_folded_and_stable_is_current(raw: str, status: str) -> None:
    assert normalise_status(raw) == status


def test_an_unknown_status_keeps_its_spelling_in_the_document_but_is_unknown_as_an_entry() -> None:
    doc = VERSIONS.normalise(b'{"versions": [{"id": "v1", "status": "legacy", "links": []}]}', {})

    assert doc["versions"]["v1"]["status"] == "LEGACY"
    assert version_entries(doc) == [VersionEntry("v1", "UNKNOWN", None, None)]


def test_max_version_supersedes_version_as_in_keystoneauth() -> None:
    raw = b'{"versions": [{"id": "v2", "status": "CURRENT", "version": "2.5", "max_version": "2.7"}]}'
    empty_max = b'{"versions": [{"id": "v2", "status": "CURRENT", "version": "2.5", "max_version": ""}]}'

    assert VERSIONS.normalise(raw, {})["versions"]["v2"]["max_version"] == "2.7"
    assert VERSIONS.normalise(empty_max, {})["versions"]["v2"]["max_version"] == "2.5"


def test_version_entries_are_ordered_by_version_number() -> None:
    raw = b'{"versions": [{"id": "v10"}, {"id": "beta"}, {"id": "v2.1"}, {"id": "v2.0"}, {"id": "v3"}]}'

    assert [e.id for e in version_entries(VERSIONS.normalise(raw, {}))] == ["v2.0", "v2.1", "v3", "v10", "beta"]


def test_version_entries_of_nova_root_give_microversions_for_metrics() -> None:
    assert version_entries(normalised("nova-27.5.1/root")) == [
        VersionEntry("v2.0", "SUPPORTED", None, None),
        VersionEntry("v2.1", "CURRENT", Microversion(2, 1), Microversion(2, 95)),
    ]


def test_version_entries_refuses_a_document_that_is_not_a_normalised_versions_document() -> None:
    with pytest.raises(ValueError):
        version_entries({"extensions": {}})


@pytest.mark.parametrize(
    "document", ["keystone-23.0.2/v3-json-home", "neutron-22.2.1/v2.0", "neutron-22.2.1/v2.0-extensions"]
)
def test_a_real_document_that_is_no_version_document_is_invalid_schema(document: str) -> None:
    with pytest.raises(DocumentError) as caught:
        normalised(document)

    assert caught.value.reason is FailureReason.INVALID_SCHEMA


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'{"import-methods": {"type": "array", "value": ["glance-direct"]}}',
        b'{"versions": "v2.1"}',
        b'{"versions": {"v2.1": {}}}',
        b'{"version": []}',
        b'{"versions": [{"status": "CURRENT"}]}',
        b'{"versions": [{"id": 2}]}',
        b'{"versions": [{"id": "v1"}, {"id": "v1"}]}',
        b'{"versions": [{"id": "v2.1", "version": "latest"}]}',
        b'{"versions": [{"id": "v2.1", "min_version": 2.1}]}',
        b'{"versions": [{"id": "v2.1", "status": 1}]}',
    ],
)
def test_json_that_is_no_version_document_is_invalid_schema(raw: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        VERSIONS.normalise(raw, {})

    assert caught.value.reason is FailureReason.INVALID_SCHEMA


@pytest.mark.parametrize("raw", [b"<html>", b'{"versions": []', b'{"a": 1, "a": 2}', b'{"x": NaN}'])
def test_a_body_that_is_not_strict_json_is_invalid_json(raw: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        VERSIONS.normalise(raw, {})

    assert caught.value.reason is FailureReason.INVALID_JSON


def test_a_body_that_is_itself_a_version_takes_its_range_from_the_headers_as_keystoneauth_does() -> None:
    bare = json.loads(body("ironic-21.4.4/v1"))
    del bare["version"]

    doc = VERSIONS.normalise(json.dumps(bare).encode(), served_headers("ironic-21.4.4/v1"))

    assert version_entries(doc) == [VersionEntry("v1", "CURRENT", Microversion(1, 1), Microversion(1, 82))]


def test_a_malformed_maximum_header_does_not_make_a_bare_version_invalid() -> None:
    bare = {"id": "v1", "links": []}
    headers = {"x-openstack-ironic-api-maximum-version": "1.82, 1.83", "x-openstack-ironic-api-minimum-version": "1.1"}

    doc = VERSIONS.normalise(json.dumps(bare).encode(), headers)

    assert version_entries(doc) == [VersionEntry("v1", "CURRENT", Microversion(1, 1), None)]
    assert doc["headers"]["x-openstack-ironic-api-maximum-version"] == "1.82, 1.83"


RESTATING = {  # what a later ironic sends with every response: the body's own range, and the served version
    "x-openstack-ironic-api-minimum-version": "1.1",
    "x-openstack-ironic-api-maximum-version": "1.82",
    "x-openstack-ironic-api-version": "1.1",
}


@pytest.mark.parametrize("document", ["ironic-21.4.4/root", "ironic-21.4.4/v1"])
def test_headers_that_restate_the_real_ironic_range_are_no_change_either_way(document: str) -> None:
    without = VERSIONS.normalise(body(document), {})
    restated = VERSIONS.normalise(body(document), RESTATING)

    assert VERSIONS.classify(without, restated) == []
    assert VERSIONS.classify(restated, without) == []
    assert canonical_json(without) == canonical_json(restated)


def v1_with(**headers: str) -> dict[str, Any]:
    """ironic 21.4.4's GET /v1/ (range 1.1-1.82 in the body) with these range headers (``max=``, ``min=``)."""
    names = {"min": "x-openstack-ironic-api-minimum-version", "max": "x-openstack-ironic-api-maximum-version"}
    return VERSIONS.normalise(body("ironic-21.4.4/v1"), {names[k]: v for k, v in headers.items()})


def test_a_header_that_disagrees_with_the_body_stays_in_the_document() -> None:
    assert v1_with(min="1.1", max="1.80")["headers"] == {"x-openstack-ironic-api-maximum-version": "1.80"}
    assert v1_with(min="1.01", max="1.82")["headers"] == {}  # another spelling of the same microversion


def test_a_disagreeing_header_that_goes_away_is_judged_against_the_body_that_remains() -> None:
    [change] = VERSIONS.classify(v1_with(max="1.80"), v1_with(max="1.82"))

    assert (change.path, change.rule, change.old, change.new) == (
        "/headers/x-openstack-ironic-api-maximum-version", "max-microversion-raised", "1.80", "1.82"
    )  # fmt: skip
    assert VERSIONS.classify(v1_with(max="1.80"), v1_with()) == [change]  # not sent: the body's range


def test_the_body_moving_to_what_a_disagreeing_header_said_is_one_change_of_the_entry() -> None:
    lowered = json.loads(body("ironic-21.4.4/v1"))
    lowered["version"]["version"] = "1.80"
    new = VERSIONS.normalise(json.dumps(lowered).encode(), {"x-openstack-ironic-api-maximum-version": "1.80"})

    assert [(c.path, c.rule, c.old, c.new) for c in VERSIONS.classify(v1_with(max="1.80"), new)] == [
        ("/versions/v1/max_version", "max-microversion-lowered", "1.82", "1.80")
    ]


def test_headers_describe_the_only_entry_with_a_range_among_several() -> None:
    restating = {"x-openstack-nova-api-minimum-version": "2.1", "x-openstack-nova-api-maximum-version": "2.95"}

    assert VERSIONS.normalise(body("nova-27.5.1/root"), restating) == normalised("nova-27.5.1/root")


def test_headers_beside_two_entries_with_a_range_describe_neither_and_stay() -> None:
    raw = b'{"versions": [{"id": "v1", "max_version": "1.5"}, {"id": "v2", "max_version": "2.3"}]}'
    headers = {"x-openstack-x-api-maximum-version": "1.5"}

    assert VERSIONS.normalise(raw, headers)["headers"] == headers


def test_a_range_header_beside_a_body_without_one_stays_as_keystoneauth_reads_only_the_body() -> None:
    raw = b'{"version": {"id": "v1", "status": "CURRENT", "links": []}}'
    doc = VERSIONS.normalise(raw, {"x-openstack-ironic-api-maximum-version": "1.82"})

    assert doc["headers"] == {"x-openstack-ironic-api-maximum-version": "1.82"}
    assert version_entries(doc) == [VersionEntry("v1", "CURRENT", None, None)]


REAL_VERSIONS = [
    "nova-27.5.1/root", "nova-27.5.1/v2.1", "nova-27.5.1/v2.1-latest", "nova-27.5.1/v2", "placement-5.0.1/root",
    "placement-5.0.1/root-latest", "cinder-22.3.0/root", "ironic-21.4.4/root", "ironic-21.4.4/v1",
    "ironic-21.4.4/v1-latest", "keystone-23.0.2/root", "keystone-23.0.2/v3", "manila-16.3.0/root",
]  # fmt: skip


@pytest.mark.parametrize("document", REAL_VERSIONS)
def test_reconciled_leaves_a_document_of_todays_form_as_it_is(document: str) -> None:
    doc = normalised(document)

    assert reconciled(doc) == doc


def test_reconciled_brings_a_document_of_the_earlier_form_to_what_normalise_gives_now() -> None:
    earlier = {**normalised("ironic-21.4.4/v1"), "headers": {
        "x-openstack-ironic-api-minimum-version": "1.1", "x-openstack-ironic-api-maximum-version": "1.80",
        "x-openstack-ironic-api-version": "1.1", "openstack-api-version": "baremetal 1.1",
    }}  # fmt: skip

    assert reconciled(earlier) == v1_with(min="1.1", max="1.80")


@pytest.mark.parametrize(
    "doc",
    [
        {"type": "object", "properties": {"headers": {"type": "object"}}},
        {"headers": {}, "versions": {"v1": {"id": "v1"}}},  # no canonical entry: min/max/status missing
        {
            "headers": {},
            "versions": {"v1": {"id": "v2", "status": "CURRENT", "min_version": None, "max_version": None}},
        },
        {"headers": {"vary": "x"}, "versions": {}},
        {"headers": {}, "versions": {}, "import-methods": {}},
        {"headers": [], "versions": {}},
    ],
)
def test_reconciled_refuses_what_is_no_normalised_versions_document(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a normalised versions document"):
        reconciled(doc)
