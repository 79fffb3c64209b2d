"""The versions kind on the real discovery documents of tests/data/openstack_surface."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.domain import FailureReason
from monitor.judge.canonical import DocumentError, canonical_json
from monitor.judge.kinds import Microversion, VersionEntry, get_kind, version_entries
from monitor.judge.kinds.versions import fold_headers, normalise_status
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
    assert doc["headers"] == {"openstack-api-version": "placement 1.0"}


def test_placement_latest_differs_from_root_only_in_the_served_microversion() -> None:
    root, latest = normalised("placement-5.0.1/root"), normalised("placement-5.0.1/root-latest")

    assert [(c.path, c.rule) for c in VERSIONS.classify(root, latest)] == [
        ("/headers/openstack-api-version", "served-microversion-changed")
    ]


def test_nova_v2_0_empty_microversions_mean_none() -> None:
    entry = normalised("nova-27.5.1/v2")["versions"]["v2.0"]

    assert (entry["min_version"], entry["max_version"]) == (None, None)
    assert "version" not in entry


def test_the_single_version_shape_of_nova_is_one_entry() -> None:
    doc = normalised("nova-27.5.1/v2.1")

    assert list(doc["versions"]) == ["v2.1"]
    assert "other" not in doc
    assert doc["headers"] == {"openstack-api-version": "compute 2.1", "x-openstack-nova-api-version": "2.1"}


def test_the_single_version_shape_of_ironic_keeps_its_resources_under_other() -> None:
    doc = normalised("ironic-21.4.4/v1")

    assert version_entries(doc) == [VersionEntry("v1", "CURRENT", Microversion(1, 1), Microversion(1, 82))]
    assert doc["other"]["nodes"] == [{"href": "/v1/nodes/", "rel": "self"}, {"href": "/nodes/", "rel": "bookmark"}]
    assert doc["headers"]["x-openstack-ironic-api-maximum-version"] == "1.82"


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


def test_a_header_is_folded_only_when_it_describes_the_surface() -> None:
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
        "openstack-api-version": "compute 2.1",
        "x-openstack-nova-api-version": "2.1",
        "x-openstack-ironic-api-minimum-version": "1.1",
        "x-openstack-ironic-api-maximum-version": "1.82",
        "x-openstack-manila-api-version": "2.78",
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
