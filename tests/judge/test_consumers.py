"""The consumer checks on real documents in their canonical form (nova, ironic, manila, neutron, the Glance
images schema), each met and not met with its reason; ids; the marks a change gets; evaluation per region."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from monitor.domain import ABSENT, TargetKey
from monitor.judge.consumers import (
    CHECKS,
    Consumer,
    Observed,
    Requirement,
    evaluate,
    json_equal,
    judge,
    mark_breaks,
    parse_pointer,
    regions_of,
    requirement_id,
    touches,
    value_at,
)
from monitor.judge.kinds import get_kind
from tests.support.consumers import GLANCE, HASH_ALGO, IMS, glance_without, nova
from tests.support.paths import DATA

SURFACE = DATA / "openstack_surface"


def real(folder: str, name: str, kind: str) -> dict[str, Any]:
    """A real document as the monitor stores it: normalised by its kind, with the headers it was served with."""
    recorded = json.loads((SURFACE / folder / f"{name}.headers.json").read_text())
    headers = {k.lower(): v for k, v in recorded.get("headers", {}).items() if isinstance(v, str)}
    return get_kind(kind).normalise((SURFACE / folder / f"{name}.json").read_bytes(), headers)


def stored(document: Any, kind: str = "schema") -> dict[str, Any]:
    return get_kind(kind).normalise(json.dumps(document).encode(), {})


NOVA = stored(nova("2.95"), "versions")
IRONIC = real("ironic-21.4.4", "root", "versions")
MANILA = real("manila-16.3.0", "root", "versions")
NEUTRON = real("neutron-22.2.1", "v2.0-extensions", "extensions")
IMAGES = stored(GLANCE)
IMS_IMAGES = stored(IMS)


def req(check: str, value: Any = None, *, version: str | None = None, pointer: str = "",
        schema: str = "s") -> Requirement:  # fmt: skip
    return Requirement("00000000", "c", schema, check, version, pointer, value)


CASES = [
    # (requirement, document, met, reason)
    (req("microversion", "2.79", version="v2.1"), NOVA, True, "v2.1 serves 2.1 to 2.95"),
    (req("microversion", "2.96", version="v2.1"), NOVA, False, "max microversion 2.95 < required 2.96"),
    (req("microversion", "2.100", version="v2.1"), stored(nova("2.96"), "versions"), False,
     "max microversion 2.96 < required 2.100"),
    (req("microversion", "2.9", version="v2.1"), stored(nova("2.100"), "versions"), True, "v2.1 serves 2.1 to 2.100"),
    (req("microversion", "2.1", version="v2.0"), NOVA, False, "v2.0 has no microversions"),
    (req("microversion", "2.1", version="v3"), NOVA, False, "no version v3 (versions: v2.0, v2.1)"),
    (req("microversion", "1.87", version="v1"), IRONIC, False, "max microversion 1.82 < required 1.87"),
    (req("microversion", "1.69", version="v1"), IRONIC, True, "v1 serves 1.1 to 1.82"),
    (req("microversion", "2.37", version="v2.0"), MANILA, True, "v2.0 serves 2.0 to 2.78"),
    (req("status", ("CURRENT", "SUPPORTED"), version="v1.0"), MANILA, False, "v1.0 is DEPRECATED, not CURRENT or "
     "SUPPORTED"),
    (req("status", ("SUPPORTED",), version="v2.0"), NOVA, True, "v2.0 is SUPPORTED"),
    (req("version", version="v2.1"), NOVA, True, "v2.1 is listed (CURRENT)"),
    (req("version", version="v2.0"), MANILA, True, "v2.0 is listed (CURRENT)"),
    (req("version", version="v3.0"), MANILA, False, "no version v3.0 (versions: v1.0, v2.0)"),
    (req("extension", "extraroute-atomic"), NEUTRON, True, "extraroute-atomic is listed"),
    (req("extension", "trunk"), NEUTRON, False, "no extension trunk among the 75 listed"),
    (req("exists", pointer=HASH_ALGO), IMAGES, True, "present (object)"),
    (req("exists", pointer=HASH_ALGO), IMS_IMAGES, False, "no os_hash_algo in /properties/images/items/properties"),
    (req("exists", pointer="/properties/images/items/properties/name/x/y"), IMAGES, False,
     "no x in /properties/images/items/properties/name"),
    (req("exists", pointer="/properties/images/items/properties/name/type/x"), IMAGES, False,
     "/properties/images/items/properties/name/type is a JSON string: nothing inside"),
    (req("exists", pointer="/links/7"), IMAGES, False, "no item 7 in /links (3 items)"),
    (req("exists", pointer="/links/0/rel"), IMAGES, True, "present (string)"),
    (req("contains", ("qcow2", "raw"), pointer="/properties/images/items/properties/disk_format/enum"), IMAGES, True,
     "has qcow2, raw"),
    (req("contains", ("vhdx", "raw"), pointer="/properties/images/items/properties/disk_format/enum"), IMS_IMAGES,
     False, "/properties/images/items/properties/disk_format/enum lacks vhdx (has aki, ami, ari, iso, qcow2, raw, vdi, "
     "vhd and 1 more)"),
    (req("contains", ("x",), pointer="/name"), IMAGES, False, "/name is a JSON string, not an array"),
    (req("equals", "images", pointer="/name"), IMAGES, True, "is images"),
    (req("equals", 64, pointer=HASH_ALGO + "/maxLength"), IMAGES, True, "is 64"),
    (req("equals", 64.0, pointer=HASH_ALGO + "/maxLength"), IMAGES, True, "is 64"),
    (req("equals", True, pointer=HASH_ALGO + "/maxLength"), IMAGES, False,
     HASH_ALGO + "/maxLength is 64, not true"),
    (req("matches", r"2\.9[0-9]", pointer="/versions/v2.1/max_version"), NOVA, True, "2.95 matches"),
    (req("matches", r"2\.9", pointer="/versions/v2.1/max_version"), NOVA, False,
     r'/versions/v2.1/max_version is 2.95, which "2\\.9" does not match'),
    (req("type", ("boolean",), pointer="/properties/images/items/properties/os_hidden"), IMAGES, True,
     "type boolean"),
    (req("type", ("string",), pointer=HASH_ALGO), IMAGES, False, f"{HASH_ALGO} has type [null, string], not string"),
    (req("type", ("null", "string"), pointer=HASH_ALGO), IMAGES, True, "type [null, string]"),
    (req("type", ("string",), pointer="/properties/images"), IMAGES, False,
     "/properties/images has type array, not string"),
    (req("type", ("string",), pointer="/properties/images/items"), IMAGES, False,
     "/properties/images/items declares no type"),
    (req("writable", pointer="/properties/images/items/properties/name"), IMAGES, True, "writable"),
    (req("writable", pointer=HASH_ALGO), IMAGES, False, f"{HASH_ALGO} is read-only (readOnly: true)"),
    (req("writable", pointer="/properties/images/items/properties/status"), IMS_IMAGES, False,
     "/properties/images/items/properties/status is read-only (its description says READ-ONLY)"),
    (req("writable", pointer="/name"), IMAGES, False, "/name is a JSON string, not a property schema"),
    (req("microversion", "2.79", version="v2.1"), IMAGES, False,
     "not a normalised versions document: no 'versions' object of entries"),
]  # fmt: skip


@pytest.mark.parametrize(("requirement", "document", "met", "reason"), CASES,
                         ids=[f"{c[0].check}-{i}" for i, c in enumerate(CASES)])  # fmt: skip
def test_each_check_on_real_documents(requirement: Requirement, document: Any, met: bool, reason: str) -> None:
    assert judge(requirement, document) == (met, reason)


def test_every_check_has_a_met_and_a_not_met_case() -> None:
    met = {r.check for r, _, ok, _ in CASES if ok}
    not_met = {r.check for r, _, ok, _ in CASES if not ok}
    assert met == not_met == set(CHECKS)


def test_a_version_entry_renamed_to_a_later_minor_still_meets_the_requirement() -> None:
    keystone = real("keystone-23.0.2", "root", "versions")
    [version] = keystone["versions"]
    later = stored({"versions": {"values": [{**keystone["versions"][version], "id": "v3.15"}]}}, "versions")
    assert judge(req("version", version=version), later) == (True, "v3.15 is listed (CURRENT)")
    assert judge(req("version", version="v3.16"), later)[0] is False
    assert judge(req("version", version="v4.0"), later)[0] is False


def test_ids_are_the_hash_of_the_content_in_canonical_json() -> None:
    first = requirement_id({"schema": "compute-versions", "version": "v2.1", "microversion": "2.79"})
    again = requirement_id({"microversion": "2.79", "version": "v2.1", "schema": "compute-versions"})
    other = requirement_id({"schema": "compute-versions", "version": "v2.1", "microversion": "2.80"})
    assert first == again != other
    assert len(first) == 8 and int(first, 16) >= 0


def test_pointers_follow_rfc_6901() -> None:
    assert parse_pointer("") == []
    assert parse_pointer("/a~1b/c~0d/0") == ["a/b", "c~d", "0"]
    for bad in ("a/b", "/a~2", "/~"):
        with pytest.raises(ValueError, match="JSON pointer"):
            parse_pointer(bad)
    assert value_at({"a/b": [1, 2]}, "/a~1b/1") == 2
    assert value_at({"a": [1]}, "/a/01") is ABSENT
    assert value_at({"a": 1}, "") == {"a": 1}


def test_json_equality_keeps_booleans_apart_from_numbers() -> None:
    assert json_equal(1, 1.0) and json_equal({"a": [1, "x"]}, {"a": [1.0, "x"]})
    assert not json_equal(True, 1) and not json_equal(0, False) and not json_equal(None, False)
    assert not json_equal([1], [1, 2]) and not json_equal({"a": 1}, {"b": 1})


def test_a_change_breaking_a_requirement_carries_the_mark() -> None:
    consumer = Consumer("tf", "", ("c",), (replace(req("microversion", "2.96", version="v2.1", schema="nova"),
                                                   id="aaaaaaaa"),))  # fmt: skip
    old, new = stored(nova("2.96"), "versions"), NOVA
    changes = get_kind("versions").classify(old, new)
    [marked] = mark_breaks([consumer], TargetKey("c", "r1", "nova"), old, new, changes)
    assert [(m.consumer, m.requirement, m.reason) for m in marked.breaks] == [
        ("tf", "aaaaaaaa", "max microversion 2.95 < required 2.96")
    ]
    # the other direction, another target, or a requirement met on both sides: no mark
    assert not any(c.breaks for c in mark_breaks([consumer], TargetKey("c", "r1", "nova"), new, old,
                                                 get_kind("versions").classify(new, old)))  # fmt: skip
    assert not any(c.breaks for c in mark_breaks([consumer], TargetKey("c", "r1", "other"), old, new, changes))


def test_a_mark_without_a_touching_change_goes_on_the_worst_one() -> None:
    requirement = req("equals", "images", pointer="/name", schema="images")
    consumer = Consumer("x", "", ("c",), (requirement,))
    old = IMAGES
    new = stored({**GLANCE, "name": "pictures"})
    changes = [*get_kind("schema").classify(old, new)]
    # pretend the classifier reported the rename elsewhere: the mark still lands, on the worst change
    moved = [replace(c, path="/elsewhere") for c in changes]
    marked = mark_breaks([consumer], TargetKey("c", "r", "images"), old, new, moved)
    assert sum(1 for c in marked if c.breaks) == 1


def test_touching_paths() -> None:
    anchor = "/versions/v2.1"
    assert touches("/versions/v2.1", anchor) and touches("/versions/v2.1/max_version", anchor)
    assert touches("/versions", anchor) and touches("", anchor)
    assert not touches("/versions/v2.10", anchor) and not touches("/headers/x", anchor)


def test_a_region_is_broken_unknown_or_compatible() -> None:
    micro = replace(req("microversion", "2.96", version="v2.1", schema="compute"), id="m")
    hashes = replace(req("exists", pointer=HASH_ALGO, schema="images"), id="h", cloud="g")
    consumer = Consumer("tf", "", ("c", "g"), (micro, hashes))
    observed = {
        TargetKey("c", "r1", "compute"): Observed(NOVA, "s1"),
        TargetKey("g", "r1", "images"): Observed(IMAGES, "s2"),
        TargetKey("c", "r2", "compute"): Observed(stored(nova("2.96"), "versions"), "s3"),
        TargetKey("g", "r2", "images"): Observed(None),
        TargetKey("c", "r3", "compute"): Observed(stored(nova("2.96"), "versions"), "s3", failing="http_503"),
        TargetKey("g", "r3", "images"): Observed(stored(glance_without(HASH_ALGO)), "s4"),
        TargetKey("c", "r4", "compute"): Observed(stored(nova("2.100"), "versions"), "s5"),
        TargetKey("g", "r4", "images"): Observed(IMAGES, "s2"),
    }
    verdicts = {region: evaluate(consumer, region, observed) for region in regions_of(consumer, observed)}
    assert {region: v.compatible for region, v in verdicts.items()} == {
        "r1": False,
        "r2": None,
        "r3": False,
        "r4": True,
    }
    assert [v.reason for v in verdicts["r2"].unknown] == ["no document of g/r2/images yet"]
    assert [v.reason for v in verdicts["r3"].unknown] == ["the polls of c/r3/compute are failing (http_503)"]
    assert verdicts["r1"].clouds == ("c", "g")
    lonely = evaluate(consumer, "r9", {TargetKey("c", "r9", "compute"): Observed(NOVA, "s1")})
    assert lonely.compatible is False  # broken wins over unknown
    assert [v.reason for v in lonely.unknown] == ["g/r9/images is not watched (no such target in r9)"]


def test_descriptions_read_plainly() -> None:
    assert req("microversion", "2.79", version="v2.1", schema="compute-versions").describe() == (
        "compute-versions: v2.1 serves microversion 2.79"
    )
    named = replace(req("extension", "trunk", schema="network-extensions"), named_cloud=True)
    assert named.describe() == "c/network-extensions: extension trunk"
    assert req("status", ("CURRENT", "SUPPORTED"), version="v2.1").describe() == "s: v2.1 is CURRENT or SUPPORTED"
    assert req("type", ("null", "string"), pointer="/p").describe() == "s: /p has type [null, string]"
    assert req("type", ("null", "string"), pointer="/p").anchor == "/p/type"
    assert req("extension", "a/b").anchor == "/extensions/a~1b"


def test_a_reason_never_carries_a_control_character_from_a_document() -> None:
    served = stored({"versions": [{"id": "v2.1", "status": "CURRENT\u001b[2J", "links": []}]}, "versions")
    met, reason = judge(req("status", ("CURRENT",), version="v2.1"), served)
    assert not met and reason == "v2.1 is CURRENT?[2J, not CURRENT"
