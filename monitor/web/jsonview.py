"""A canonical document as lines of indented JSON, each knowing its JSON Pointer: the diff page's panes.

Every value starts on a line of its own, so a value's first line can carry an HTML id made from its RFC 6901
pointer (``anchor_id``), and the change table can link to it. A line is *marked* with the worst severity of
the changes at its value or at any value containing it, so a changed object is highlighted whole (its
closing bracket too). Nothing is computed here but layout: the changes come from the read model.

Ids are ``<side>-<pointer>``, the pointer percent-encoded as in a URL fragment (RFC 6901 section 6), so an id
never holds a space and ``#new-/properties/min_disk`` links to ``/properties/min_disk`` of the new side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from monitor.domain import ABSENT, Change, Severity, pointer_join

SIDES: Final = ("old", "new")
INDENT: Final = 2


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a pane: its text (indentation included), the pointer of the value it belongs to, whether
    it starts that value (and so carries the anchor), and the severity that marks it (None: unchanged)."""

    text: str
    pointer: str
    starts: bool
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class Pane:
    """One side of a diff: ``side`` is ``old`` or ``new``; ``pointers`` every value's pointer on that side."""

    side: str
    lines: tuple[Line, ...]
    pointers: frozenset[str]

    def anchor(self, pointer: str) -> str:
        """The HTML id of ``pointer``'s first line on this side."""
        return anchor_id(self.side, pointer)


def anchor_id(side: str, pointer: str) -> str:
    """The element id of ``pointer`` on ``side`` (``old``/``new``): ``<side>-<percent-encoded pointer>``."""
    return f"{side}-{quote(pointer, safe='/')}"


def pane(side: str, document: Any, changes: Iterable[Change]) -> Pane:
    """``document`` laid out as lines, each marked by the worst change at or above its value.

    Only changes with a value on ``side`` mark it: an added property marks the new side, a removed one the
    old, so an array index that means another item on the other side is never highlighted there.
    """
    present = [c for c in changes if (c.old if side == "old" else c.new) is not ABSENT]
    marks = _marks(present)
    lines: list[Line] = []
    _lay_out(document, "", "", 0, "", lines)
    marked = tuple(Line(line.text, line.pointer, line.starts, _mark(line.pointer, marks)) for line in lines)
    return Pane(side, marked, frozenset(line.pointer for line in lines))


def link_side(change: Change, old: Pane, new: Pane) -> Pane | None:
    """The pane a change table row links to: the side that has the changed value (the new one when both
    have), else a side where the path exists; None when neither has it."""
    for candidate, value in ((new, change.new), (old, change.old)):
        if value is not ABSENT and change.path in candidate.pointers:
            return candidate
    return next((p for p in (new, old) if change.path in p.pointers), None)


def _marks(changes: Iterable[Change]) -> dict[str, Severity]:
    marks: dict[str, Severity] = {}
    for change in changes:
        known = marks.get(change.path)
        marks[change.path] = change.severity if known is None else Severity.worst(known, change.severity)
    return marks


def _mark(pointer: str, marks: Mapping[str, Severity]) -> Severity | None:
    """The worst severity among ``pointer`` and its ancestors in ``marks`` (tokens never contain ``/``)."""
    found: Severity | None = None
    prefix = pointer
    while True:
        severity = marks.get(prefix)
        if severity is not None:
            found = severity if found is None else Severity.worst(found, severity)
        if not prefix:
            return found
        prefix = prefix.rsplit("/", 1)[0]


def _lay_out(value: Any, pointer: str, label: str, depth: int, comma: str, out: list[Line]) -> None:
    """Append ``value``'s lines; ``label`` is ``"key": `` inside an object, ``comma`` its separator."""
    pad = " " * (INDENT * depth)
    items: list[tuple[str | int, Any, str]]
    if isinstance(value, dict) and value:
        items = [(key, item, json.dumps(key, ensure_ascii=False) + ": ") for key, item in value.items()]
        brackets = "{}"
    elif isinstance(value, list) and value:
        items = [(index, item, "") for index, item in enumerate(value)]
        brackets = "[]"
    else:
        out.append(Line(f"{pad}{label}{json.dumps(value, ensure_ascii=False)}{comma}", pointer, True))
        return
    out.append(Line(f"{pad}{label}{brackets[0]}", pointer, True))
    for position, (token, item, item_label) in enumerate(items):
        separator = "," if position < len(items) - 1 else ""
        _lay_out(item, pointer_join(pointer, token), item_label, depth + 1, separator, out)
    out.append(Line(f"{pad}{brackets[1]}{comma}", pointer, False))
