"""The aligned split diff of the diff pages (monitor.web.aligned): data-driven cases in
tests/data/aligned_cases.json — each the two documents, the classified changes, the rows expected (kind,
severity, old line, new line; ``⟦…⟧`` marks what is highlighted, null a gap) and each change's anchor — then
what holds for any pair of documents: each side reads as its indented JSON, numbered without a hole."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.demo.server import mutate_breaking
from monitor.domain import ABSENT, Change, Severity
from monitor.judge.canonical import canonicalize
from monitor.judge.kinds import get_kind
from monitor.web.aligned import Cell, Kind, align, anchor_id, lay_out
from tests.support.paths import ROOT

CASES = json.loads((ROOT / "tests" / "data" / "aligned_cases.json").read_text(encoding="utf-8"))
DEMO = json.loads((ROOT / "monitor" / "demo" / "documents" / "images.json").read_text(encoding="utf-8"))
ITEM = "/properties/images/items/properties"


def change(data: dict[str, Any]) -> Change:
    return Change(data["path"], data["rule"], Severity(data["severity"]), data.get("old", ABSENT),
                  data.get("new", ABSENT))  # fmt: skip


def marked(cell: Cell | None) -> str | None:
    return None if cell is None else "".join(f"⟦{text}⟧" if mark else text for text, mark in cell.parts)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_aligned_rows(case: dict[str, Any]) -> None:
    diff = align(case["old"], case["new"], [change(c) for c in case["changes"]])
    rows = [[r.kind.value, r.severity.value if r.severity else None, marked(r.old), marked(r.new)] for r in diff.rows]
    assert rows == case["rows"]
    assert list(diff.anchors) == case["anchors"]
    assert_each_side_reads_as_its_document(case["old"], case["new"], diff.rows)


def assert_each_side_reads_as_its_document(old: Any, new: Any, rows: Any) -> None:
    for side, document in (("old", old), ("new", new)):
        cells = [cell for row in rows if (cell := getattr(row, side)) is not None]
        assert "\n".join(cell.text for cell in cells) == json.dumps(document, indent=2, ensure_ascii=False)
        assert [cell.number for cell in cells] == list(range(1, len(cells) + 1))
        assert all("".join(text for text, _ in cell.parts) == cell.text for cell in cells)


def test_every_case_file_case_has_a_name_and_rows() -> None:
    assert len({case["name"] for case in CASES}) == len(CASES) >= 10
    kinds = {row[0] for case in CASES for row in case["rows"]}
    assert kinds == {kind.value for kind in Kind}


def test_the_demo_change_removed_property_faces_a_gap_and_only_the_new_enum_value_is_marked() -> None:
    old, new = canonicalize(DEMO), canonicalize(mutate_breaking(DEMO))
    changes = get_kind("schema").classify(old, new)
    diff = align(old, new, changes)
    removed = [row for row in diff.rows if row.old is not None and row.old.pointer.startswith(f"{ITEM}/min_disk")]
    assert removed and all(row.kind is Kind.REMOVED and row.new is None for row in removed)
    assert {row.severity for row in removed} == {Severity.BREAKING}
    enum = [row for row in diff.rows if row.new is not None and row.new.pointer.startswith(f"{ITEM}/disk_format/enum")]
    highlighted = [row for row in enum if row.kind is not Kind.SAME]
    assert [(row.kind, marked(row.new)) for row in highlighted] == [(Kind.ADDED, " " * 14 + '⟦"vhdx"⟧,')]
    assert highlighted[0].severity is Severity.WARNING
    assert sum(1 for row in diff.rows if row.kind is not Kind.SAME) == len(removed) + 1  # nothing else differs
    anchors = dict(zip((c.rule for c in changes), diff.anchors, strict=True))
    position = new["properties"]["images"]["items"]["properties"]["disk_format"]["enum"].index("vhdx")
    assert anchors == {"property-removed": f"old-{ITEM}/min_disk",
                       "enum-value-added": f"new-{ITEM}/disk_format/enum/{position}"}  # fmt: skip
    assert_each_side_reads_as_its_document(old, new, diff.rows)


def test_the_layout_of_one_side_is_its_indented_json_with_a_pointer_per_value() -> None:
    document = {"a": {"b": 1, "c/d": [True, None]}, "e~f": "x", "g h": {}}
    lines = lay_out(document)
    assert "\n".join(line.text for line in lines) == json.dumps(document, indent=2)
    starts = [line.pointer for line in lines if line.starts]
    assert starts == ["", "/a", "/a/b", "/a/c~1d", "/a/c~1d/0", "/a/c~1d/1", "/e~0f", "/g h"]


def test_anchor_ids_hold_no_space_and_keep_the_pointer_readable() -> None:
    assert anchor_id("old", "/g h") == "old-/g%20h"
    assert anchor_id("new", "/a/c~1d") == "new-/a/c~1d"
    assert anchor_id("new", "/ä") == "new-/%C3%A4"
