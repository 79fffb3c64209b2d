"""The ``consumers:`` section: each form of requirement, its id, and every problem told once at its place, naming
the consumer and the entry."""

from __future__ import annotations

import re
from typing import Any

import pytest

from monitor.config import ConfigError, consumer_contracts, load_config, parse_config
from tests.support.paths import ROOT

IMAGE_SCHEMAS = ["images"]


def _data(*consumers: dict[str, Any], glance_schemas: list[Any] | None = None) -> dict[str, Any]:
    return {
        "clouds": [
            {"name": "openstack", "endpoint": "https://os.{region}.example", "regions": ["r1", "r2"],
             "schemas": [{"name": "compute-versions", "kind": "versions", "path": "/"},
                         {"name": "network-extensions", "kind": "extensions", "path": "/v2.0/extensions"},
                         "image"]},
            {"name": "glance", "endpoint": "https://glance.{region}.example", "regions": ["r1"],
             "schemas": glance_schemas if glance_schemas is not None else IMAGE_SCHEMAS},
        ],
        "consumers": list(consumers),
    }  # fmt: skip


def _consumer(*requires: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "tf", "requires": list(requires), **fields}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "f.yaml")
    return info.value.problems


def test_every_form_of_requirement_becomes_its_check() -> None:
    entries: list[dict[str, Any]] = [
        {"schema": "compute-versions", "version": "v2.1", "microversion": "2.79"},
        {"schema": "images", "pointer": "/properties/images/items/properties/os_hash_algo"},
        {"schema": "images", "pointer": "/properties/images/items/properties/disk_format/enum",
         "contains": ["qcow2", "raw"]},
        {"schema": "network-extensions", "extension": "trunk"},
        {"schema": "compute-versions", "version": "v2.1", "status": ["CURRENT", "supported"]},
        {"schema": "compute-versions", "version": "v2.1"},
        {"cloud": "openstack", "schema": "image", "pointer": "/properties/os_hidden", "type": "boolean"},
        {"schema": "image", "pointer": "/properties/name", "writable": True},
        {"schema": "image", "pointer": "/properties/visibility/default", "equals": None},
        {"schema": "compute-versions", "pointer": "/versions/v2.1/max_version", "matches": "2\\.[0-9]+"},
    ]  # fmt: skip
    [consumer] = consumer_contracts(parse_config(_data(_consumer(*entries)), "f.yaml"))
    found = [(r.cloud, r.check, r.value) for r in consumer.requirements]
    assert found == [
        ("openstack", "microversion", "2.79"),
        ("glance", "exists", None),
        ("glance", "contains", ("qcow2", "raw")),
        ("openstack", "extension", "trunk"),
        ("openstack", "status", ("CURRENT", "SUPPORTED")),
        ("openstack", "version", None),
        ("openstack", "type", ("boolean",)),
        ("openstack", "writable", None),
        ("openstack", "equals", None),
        ("openstack", "matches", "2\\.[0-9]+"),
    ]
    assert consumer.clouds == ("openstack", "glance")  # no clouds: every cloud
    assert len({r.id for r in consumer.requirements}) == len(entries)


def test_an_id_depends_on_the_content_only() -> None:
    entry = {"schema": "compute-versions", "version": "v2.1", "microversion": "2.79"}
    first = consumer_contracts(parse_config(_data(_consumer(entry)), "f.yaml"))[0].requirements[0].id
    spelled = {"microversion": "2.079", "schema": "compute-versions", "version": "v2.1"}  # other order and spelling
    other = {**entry, "microversion": "2.80"}
    data = _data(_consumer({"schema": "image", "pointer": "/x"}, spelled), {"name": "b", "requires": [other]})
    ids = [r.id for c in consumer_contracts(parse_config(data, "f.yaml")) for r in c.requirements]
    assert ids[1] == first and ids[2] != first


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"schema": "members", "pointer": "/x"},
         "consumers[0] (tf).requires[0].schema: 'members' is not watched by any of the consumer's clouds "
         "(openstack, glance): no document to check"),
        ({"cloud": "nowhere", "schema": "image", "pointer": "/x"},
         "consumers[0] (tf).requires[0].cloud: 'nowhere' is not one of the consumer's clouds (openstack, glance)"),
        ({"schema": "image", "version": "v2", "microversion": "2.1"},
         "consumers[0] (tf).requires[0].schema: a microversion check needs a versions document; openstack/image "
         "is of kind schema"),
        ({"schema": "compute-versions", "pointer": "/versions", "writable": True},
         "consumers[0] (tf).requires[0].schema: a writable check needs a schema document; "
         "openstack/compute-versions is of kind versions"),
        ({"schema": "image", "extension": "trunk"},
         "consumers[0] (tf).requires[0].schema: a extension check needs a extensions document; openstack/image is "
         "of kind schema"),
    ],
)  # fmt: skip
def test_a_requirement_that_reads_no_fitting_document_is_a_problem_naming_consumer_and_entry(
    entry: dict[str, Any], problem: str
) -> None:
    assert problems(_data(_consumer(entry))) == [problem]


def test_a_schema_two_clouds_watch_needs_cloud() -> None:
    data = _data(_consumer({"schema": "image", "pointer": "/x"}), glance_schemas=["images", "image"])
    assert problems(data) == [
        "consumers[0] (tf).requires[0].schema: 'image' is watched by clouds openstack and glance: name one with cloud:"
    ]
    data["consumers"][0]["requires"][0]["cloud"] = "glance"
    assert consumer_contracts(parse_config(data, "f.yaml"))[0].requirements[0].cloud == "glance"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"schema": "image"}, "consumers[0] (tf).requires[0]: give one of: version (alone, or with microversion or "
         "status), extension, or pointer (alone, or with one of contains, equals, matches, type, writable)"),
        ({"schema": "image", "microversion": "2.1"}, "consumers[0] (tf).requires[0].microversion: needs version: "
         "what it applies to"),
        ({"schema": "image", "version": "v2.1", "microversion": 2.79}, "consumers[0] (tf).requires[0].microversion: "
         'write the microversion as a string ("2.79"): the number 2.79 loses its digits'),
        ({"schema": "image", "version": "v2.1", "microversion": "latest"}, "consumers[0] (tf).requires[0]"
         ".microversion: expected a microversion MAJOR.MINOR like 2.79, got 'latest'"),
        ({"schema": "image", "pointer": "properties/x"}, "consumers[0] (tf).requires[0].pointer: a JSON pointer "
         "starts with '/' (or is empty for the whole document), got properties/x"),
        ({"schema": "image", "pointer": "/x", "contains": ["a"], "equals": 1}, "consumers[0] (tf).requires[0]"
         ".equals: one check per entry: contains and equals are two entries"),
        ({"schema": "image", "pointer": "/x", "matches": "("}, "consumers[0] (tf).requires[0].matches: '(' is not a "
         "valid regular expression: missing ), unterminated subpattern at position 0"),
        ({"schema": "image", "pointer": "/x", "type": "text"}, "consumers[0] (tf).requires[0].type: expected "
         "JSON-schema types (array, boolean, integer, null, number, object, string), got ['text']"),
        ({"schema": "image", "pointer": "/x", "writable": False}, "consumers[0] (tf).requires[0].writable: takes "
         "true: the property must stay writable (a read-only one needs no check)"),
        ({"schema": "image", "extension": "trunk", "pointer": "/x"}, "consumers[0] (tf).requires[0].pointer: does "
         "not go with extension in one entry: give one of: version (alone, or with microversion or status), "
         "extension, or pointer (alone, or with one of contains, equals, matches, type, writable)"),
        ({"schema": "image", "version": "v2", "status": []}, "consumers[0] (tf).requires[0].status: lists no "
         "status: name at least one (CURRENT, SUPPORTED, DEPRECATED, EXPERIMENTAL)"),
        ({"schema": "image", "pointr": "/x"}, "consumers[0] (tf).requires[0].pointr: unknown key"),
    ],
)  # fmt: skip
def test_a_malformed_entry_is_told_at_its_field(entry: dict[str, Any], problem: str) -> None:
    assert problem in problems(_data(_consumer(entry)))


def test_the_consumer_itself_is_checked() -> None:
    data = _data(
        _consumer({"schema": "image", "pointer": "/x"}, clouds=["openstack", "gone"]),
        {"name": "Bad Name", "requires": [{"schema": "image", "pointer": "/x"}]},
        {"name": "empty", "requires": []},
    )
    told = problems(data)
    assert "consumers[1] (Bad Name).name: invalid consumer name 'Bad Name': use lowercase letters, digits, '.', '_' " \
           "or '-' (max 63)" in told  # fmt: skip
    assert any(p.startswith("consumers[2] (empty).requires:") for p in told)
    data = _data(_consumer({"schema": "image", "pointer": "/x"}, clouds=["openstack", "gone"]))
    assert problems(data) == ["consumers[0] (tf).clouds[1]: unknown cloud 'gone' (clouds: openstack, glance)"]
    twice = _data(_consumer({"schema": "image", "pointer": "/x"}), _consumer({"schema": "image", "pointer": "/y"}))
    assert problems(twice) == ["consumers: consumer 'tf' is listed twice"]


def test_the_same_requirement_twice_is_a_problem() -> None:
    entry = {"schema": "image", "pointer": "/x"}
    assert problems(_data(_consumer(entry, {"pointer": "/x", "schema": "image"}))) == [
        "consumers[0] (tf).requires[1]: the same requirement as requires[0] (id "
        + consumer_contracts(parse_config(_data(_consumer(entry)), "f.yaml"))[0].requirements[0].id
        + ")"
    ]


def test_the_clouds_of_a_consumer_limit_where_its_schemas_are_found() -> None:
    data = _data(_consumer({"schema": "images", "pointer": "/x"}, clouds=["glance"]))
    [consumer] = consumer_contracts(parse_config(data, "f.yaml"))
    assert [r.cloud for r in consumer.requirements] == ["glance"]


def test_catalog_derived_documents_are_found_by_name_and_kind() -> None:
    data: dict[str, Any] = {
        "clouds": [{"name": "os", "regions": "auto", "services": "all",
                    "auth": {"type": "password", "auth_url": "https://k.example/v3", "username": "u",
                             "user_domain_name": "d", "password": "p", "project_name": "p"}}],
        "consumers": [{"name": "capo", "requires": [
            {"schema": "network-extensions", "extension": "trunk"},
            {"schema": "shared-file-system-versions", "version": "v2.0", "microversion": "2.37"},
            {"schema": "image-info-import", "pointer": "/import-methods/value", "contains": ["web-download"]},
        ]}],
    }  # fmt: skip
    [consumer] = consumer_contracts(parse_config(data, "f.yaml"))
    assert [r.check for r in consumer.requirements] == ["extension", "microversion", "contains"]
    data["consumers"][0]["requires"] = [{"schema": "image-info-import", "version": "v2", "status": "CURRENT"}]
    assert problems(data) == [
        "consumers[0] (capo).requires[0].schema: a status check needs a versions document; os/image-info-import "
        "is of kind json"
    ]


def test_the_reference_config_shows_consumers_across_clouds(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = ROOT / "docs" / "config.reference.yaml"
    for name in re.findall(r"\$\{(\w+)\}", reference.read_text("utf-8")):
        monkeypatch.setenv(name, f"example-{name.lower()}")
    contracts = {c.name: c for c in consumer_contracts(load_config(reference))}
    assert list(contracts) == ["terraform-openstack", "openstacksdk-images", "manila-csi"]
    clouds = {name: [(r.cloud, r.schema) for r in c.requirements] for name, c in contracts.items()}
    assert clouds["terraform-openstack"] == [("huawei-ecs", "compute-versions")] * 2 + [
        ("huawei-vpc", "network-extensions")
    ]
    assert clouds["openstacksdk-images"] == [("glance", "images")] * 2 + [("openstack", "image")]
    assert clouds["manila-csi"] == [("openstack-surface", "shared-file-system-versions")]
