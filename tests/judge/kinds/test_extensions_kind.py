"""The extensions kind on neutron's real extension list."""

from __future__ import annotations

import json

import pytest

from monitor.domain import FailureReason
from monitor.judge.canonical import DocumentError
from monitor.judge.kinds import extension_aliases, get_kind
from tests.support.paths import DATA

NEUTRON = DATA / "openstack_surface" / "neutron-22.2.1" / "v2.0-extensions.json"
EXTENSIONS = get_kind("extensions")


def test_the_neutron_list_becomes_a_set_keyed_by_alias() -> None:
    doc = EXTENSIONS.normalise(NEUTRON.read_bytes(), {})

    aliases = extension_aliases(doc)
    assert len(aliases) == 75
    assert {"router", "segment", "dvr", "address-group"} <= set(aliases)
    assert aliases == sorted(aliases)
    assert doc["extensions"]["router"]["alias"] == "router"
    assert list(doc) == ["extensions"]


def test_links_of_an_extension_lose_their_hosts_and_other_members_are_kept() -> None:
    raw = {
        "extensions": [
            {"alias": "x", "links": [{"rel": "describedby", "href": "https://net.r1.example.com/docs/x"}]},
        ],
        "generated": "2026-12-01",
    }

    doc = EXTENSIONS.normalise(json.dumps(raw).encode(), {"x-openstack-request-id": "req-1"})

    assert doc == {
        "extensions": {"x": {"alias": "x", "links": [{"href": "/docs/x", "rel": "describedby"}]}},
        "other": {"generated": "2026-12-01"},
    }


@pytest.mark.parametrize(
    "raw",
    [
        b'{"versions": []}',
        b'{"extensions": {"router": {}}}',
        b'{"extensions": [{"name": "no alias"}]}',
        b'{"extensions": [{"alias": ""}]}',
        b'{"extensions": [{"alias": "a"}, {"alias": "a"}]}',
        b'["router"]',
    ],
)
def test_json_that_is_no_extension_list_is_invalid_schema(raw: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        EXTENSIONS.normalise(raw, {})

    assert caught.value.reason is FailureReason.INVALID_SCHEMA
    assert "not an extensions document" in str(caught.value)


def test_extension_aliases_refuses_a_document_that_is_no_extensions_document() -> None:
    with pytest.raises(ValueError):
        extension_aliases({"versions": {}})
