"""The report renderers: text as ``diff`` prints it, Markdown, JSON, and JSON Patch that round-trips."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from monitor.domain import ABSENT, Change, Severity
from monitor.judge.canonical import canonicalize, parse_document
from monitor.read.reports import (
    COLORS,
    FORMATS,
    RESET,
    Comparison,
    render,
    render_json,
    render_json_patch,
    render_markdown,
    render_text,
)
from monitor.read.reports import _expand as expand_op
from tests.support.paths import DATA

CASES_DIR = DATA / "diff_cases"
CASES = sorted(path for path in CASES_DIR.iterdir() if path.is_dir())
TITLE = "huawei/cn-north-4/images: snapshot 3 → 7"

BREAKING = Change("/properties/file", "property-removed", Severity.BREAKING, old={"type": "string"})
WARNING = Change("/properties/status/enum", "enum-value-added", Severity.WARNING, new="importing")
INFO = Change("/properties/os_hidden", "property-added", Severity.INFO, new={"type": "boolean"})
COSMETIC = Change("/properties/name/description", "description-changed", Severity.COSMETIC, old="a", new="b")
NULL_DEFAULT = Change("/properties/x/default", "default-changed", Severity.WARNING, old=None, new=ABSENT)


def seed() -> dict[str, Any]:
    """The IMS ``/v2/schemas/images`` document the simulator serves."""
    return parse_document(resources.files("monitor.demo").joinpath("documents", "images.json").read_bytes())


def case_documents(case: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return parse_document((case / "old.json").read_bytes()), parse_document((case / "new.json").read_bytes())


def comparison(*changes: Change, title: str = TITLE) -> Comparison:
    return Comparison(title, {"type": "object"}, {"type": "object"}, changes)


def patch_between(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The rendered JSON Patch for one comparison, parsed back."""
    patch: list[dict[str, Any]] = json.loads(render_json_patch([Comparison("t", old, new, [])]))
    return patch


def assert_round_trip(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Applying the rendered patch to canonical ``old`` gives canonical ``new``, as JSON (1 ≠ true ≠ 1.0)."""
    patch = patch_between(old, new)
    applied = jsonpatch.apply_patch(canonicalize(old), patch)
    assert json.dumps(applied, sort_keys=True) == json.dumps(canonicalize(new), sort_keys=True)
    assert {op["op"] for op in patch} <= {"add", "remove", "replace"}


# --- text ----------------------------------------------------------------------------------------------


def test_text_has_the_layout_diff_prints() -> None:
    text = render_text([comparison(BREAKING, WARNING)], color=False)

    assert text == (
        f"{TITLE}: 2 change(s)\n"
        '  breaking  property-removed               /properties/file  {"type": "string"} → ∅\n'
        '  warning   enum-value-added               /properties/status/enum  ∅ → "importing"\n'
    )


def test_text_without_color_has_no_escape_sequences() -> None:
    text = render_text([comparison(BREAKING, WARNING, INFO, COSMETIC)], color=False)

    assert "\033" not in text


def test_text_with_color_paints_each_severity_label_in_its_color() -> None:
    lines = render_text([comparison(BREAKING, WARNING, INFO, COSMETIC)], color=True).splitlines()[1:]

    for line, severity in zip(lines, Severity, strict=True):
        assert line.startswith(f"  {COLORS[severity]}{severity.value:<9}{RESET} ")


def test_text_keeps_a_json_null_apart_from_a_missing_side() -> None:
    text = render_text([comparison(NULL_DEFAULT)], color=False)

    assert text.endswith("null → ∅\n")


def test_text_shortens_long_values_with_an_ellipsis() -> None:
    long = Change("/properties/x/description", "description-changed", Severity.COSMETIC, old="a" * 200, new="b")

    line = render_text([comparison(long)], color=False).splitlines()[1]

    assert '"' + "a" * 58 + "… → " in line
    assert "a" * 60 not in line


def test_text_separates_comparisons_with_a_blank_line() -> None:
    text = render_text([comparison(BREAKING, title="one"), comparison(title="two")], color=False)
    lines = text.splitlines()

    assert [lines[0], lines[2], lines[3]] == ["one: 1 change(s)", "", "two: 0 change(s)"]
    assert len(lines) == 4


def test_text_of_no_comparisons_is_empty() -> None:
    assert render_text([], color=True) == ""


# --- Markdown ------------------------------------------------------------------------------------------


def test_markdown_has_a_heading_a_severity_count_and_a_table() -> None:
    text = render_markdown([comparison(BREAKING, WARNING, INFO)])

    assert text.splitlines() == [
        f"## {TITLE}",
        "",
        "3 change(s): 1 breaking, 1 warning, 1 info",
        "",
        "| severity | rule | path | old | new |",
        "| --- | --- | --- | --- | --- |",
        '| breaking | property-removed | `/properties/file` | `{"type": "string"}` | ∅ |',
        '| warning | enum-value-added | `/properties/status/enum` | ∅ | `"importing"` |',
        '| info | property-added | `/properties/os_hidden` | ∅ | `{"type": "boolean"}` |',
    ]


def test_markdown_escapes_pipes_in_values_and_paths() -> None:
    piped = Change("/properties/a|b/pattern", "pattern-changed", Severity.WARNING, old="^(x|y)$", new="^z$")

    row = render_markdown([comparison(piped)]).splitlines()[-1]

    assert row == r'| warning | pattern-changed | `/properties/a\|b/pattern` | `"^(x\|y)$"` | `"^z$"` |'
    assert row.replace(r"\|", "").count("|") == 6  # still exactly five cells


def test_markdown_truncates_long_values_with_an_ellipsis() -> None:
    long = Change("/properties/x/description", "description-changed", Severity.COSMETIC, old="a" * 200, new="b")

    row = render_markdown([comparison(long)]).splitlines()[-1]

    assert '`"' + "a" * 58 + "…`" in row


def test_markdown_code_span_outlasts_backticks_in_the_value() -> None:
    ticked = Change("/properties/x/description", "description-changed", Severity.COSMETIC, old="use `id`", new="b")

    row = render_markdown([comparison(ticked)]).splitlines()[-1]

    assert '| ``"use `id`"`` |' in row


def test_markdown_escapes_markdown_in_the_title() -> None:
    text = render_markdown([comparison(title="huawei/eu_west_0/images")])

    assert text.startswith(r"## huawei/eu\_west\_0/images" + "\n")


def test_markdown_says_no_changes_instead_of_an_empty_table() -> None:
    text = render_markdown([comparison()])

    assert "No changes." in text
    assert "|" not in text


def test_markdown_renders_one_section_per_comparison() -> None:
    text = render_markdown([comparison(BREAKING, title="first"), comparison(INFO, title="second")])

    assert [line for line in text.splitlines() if line.startswith("## ")] == ["## first", "## second"]


# --- JSON ----------------------------------------------------------------------------------------------


def test_json_lists_each_comparison_with_its_changes_and_presence_flags() -> None:
    report = json.loads(render_json([comparison(WARNING, NULL_DEFAULT)]))

    assert report == [
        {
            "title": TITLE,
            "changes": [
                {
                    "path": "/properties/status/enum",
                    "rule": "enum-value-added",
                    "severity": "warning",
                    "old": None,
                    "new": "importing",
                    "old_present": False,
                    "new_present": True,
                },
                {
                    "path": "/properties/x/default",
                    "rule": "default-changed",
                    "severity": "warning",
                    "old": None,
                    "new": None,
                    "old_present": True,
                    "new_present": False,
                },
            ],
        }
    ]


# --- JSON Patch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_json_patch_turns_canonical_old_into_canonical_new_for_every_diff_case(case: Path) -> None:
    old, new = case_documents(case)

    assert_round_trip(old, new)
    assert_round_trip(new, old)


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_json_patch_turns_the_seed_into_each_case_document(case: Path) -> None:
    old, new = case_documents(case)

    assert_round_trip(seed(), new)
    assert_round_trip(seed(), old)


def test_json_patch_reports_a_renamed_property_as_remove_and_add() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 5}}}
    new = {"type": "object", "properties": {"b": {"type": "string", "maxLength": 5}}}
    assert [op["op"] for op in jsonpatch.make_patch(canonicalize(old), canonicalize(new))] == ["move"]

    assert patch_between(old, new) == [
        {"op": "remove", "path": "/properties/a"},
        {"op": "add", "path": "/properties/b", "value": {"maxLength": 5, "type": "string"}},
    ]


def test_json_patch_reports_an_item_moved_within_an_array_as_remove_and_add() -> None:
    old = {"type": "object", "links": ["x", "y", "z"]}
    new = {"type": "object", "links": ["z", "x", "y"]}

    assert patch_between(old, new) == [
        {"op": "remove", "path": "/links/2"},
        {"op": "add", "path": "/links/0", "value": "z"},
    ]


def test_a_copy_operation_becomes_an_add_of_the_value_at_from() -> None:
    doc = {"properties": {"a": {"type": "string"}}}

    steps = expand_op({"op": "copy", "from": "/properties/a", "path": "/properties/b"}, doc)

    assert steps == [{"op": "add", "path": "/properties/b", "value": {"type": "string"}}]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # stefankoegl/python-json-patch#124: a move whose "from" index is stale after a removal
        ({"type": "object", "links": ["a", "b", ["d", "e"], "f"]}, {"type": "object", "links": ["a", "d", ["e", "g"]]}),
        # stefankoegl/python-json-patch#138: a move out of bounds
        (
            {
                "type": "object",
                "allOf": [{"x": ["a", {"y": ["b"]}], "z": "a"}, {"x": ["c", {"d": ["d"]}], "z": "c"}, {}],
            },
            {"type": "object", "allOf": [{"x": ["c", {"y": ["d"]}], "z": "c"}, {}]},
        ),
        # jsonpatch compares array items with Python ==, where 0 == false and 1 == true
        ({"type": "object", "examples": [0, 1]}, {"type": "object", "examples": [False, True]}),
        # ... and so takes {"a": 1} for {"a": true} and "moves" it
        ({"type": "object", "examples": [{"a": 1}]}, {"type": "object", "examples": [], "y": {"a": True}}),
        ({"type": "object", "default": [0.0]}, {"type": "object", "default": [-0.0]}),
    ],
    ids=["stale-move-from", "move-out-of-bounds", "number-to-boolean", "object-moved-with-other-type", "negative-zero"],
)
def test_json_patch_is_right_where_jsonpatch_alone_goes_wrong(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert_round_trip(old, new)


def test_json_patch_of_equal_documents_is_empty() -> None:
    old, new = case_documents(CASES_DIR / "no-change-reordered-enum-required-type")

    assert patch_between(old, new) == []


def test_json_patch_of_several_comparisons_is_a_titled_list() -> None:
    first = Comparison("one", {"type": "object"}, {"type": "array"}, [])
    second = Comparison("two", {"type": "object"}, {"type": "object"}, [])

    assert json.loads(render_json_patch([first, second])) == [
        {"title": "one", "patch": [{"op": "replace", "path": "/type", "value": "array"}]},
        {"title": "two", "patch": []},
    ]


# --- dispatch ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_dispatches_to_the_renderer_of_each_format(fmt: str) -> None:
    comparisons = [comparison(BREAKING)]
    expected = {
        "text": render_text(comparisons, color=True),
        "markdown": render_markdown(comparisons),
        "json": render_json(comparisons),
        "jsonpatch": render_json_patch(comparisons),
    }[fmt]

    assert render(fmt, comparisons, color=True) == expected


def test_every_format_ends_with_a_newline() -> None:
    for fmt in FORMATS:
        assert render(fmt, [comparison(BREAKING)]).endswith("\n")


def test_render_rejects_an_unknown_format_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="text, markdown, json, jsonpatch"):
        render("html", [comparison()])
