"""classify() against the data-driven cases in tests/data/diff_cases/<case>/{old,new,expected}.json.

Each expected.json lists the changes in classify's order, as ``{"path", "rule", "severity", "old", "new"}``
with ``old``/``new`` left out where that side is absent. The expectations were written from
docs/change-rules.md, not recorded from the code.
"""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from deepdiff import DeepDiff

from monitor.domain import ABSENT, Change, Severity
from monitor.judge.canonical import canonical_json, parse_document
from monitor.judge.kinds.schema.rules import SEVERITIES, classify
from tests.support.paths import DATA
from tests.support.regions import default_document, mutate_breaking

CASES_DIR = DATA / "diff_cases"
CASES = sorted(path for path in CASES_DIR.iterdir() if path.is_dir())
SEED_CASE = CASES_DIR / "seed-glance-train-combined"


def change_to_dict(change: Change) -> dict[str, Any]:
    """The expected.json form of a change: severity by value, absent sides left out."""
    result: dict[str, Any] = {"path": change.path, "rule": change.rule, "severity": change.severity.value}
    if change.old is not ABSENT:
        result["old"] = change.old
    if change.new is not ABSENT:
        result["new"] = change.new
    return result


def load_case(case: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """A case's old and new documents (through the real parser) and its expected changes."""
    old = parse_document((case / "old.json").read_bytes())
    new = parse_document((case / "new.json").read_bytes())
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    return old, new, expected


def resolve(doc: Any, pointer: str) -> Any:
    """The value an RFC 6901 pointer designates in ``doc``; raises KeyError/IndexError if there is none."""
    node = doc
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_case_yields_exactly_the_expected_changes(case: Path) -> None:
    old, new, expected = load_case(case)

    assert [change_to_dict(change) for change in classify(old, new)] == expected


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_no_change_exactly_when_canonical_forms_are_equal(case: Path) -> None:
    old, new, _ = load_case(case)

    assert (classify(old, new) == []) == (canonical_json(old) == canonical_json(new))


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_every_path_resolves_in_the_document_it_points_into(case: Path) -> None:
    old, new, _ = load_case(case)

    for change in classify(old, new):
        resolve(old if change.new is ABSENT else new, change.path)


def test_every_rule_id_of_the_table_has_a_case() -> None:
    seen = {entry["rule"] for case in CASES for entry in load_case(case)[2]}

    assert seen == set(SEVERITIES)


def test_classify_is_deterministic_and_leaves_its_inputs_alone() -> None:
    old, new, _ = load_case(SEED_CASE)
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)

    first = classify(old, new)

    assert classify(old, new) == first
    assert (old, new) == (old_copy, new_copy)
    assert list(old) == list(old_copy)  # key order untouched too


def test_reordered_enum_is_not_a_change() -> None:
    old = {"properties": {"f": {"type": "string", "enum": ["raw", "qcow2", "iso"]}}}
    new = {"properties": {"f": {"type": "string", "enum": ["iso", "raw", "qcow2"]}}}

    assert classify(old, new) == []


def test_reordered_keys_are_not_a_change() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}}
    new = {"properties": {"a": {"maxLength": 5, "type": "string"}}, "type": "object"}

    assert classify(old, new) == []


def test_added_enum_value_is_one_change_with_an_absent_old_side() -> None:
    old = {"properties": {"disk_format": {"type": "string", "enum": ["raw"]}}}
    new = {"properties": {"disk_format": {"type": "string", "enum": ["raw", "vhdx"]}}}

    assert classify(old, new) == [
        Change("/properties/disk_format/enum", "enum-value-added", Severity.WARNING, ABSENT, "vhdx")
    ]


def test_removed_subtree_is_one_change_carrying_the_whole_property() -> None:
    locations = {"type": "array", "items": {"type": "object", "properties": {"url": {"type": "string"}}}}
    old = {"properties": {"locations": locations, "id": {"type": "string"}}}
    new = {"properties": {"id": {"type": "string"}}}

    assert classify(old, new) == [
        Change("/properties/locations", "property-removed", Severity.BREAKING, locations, ABSENT)
    ]


def test_a_list_inserted_into_the_middle_of_links_is_one_change() -> None:
    old = {"type": "object", "links": [{"rel": "self"}, {"rel": "describedby"}]}
    new = {"type": "object", "links": [{"rel": "self"}, {"rel": "next"}, {"rel": "describedby"}]}

    assert classify(old, new) == [Change("/links/1", "value-changed", Severity.INFO, ABSENT, {"rel": "next"})]


def test_changes_are_sorted_by_path_then_rule() -> None:
    old, new, _ = load_case(SEED_CASE)

    changes = classify(old, new)

    assert [(c.path, c.rule) for c in changes] == sorted((c.path, c.rule) for c in changes)


# --- deepdiff is the detector ------------------------------------------------------------------------------


def test_classify_asks_deepdiff_with_threshold_to_diff_deeper_0() -> None:
    old, new, _ = load_case(SEED_CASE)

    with mock.patch("monitor.judge.kinds.schema.rules.DeepDiff", wraps=DeepDiff) as deepdiff:
        changes = classify(old, new)

    assert changes
    assert deepdiff.call_args_list
    for call in deepdiff.call_args_list:
        assert call.kwargs["threshold_to_diff_deeper"] == 0
        assert call.kwargs["ignore_order"] is False
        assert call.kwargs["view"] == "tree"
        assert "max_diffs" not in call.kwargs


def test_classify_finds_no_change_when_deepdiff_reports_none() -> None:
    old, new, _ = load_case(SEED_CASE)

    with mock.patch("monitor.judge.kinds.schema.rules.DeepDiff", return_value={}) as deepdiff:
        assert classify(old, new) == []

    deepdiff.assert_called_once()


def test_only_the_subtrees_deepdiff_reports_are_classified() -> None:
    old = {"properties": {"a": {"type": "string"}, "b": {"type": "string", "maxLength": 5}}}
    new = {"properties": {"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 3}}}

    def without_b(*args: Any, **kwargs: Any) -> dict[str, list[Any]]:
        """deepdiff's real report, minus everything under /properties/b."""
        return {
            report: [level for level in levels if level.path(output_format="list")[:2] != ["properties", "b"]]
            for report, levels in DeepDiff(*args, **kwargs).items()
        }

    with mock.patch("monitor.judge.kinds.schema.rules.DeepDiff", side_effect=without_b):
        changes = classify(old, new)

    assert changes == [Change("/properties/a/type", "type-changed", Severity.BREAKING, "string", "integer")]


# --- deepdiff's pitfalls -------------------------------------------------------------------------------------


def test_booleans_replacing_equal_numbers_in_an_enum_are_changes() -> None:
    old = {"properties": {"flag": {"enum": [0, 1]}}}
    new = {"properties": {"flag": {"enum": [False, True]}}}

    assert [(c.rule, c.old, c.new) for c in classify(old, new)] == [
        ("enum-value-added", ABSENT, False),
        ("enum-value-added", ABSENT, True),
        ("enum-value-removed", 0, ABSENT),
        ("enum-value-removed", 1, ABSENT),
    ]


def test_a_float_turning_into_an_equal_integer_in_an_array_is_a_change() -> None:
    old = {"properties": {"size": {"type": "number", "examples": [1.0, 2]}}}
    new = {"properties": {"size": {"type": "number", "examples": [1, 2]}}}

    assert classify(old, new) == [
        Change("/properties/size/examples", "description-changed", Severity.COSMETIC, [1.0, 2], [1, 2])
    ]


def test_negative_zero_is_a_change_as_in_the_canonical_form() -> None:
    old = {"properties": {"ratio": {"type": "number", "default": 0.0}}}
    new = {"properties": {"ratio": {"type": "number", "default": -0.0}}}

    changes = classify(old, new)

    assert canonical_json(old) != canonical_json(new)
    assert [(c.path, c.rule, c.severity) for c in changes] == [
        ("/properties/ratio/default", "default-changed", Severity.WARNING)
    ]


def test_a_property_whose_name_starts_with_two_underscores_is_seen() -> None:
    old = {"properties": {"id": {"type": "string"}}}
    new = {"properties": {"id": {"type": "string"}, "__meta": {"type": "object"}}}

    assert classify(old, new) == [
        Change("/properties/__meta", "property-added", Severity.INFO, ABSENT, {"type": "object"})
    ]


def test_a_schema_keeping_one_keyword_of_four_is_diffed_keyword_by_keyword() -> None:
    old = {"properties": {"name": {"type": "string", "maxLength": 255}}}
    new = {"properties": {"name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"}}}

    assert [(c.path, c.rule) for c in classify(old, new)] == [
        ("/properties/name/maxLength", "max-length-increased"),
        ("/properties/name/minLength", "min-length-increased"),
        ("/properties/name/pattern", "pattern-added"),
    ]


def test_a_link_changed_after_an_insertion_is_compared_with_its_realigned_counterpart() -> None:
    old = {"type": "object", "links": [{"rel": "self", "href": "{self}"}, {"rel": "describedby", "href": "{a}"}]}
    new = {
        "type": "object",
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "self", "href": "{self}"},
            {"rel": "describedby", "href": "{b}"},
        ],
    }

    assert classify(old, new) == [
        Change("/links/0", "value-changed", Severity.INFO, ABSENT, {"href": "{first}", "rel": "first"}),
        Change("/links/2/href", "value-changed", Severity.INFO, "{a}", "{b}"),
    ]


@pytest.mark.slow  # many threads classifying at once: seconds of CPU
def test_classifying_from_many_threads_at_once_gives_every_thread_the_same_changes() -> None:
    """The daemon classifies in four store threads and the API's; deepdiff parses paths with ast (see _detect)."""
    old = default_document("images")
    new = mutate_breaking(old)
    expected = classify(old, new)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: classify(old, new), range(400)))
    assert expected and all(result == expected for result in results)
