"""The json kind: any JSON object, hosts removed from URL strings, generic rules."""

from __future__ import annotations

import json

import pytest

from monitor.domain import ABSENT, Change, FailureReason, Severity
from monitor.judge.canonical import DocumentError, canonical_json
from monitor.judge.kinds import get_kind
from tests.support.paths import DATA

HOME = DATA / "openstack_surface" / "keystone-23.0.2" / "root-json-home.json"
JSON = get_kind("json")


def test_json_home_keeps_relation_keys_and_strips_hosts_from_its_values() -> None:
    doc = JSON.normalise(HOME.read_bytes(), {})

    websso = doc["resources"]["https://docs.openstack.org/api/openstack-identity/3/ext/OS-FEDERATION/1.0/rel/websso"]
    assert websso == {
        "href-template": "/v3/auth/OS-FEDERATION/websso/{protocol_id}",
        "href-vars": {"protocol_id": "/api/openstack-identity/3/ext/OS-FEDERATION/1.0/param/protocol_id"},
    }


def test_keep_hosts_leaves_url_strings_whole() -> None:
    raw = b'{"self": "https://image.r1.example.com/v2/info/import"}'

    assert JSON.normalise(raw, {}, keep_hosts=True) == {"self": "https://image.r1.example.com/v2/info/import"}
    assert JSON.normalise(raw, {}) == {"self": "/v2/info/import"}


def test_two_regions_of_json_home_normalise_to_the_same_canonical_text() -> None:
    # the parameter URLs are values (the relation URLs are keys, and stay as they are)
    param = "https://docs.openstack.org/api/openstack-identity/3/param/"
    text = HOME.read_text(encoding="utf-8")
    other_region = text.replace(param, "http://keystone.r2.example:5000/api/openstack-identity/3/param/")
    assert other_region != text

    assert canonical_json(JSON.normalise(HOME.read_bytes(), {})) == canonical_json(
        JSON.normalise(other_region.encode(), {})
    )


def test_arrays_keep_their_order_and_a_reorder_is_a_change() -> None:
    old = JSON.normalise(b'{"value": ["glance-direct", "web-download"]}', {})
    new = JSON.normalise(b'{"value": ["web-download", "glance-direct"]}', {})

    assert JSON.classify(old, new) == [
        Change("/value/0", "value-added", Severity.INFO, ABSENT, "web-download"),
        Change("/value/1", "value-removed", Severity.WARNING, "web-download", ABSENT),
    ]


def test_values_python_thinks_equal_are_different_as_json() -> None:
    old = JSON.normalise(b'{"weight": 1, "default": true}', {})
    new = JSON.normalise(b'{"weight": 1.0, "default": 1}', {})

    assert [(c.path, c.rule) for c in JSON.classify(old, new)] == [
        ("/default", "value-changed"),
        ("/weight", "value-changed"),
    ]


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"3", b"null"])
def test_a_top_level_that_is_not_an_object_is_invalid_schema(raw: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        JSON.normalise(raw, {})

    assert caught.value.reason is FailureReason.INVALID_SCHEMA


def test_a_body_that_is_not_json_is_invalid_json() -> None:
    body = json.dumps({"a": 1})[:-1].encode()

    with pytest.raises(DocumentError) as caught:
        JSON.normalise(body, {})

    assert caught.value.reason is FailureReason.INVALID_JSON
