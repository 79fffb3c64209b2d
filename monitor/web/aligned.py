"""Two documents as an aligned split diff, the way a code-review tool shows one; pure functions, layout only.

Both documents are laid out as indented JSON (every value starting on a line of its own, so a value's first
line can carry an anchor), and the two layouts are aligned by JSON Pointer into rows: a row holds a line of the
old document, a line of the new one, or both.

* **Objects** are aligned key by key (in document order; the stored documents are canonical, keys sorted): a
  key on both sides is aligned recursively, a key on one side only gives rows with nothing on the other side
  (a *gap*), so a removed property leaves an empty counterpart rather than pulling the rest of the document up.
* **Arrays** are aligned by their items' values (``difflib.SequenceMatcher`` over the items as JSON): equal items
  pair up even when an index moved, an item that appears or disappears (an enum value) is a row of its own
  with a gap opposite, and a replaced object or array is aligned recursively with the item it replaced.
* **Anything else** — a scalar that changed, a value whose type changed — pairs its lines in order.

Each row is ``same``, ``changed``, ``removed`` (old side only) or ``added`` (new side only); a difference in a
trailing comma alone (the neighbour went) is ``same``. In a changed row the characters that differ are marked
(common prefix and suffix left plain), in a removed or added row the line's value: the smallest unit that
changed is what stands out — for an enum, the one value. A row that differs is coloured by the worst change
whose path is at or above the pointer of one of its lines (a line only one side has: also by the changes
inside its value; None when no classified change covers it), and every change gets an anchor: the element id
(:func:`anchor_id`) of the first differing line it covers, so the change table can link to the row where the
change is visible.

Ids are ``<side>-<pointer>``, the pointer percent-encoded as in a URL fragment (RFC 6901 section 6), so an id
never holds a space and ``#new-/properties/min_disk`` names ``/properties/min_disk`` on the new side.
"""

from __future__ import annotations

import difflib
import enum
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from monitor.domain import ABSENT, Change, Severity, pointer_join

INDENT: Final = 2


class Kind(enum.StrEnum):
    """How the two sides of a row compare."""

    SAME = "same"
    CHANGED = "changed"
    REMOVED = "removed"  # old side only
    ADDED = "added"  # new side only


@dataclass(frozen=True, slots=True)
class Line:
    """One laid-out line of one side: its text (indentation included), the pointer of the value it belongs to,
    and whether it starts that value (and so carries the anchor)."""

    text: str
    pointer: str
    starts: bool


@dataclass(frozen=True, slots=True)
class Cell:
    """One side of a row: its line, its line number on that side (from 1), and the line's text in parts, each
    ``(text, marked)``; the marked parts are what changed."""

    line: Line
    number: int
    parts: tuple[tuple[str, bool], ...]

    @property
    def pointer(self) -> str:
        return self.line.pointer

    @property
    def starts(self) -> bool:
        return self.line.starts

    @property
    def text(self) -> str:
        return self.line.text


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the diff: the old and the new cell (None: a gap), how they compare, and the worst change
    covering the row (None for a same row, or a difference no classified change covers)."""

    old: Cell | None
    new: Cell | None
    kind: Kind
    severity: Severity | None = None

    def covered_by(self, path: str) -> bool:
        """Whether this row differs and one of its lines lies at or below ``path``."""
        return self.kind is not Kind.SAME and any(
            cell is not None and _under(cell.pointer, path) for cell in (self.old, self.new)
        )


@dataclass(frozen=True)
class AlignedDiff:
    """The rows of a diff, and per change (in the order given) the element id of the row that shows it (None
    when neither side has its path)."""

    rows: tuple[Row, ...]
    anchors: tuple[str | None, ...]


def anchor_id(side: str, pointer: str) -> str:
    """The element id of ``pointer`` on ``side`` (``old``/``new``): ``<side>-<percent-encoded pointer>``."""
    return f"{side}-{quote(pointer, safe='/')}"


def align(old: Any, new: Any, changes: Sequence[Change]) -> AlignedDiff:
    """``old`` and ``new`` (parsed JSON documents) as aligned rows, coloured and anchored by ``changes``."""
    pairs: list[tuple[Line | None, Line | None]] = []
    _pair(old, new, "", "", "", 0, ("", ""), pairs)
    index = _Index.of(changes)
    rows = tuple(_numbered(pairs, index))
    return AlignedDiff(rows, _anchors(rows, index))


# --- layout of one side ------------------------------------------------------------------------------------


def lay_out(value: Any, pointer: str = "", label: str = "", depth: int = 0, comma: str = "") -> list[Line]:
    """``value`` as indented JSON lines (``label``: its ``"key": `` inside an object, ``comma`` what follows it);
    joined with newlines, the lines are ``json.dumps(value, indent=2)``."""
    out: list[Line] = []
    _lay_out(value, pointer, label, depth, comma, out)
    return out


def _lay_out(value: Any, pointer: str, label: str, depth: int, comma: str, out: list[Line]) -> None:
    pad = " " * (INDENT * depth)
    if not _container(value):
        out.append(Line(f"{pad}{label}{json.dumps(value, ensure_ascii=False)}{comma}", pointer, True))
        return
    out.append(Line(f"{pad}{label}{_open(value)}", pointer, True))
    items = list(_items(value))
    for position, (token, item, item_label) in enumerate(items):
        _lay_out(item, pointer_join(pointer, token), item_label, depth + 1, _comma(position, len(items)), out)
    out.append(Line(f"{pad}{_close(value)}{comma}", pointer, False))


def _container(value: Any) -> bool:
    """A non-empty object or array: laid out over several lines (an empty one is a scalar's single line)."""
    return isinstance(value, dict | list) and bool(value)


def _items(value: dict[str, Any] | list[Any]) -> Iterator[tuple[str | int, Any, str]]:
    """(token, item, label) of each member: ``"key": `` labels in an object, none in an array."""
    if isinstance(value, dict):
        return ((key, item, json.dumps(key, ensure_ascii=False) + ": ") for key, item in value.items())
    return ((index, item, "") for index, item in enumerate(value))


def _open(value: Any) -> str:
    return "{" if isinstance(value, dict) else "["


def _close(value: Any) -> str:
    return "}" if isinstance(value, dict) else "]"


def _comma(position: int, count: int) -> str:
    return "," if position < count - 1 else ""


# --- alignment -----------------------------------------------------------------------------------------------

_Pairs = list[tuple[Line | None, Line | None]]


def _pair(old: Any, new: Any, old_ptr: str, new_ptr: str, label: str, depth: int, commas: tuple[str, str],
          out: _Pairs) -> None:  # fmt: skip
    """Append the aligned lines of ``old`` (at ``old_ptr``) and ``new`` (at ``new_ptr``), both under ``label``."""
    same_kind = type(old) is type(new) and _container(old) and _container(new)
    if not same_kind or _json(old) == _json(new):
        _side_by_side(lay_out(old, old_ptr, label, depth, commas[0]), lay_out(new, new_ptr, label, depth, commas[1]),
                      out)  # fmt: skip
        return
    pad = " " * (INDENT * depth)
    out.append((Line(f"{pad}{label}{_open(old)}", old_ptr, True), Line(f"{pad}{label}{_open(new)}", new_ptr, True)))
    if isinstance(old, dict):
        _pair_members(old, new, old_ptr, new_ptr, depth + 1, out)
    else:
        _pair_items(old, new, old_ptr, new_ptr, depth + 1, out)
    close = f"{pad}{_close(old)}"
    out.append((Line(close + commas[0], old_ptr, False), Line(close + commas[1], new_ptr, False)))


def _side_by_side(old: Sequence[Line], new: Sequence[Line], out: _Pairs) -> None:
    """Pair two runs of lines in order; the longer one's rest faces gaps."""
    for index in range(max(len(old), len(new))):
        out.append((old[index] if index < len(old) else None, new[index] if index < len(new) else None))


def _pair_members(old: dict[str, Any], new: dict[str, Any], old_ptr: str, new_ptr: str, depth: int,
                  out: _Pairs) -> None:  # fmt: skip
    """Align two objects key by key: common keys recursively, the others facing gaps."""
    old_keys, new_keys = list(old), list(new)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_keys, new_keys, autojunk=False).get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                key = old_keys[i]
                label = json.dumps(key, ensure_ascii=False) + ": "
                commas = (_comma(i, len(old_keys)), _comma(j, len(new_keys)))
                _pair(old[key], new[key], pointer_join(old_ptr, key), pointer_join(new_ptr, key), label, depth,
                      commas, out)  # fmt: skip
            continue
        for i in range(i1, i2):  # a key that went (a replace: the old keys first, then the new ones)
            key = old_keys[i]
            _one_side(lay_out(old[key], pointer_join(old_ptr, key), json.dumps(key, ensure_ascii=False) + ": ",
                              depth, _comma(i, len(old_keys))), "old", out)  # fmt: skip
        for j in range(j1, j2):
            key = new_keys[j]
            _one_side(lay_out(new[key], pointer_join(new_ptr, key), json.dumps(key, ensure_ascii=False) + ": ",
                              depth, _comma(j, len(new_keys))), "new", out)  # fmt: skip


def _pair_items(old: list[Any], new: list[Any], old_ptr: str, new_ptr: str, depth: int, out: _Pairs) -> None:
    """Align two arrays by their items' values: equal items pair up, replaced containers are aligned
    recursively with the one they replaced, other items face gaps."""
    matcher = difflib.SequenceMatcher(None, [_json(i) for i in old], [_json(i) for i in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        paired = 0
        if tag in ("equal", "replace"):
            for i, j in zip(range(i1, i2), range(j1, j2), strict=False):
                if tag == "replace" and not (type(old[i]) is type(new[j]) and _container(old[i])):
                    break  # scalars that differ: one went, another came
                commas = (_comma(i, len(old)), _comma(j, len(new)))
                _pair(old[i], new[j], pointer_join(old_ptr, i), pointer_join(new_ptr, j), "", depth, commas, out)
                paired += 1
        for i in range(i1 + paired, i2):
            _one_side(lay_out(old[i], pointer_join(old_ptr, i), "", depth, _comma(i, len(old))), "old", out)
        for j in range(j1 + paired, j2):
            _one_side(lay_out(new[j], pointer_join(new_ptr, j), "", depth, _comma(j, len(new))), "new", out)


def _one_side(lines: Iterable[Line], side: str, out: _Pairs) -> None:
    out.extend((line, None) if side == "old" else (None, line) for line in lines)


def _json(value: Any) -> str:
    """A value as JSON text for equality (``1``, ``1.0`` and ``true`` differ, unlike Python's ``==``)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# --- rows: numbers, kinds, marks, severities, anchors --------------------------------------------------------


def _numbered(pairs: Sequence[tuple[Line | None, Line | None]], index: _Index) -> Iterator[Row]:
    numbers = [0, 0]
    for old, new in pairs:
        kind = _kind(old, new)
        cells: list[Cell | None] = []
        for side, (line, other) in enumerate(((old, new), (new, old))):
            if line is None:
                cells.append(None)
                continue
            numbers[side] += 1
            cells.append(Cell(line, numbers[side], _parts(line.text, other.text if other else None, kind)))
        row = Row(cells[0], cells[1], kind)
        yield Row(row.old, row.new, kind, index.severity(row)) if kind is not Kind.SAME else row


def _kind(old: Line | None, new: Line | None) -> Kind:
    if old is None:
        return Kind.ADDED
    if new is None:
        return Kind.REMOVED
    return Kind.SAME if old.text.removesuffix(",") == new.text.removesuffix(",") else Kind.CHANGED


def _parts(text: str, other: str | None, kind: Kind) -> tuple[tuple[str, bool], ...]:
    """``text`` split into plain and marked parts: a changed line marks what differs from ``other``, a removed
    or added line its content (indentation and trailing comma plain), a same line nothing."""
    if kind is Kind.SAME:
        return ((text, False),)
    if other is None:
        body = text.lstrip(" ").removesuffix(",")
        start = len(text) - len(text.lstrip(" "))
        return _split(text, start, start + len(body))
    start = _common_prefix(text, other)
    end = len(text) - _common_prefix(text[start:][::-1], other[start:][::-1])
    return _split(text, start, end)


def _split(text: str, start: int, end: int) -> tuple[tuple[str, bool], ...]:
    parts = ((text[:start], False), (text[start:end], True), (text[end:], False))
    return tuple(part for part in parts if part[0])


def _common_prefix(a: str, b: str) -> int:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return size


def _under(pointer: str, path: str) -> bool:
    """Whether ``pointer`` is ``path`` or below it (reference tokens never contain ``/``)."""
    return pointer == path or pointer.startswith(path + "/") or path == ""


def _prefixes(pointer: str) -> Iterator[str]:
    """``pointer`` and each pointer above it, up to the root ``""``."""
    while True:
        yield pointer
        if not pointer:
            return
        pointer = pointer.rsplit("/", 1)[0]


@dataclass(frozen=True)
class _Index:
    """The changes (by position) at each path, and at or below each pointer: a row finds what it shows in
    O(depth), not O(changes)."""

    changes: Sequence[Change]
    at: dict[str, list[int]]
    below: dict[str, list[int]]

    @classmethod
    def of(cls, changes: Sequence[Change]) -> _Index:
        at: dict[str, list[int]] = {}
        below: dict[str, list[int]] = {}
        for position, change in enumerate(changes):
            at.setdefault(change.path, []).append(position)
            for prefix in _prefixes(change.path):
                below.setdefault(prefix, []).append(position)
        return cls(changes, at, below)

    def shown(self, row: Row) -> list[int]:
        """The changes ``row`` shows (in their order): it differs, a line of it lies at or below the change's
        path, and a line only one side has belongs to a change with a value on that side (an added enum value
        is not the removal of another one at the same path)."""
        if row.kind is Kind.SAME:
            return []
        found: set[int] = set()
        for cell in (row.old, row.new):
            if cell is not None:
                for prefix in _prefixes(cell.pointer):
                    found.update(self.at.get(prefix, ()))
        return sorted(i for i in found if _on_its_side(row.kind, self.changes[i]))

    def severity(self, row: Row) -> Severity | None:
        """The worst change ``row`` shows; a line only one side has (a whole value that came or went) also
        takes the changes found inside that value."""
        found = self.shown(row)
        cell = row.old if row.kind is Kind.REMOVED else row.new if row.kind is Kind.ADDED else None
        if cell is not None:
            found += self.below.get(cell.pointer, [])
        return Severity.worst(*(self.changes[i].severity for i in found)) if found else None


def _on_its_side(kind: Kind, change: Change) -> bool:
    if kind is Kind.ADDED:
        return change.new is not ABSENT or change.old is ABSENT
    if kind is Kind.REMOVED:
        return change.old is not ABSENT or change.new is ABSENT
    return True


def _anchors(rows: Sequence[Row], index: _Index) -> tuple[str | None, ...]:
    """Each change's anchor: the id of the first line that shows it (:meth:`_Index.shown`; the new side first),
    else of the line that starts its path (the new side first); None when neither side has it."""
    anchors: list[str | None] = [None] * len(index.changes)
    starts: set[tuple[str, str]] = set()
    for row in rows:
        cells = [(side, cell) for side, cell in (("new", row.new), ("old", row.old)) if cell and cell.starts]
        starts.update((side, cell.pointer) for side, cell in cells)
        for i in index.shown(row):
            if anchors[i] is None:
                path = index.changes[i].path
                found = (anchor_id(side, cell.pointer) for side, cell in cells if _under(cell.pointer, path))
                anchors[i] = next(found, None)
    for i, change in enumerate(index.changes):
        side = next((side for side in ("new", "old") if (side, change.path) in starts), None)
        if anchors[i] is None and side is not None:
            anchors[i] = anchor_id(side, change.path)
    return tuple(anchors)
