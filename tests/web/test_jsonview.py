"""The diff panes' layout: one line per value start, pointers and anchors, and which lines a change marks."""

from __future__ import annotations

import json

from monitor.domain import ABSENT, Change, Severity
from monitor.web.jsonview import anchor_id, link_side, pane

DOCUMENT = {"a": {"b": 1, "c/d": [True, None]}, "e~f": "x", "g h": {}}


def test_the_lines_are_the_indented_json_with_a_pointer_per_value() -> None:
    laid_out = pane("new", DOCUMENT, [])
    assert "\n".join(line.text for line in laid_out.lines) == json.dumps(DOCUMENT, indent=2)
    starts = [line.pointer for line in laid_out.lines if line.starts]
    assert starts == ["", "/a", "/a/b", "/a/c~1d", "/a/c~1d/0", "/a/c~1d/1", "/e~0f", "/g h"]
    assert laid_out.pointers == frozenset(starts)


def test_anchor_ids_hold_no_space_and_keep_the_pointer_readable() -> None:
    assert anchor_id("old", "/g h") == "old-/g%20h"
    assert anchor_id("new", "/a/c~1d") == "new-/a/c~1d"
    assert anchor_id("new", "/ä") == "new-/%C3%A4"


def test_a_change_marks_its_value_whole_with_the_worst_severity() -> None:
    changes = [
        Change("/a", "type-changed", Severity.INFO, {"b": 0}, {"b": 1}),
        Change("/a/b", "default-changed", Severity.BREAKING, 0, 1),
    ]
    marked = {(line.pointer, line.text.strip()): line.severity for line in pane("new", DOCUMENT, changes).lines}
    assert marked[("/a", '"a": {')] is Severity.INFO
    assert marked[("/a", "},")] is Severity.INFO  # the closing bracket too
    assert marked[("/a/b", '"b": 1,')] is Severity.BREAKING
    assert marked[("/a/c~1d/0", "true,")] is Severity.INFO
    assert marked[("/e~0f", '"e~f": "x",')] is None


def test_an_added_value_marks_only_the_new_side_and_a_removed_one_only_the_old() -> None:
    added = Change("/e~0f", "property-added", Severity.INFO, ABSENT, "x")
    removed = Change("/g h", "property-removed", Severity.BREAKING, {}, ABSENT)
    old, new = pane("old", DOCUMENT, [added, removed]), pane("new", DOCUMENT, [added, removed])
    assert {line.pointer for line in old.lines if line.severity} == {"/g h"}
    assert {line.pointer for line in new.lines if line.severity} == {"/e~0f"}
    assert link_side(added, old, new) is new and link_side(removed, old, new) is old
    assert link_side(Change("/zz", "property-added", Severity.INFO, ABSENT, 1), old, new) is None
