"""parse_document's strictness, the canonical form and its hash, and count_properties."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from monitor.domain import FailureReason
from monitor.judge.canonical import (
    MAX_DEPTH,
    DocumentError,
    canonical_json,
    canonicalize,
    count_properties,
    document_sha256,
    parse_document,
)
from tests.support.paths import DATA

SEED = DATA / "diff_cases" / "seed-glance-train-combined" / "old.json"


def seed_bytes() -> bytes:
    """The IMS ``/v2/schemas/images`` document as served."""
    return SEED.read_bytes()


def parse_error(body: bytes) -> DocumentError:
    """The DocumentError ``parse_document(body)`` raises (fails the test if it raises none)."""
    with pytest.raises(DocumentError) as info:
        parse_document(body)
    return info.value


def sha(doc: Any) -> str:
    return document_sha256(canonical_json(doc))


# --- parse_document --------------------------------------------------------------------------------------


def test_the_ims_images_schema_parses_to_its_object() -> None:
    doc = parse_document(seed_bytes())

    assert doc["name"] == "images"
    assert "status" in doc["properties"]["images"]["items"]["properties"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<!DOCTYPE html><html><body>Service Unavailable</body></html>", id="html"),
        pytest.param(b'{"properties": {"a": {"type": "str', id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b"plain text", id="text"),
        pytest.param(b'{"type": "object"} trailing', id="trailing-garbage"),
    ],
)
def test_a_body_that_is_not_json_is_invalid_json(body: bytes) -> None:
    assert parse_error(body).reason is FailureReason.INVALID_JSON


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_constants_are_invalid_json(constant: str) -> None:
    body = f'{{"type": "object", "properties": {{"a": {{"default": {constant}}}}}}}'.encode()

    assert parse_error(body).reason is FailureReason.INVALID_JSON


def test_a_number_too_large_for_a_float_is_invalid_json() -> None:
    assert parse_error(b'{"type": "object", "maximum": 1e400}').reason is FailureReason.INVALID_JSON


def test_a_duplicate_key_at_any_depth_is_invalid_json() -> None:
    body = b'{"type": "object", "properties": {"a": {"type": "string", "type": "integer"}}}'

    assert parse_error(body).reason is FailureReason.INVALID_JSON


def test_a_body_that_is_not_utf8_is_invalid_json() -> None:
    body = '{"type": "object", "title": "Größe"}'.encode("latin-1")

    assert parse_error(body).reason is FailureReason.INVALID_JSON


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="arrays"),
        pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, id="objects"),
        pytest.param(b"[" * 10_000, id="unclosed"),
    ],
)
def test_10000_levels_of_nesting_are_rejected_without_recursion_error(body: bytes) -> None:
    error = parse_error(body)

    assert error.reason is FailureReason.INVALID_JSON


def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_is_not() -> None:
    def nested(levels: int) -> bytes:  # the top-level object is level 1
        inner = "[" * (levels - 1) + "]" * (levels - 1)
        return f'{{"type": "object", "default": {inner}}}'.encode()

    assert parse_document(nested(MAX_DEPTH))["type"] == "object"
    assert parse_error(nested(MAX_DEPTH + 1)).reason is FailureReason.INVALID_JSON


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    description = "[{" * 1000 + '\\"' + "]}" * 10
    body = f'{{"type": "object", "description": "{description}"}}'.encode()

    assert parse_document(body)["type"] == "object"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'[{"type": "object"}]', id="array"),
        pytest.param(b'"schema"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"42", id="number"),
        pytest.param(b'{"error": {"code": "IMS.0001", "message": "not found"}}', id="error-object"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"type": "object", "properties": ["a", "b"]}', id="properties-not-an-object"),
    ],
)
def test_json_that_is_not_a_schema_object_is_invalid_schema(body: bytes) -> None:
    assert parse_error(body).reason is FailureReason.INVALID_SCHEMA


def test_the_error_message_quotes_only_a_short_preview_of_the_body() -> None:
    body = b"<html>" + b"x" * 10_000 + b"SECRET-TAIL</html>"

    message = str(parse_error(body))

    assert "x" * 81 not in message
    assert "SECRET-TAIL" not in message
    assert len(message) < 300


def test_a_leading_utf8_byte_order_mark_is_ignored() -> None:
    assert parse_document(b'\xef\xbb\xbf{"type": "object"}') == {"type": "object"}


# --- canonical form and hash -----------------------------------------------------------------------------


def test_canonicalize_sorts_keys_and_set_arrays_but_keeps_other_arrays_in_order() -> None:
    doc = {
        "type": ["string", "null"],
        "required": ["b", "a"],
        "enum": ["z", None, 3, "a"],
        "allOf": [{"title": "second"}, {"title": "first"}],
        "links": [{"rel": "self"}, {"rel": "next"}],
    }

    result = canonicalize(doc)

    assert list(result) == ["allOf", "enum", "links", "required", "type"]
    assert result["type"] == ["null", "string"]
    assert result["required"] == ["a", "b"]
    assert result["enum"] == ["a", "z", 3, None]  # by json.dumps: '"a"' < '"z"' < '3' < 'null'
    assert result["allOf"] == doc["allOf"]
    assert result["links"] == doc["links"]


def test_canonicalize_returns_a_new_structure_and_leaves_its_input_alone() -> None:
    doc = json.loads(seed_bytes())
    before = copy.deepcopy(doc)

    canonicalize(doc)

    assert doc == before
    assert json.dumps(doc) == json.dumps(before)  # key and array order included


def test_arrays_inside_instance_data_are_not_treated_as_sets() -> None:
    doc = {"type": "object", "default": {"type": ["b", "a"], "enum": [2, 1]}, "examples": [["b", "a"]]}

    result = canonicalize(doc)

    assert result["default"] == {"enum": [2, 1], "type": ["b", "a"]}
    assert result["examples"] == [["b", "a"]]


def test_a_property_named_like_a_keyword_is_canonicalised_as_a_schema() -> None:
    doc = {"properties": {"enum": {"type": "string", "enum": ["b", "a"]}}}

    assert canonicalize(doc)["properties"]["enum"]["enum"] == ["a", "b"]


def test_repeated_set_members_and_a_one_element_type_list_canonicalise_away() -> None:
    spelled_out = {"type": ["string"], "enum": ["a", "a"]}

    assert canonicalize(spelled_out) == canonicalize({"type": "string", "enum": ["a"]})


def test_reordered_keys_and_enum_hash_the_same() -> None:
    doc = json.loads(seed_bytes())
    shuffled = json.loads(seed_bytes(), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    shuffled["properties"]["images"]["items"]["properties"]["disk_format"]["enum"].reverse()

    assert sha(shuffled) == sha(doc)


def test_whitespace_does_not_change_the_hash() -> None:
    doc = parse_document(seed_bytes())
    minified = parse_document(json.dumps(doc, separators=(",", ":")).encode())

    assert sha(minified) == sha(doc)


def test_a_real_change_changes_the_hash() -> None:
    doc = json.loads(seed_bytes())
    changed = copy.deepcopy(doc)
    changed["properties"]["images"]["items"]["properties"]["disk_format"]["enum"].append("vhdx")

    assert sha(changed) != sha(doc)


def test_json_values_that_python_thinks_equal_hash_differently() -> None:
    assert sha({"type": "object", "default": 1}) != sha({"type": "object", "default": True})


def test_canonical_json_is_compact_sorted_and_keeps_non_ascii() -> None:
    assert canonical_json({"title": "Größe", "type": "object"}) == '{"title":"Größe","type":"object"}'


def test_document_sha256_is_the_hex_sha256_of_the_utf8_text() -> None:
    assert document_sha256("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert len(document_sha256("Größe")) == 64


# --- count_properties ------------------------------------------------------------------------------------


def test_count_properties_counts_every_properties_object_at_any_depth() -> None:
    doc = parse_document(seed_bytes())

    # 4 top-level (images, schema, next, first) + 27 per image + 2 per location (url, metadata)
    assert count_properties(doc) == 4 + 27 + 2


def test_count_properties_counts_a_property_named_properties_once() -> None:
    doc = {"properties": {"properties": {"type": "object", "properties": {"a": {}, "b": {}}}}}

    assert count_properties(doc) == 3
