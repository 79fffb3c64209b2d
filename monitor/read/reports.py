"""Rendering of change reports: text, Markdown, JSON and RFC 6902 JSON Patch; pure functions.

A report is a sequence of ``Comparison``s, each one side-by-side (two snapshots, two regions, a snapshot and
the baseline) with the changes ``classify`` found between its documents. ``diff``, ``compare``, notifications
and the read API all render through here, so every channel says the same thing the same way.

Every renderer returns text that ends with a newline (or the empty string for no comparisons), ready to be
written out as it is. The changes are rendered in the order given; the documents are read only for the JSON
Patch.

JSON Patch: ``jsonpatch.make_patch`` between the canonical forms of the two documents, with every ``move``
rewritten as ``remove`` + ``add`` and every ``copy`` as ``add``, so a reader sees what left and what arrived
rather than a pointer to chase. jsonpatch 1.33 has open bugs in which its patch does not reproduce the new
document (stale ``from`` pointers after list edits, stefankoegl/python-json-patch#124 and #138) or misses a
change (it compares list items with Python ``==``, so ``1`` equals ``true``). The patch is therefore applied
to the canonical old document before it is returned; when the result is not the canonical new document, as
JSON text, a plain patch built here (objects key by key, arrays index by index, anything else replaced) is
returned instead. Either way, ``jsonpatch.apply_patch(canonicalize(old), patch)`` yields ``canonicalize(new)``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jsonpatch

from monitor.domain import ABSENT, Change, Severity, change_json, pointer_join
from monitor.judge.canonical import canonicalize

FORMATS: Final = ("text", "markdown", "json", "jsonpatch")
"""The names ``render`` accepts, in the order a ``--format`` help text should list them."""

COLORS: Final[Mapping[Severity, str]] = {
    Severity.BREAKING: "\033[1;31m",
    Severity.WARNING: "\033[33m",
    Severity.INFO: "\033[36m",
    Severity.COSMETIC: "\033[2m",
}
"""ANSI SGR sequence that starts each severity's color on a terminal."""

RESET: Final = "\033[0m"
ABSENT_MARK: Final = "∅"
"""How a missing side (an added or removed value) is shown in text and Markdown."""

TEXT_VALUE_WIDTH: Final = 60
MARKDOWN_VALUE_WIDTH: Final = 60

_Op = dict[str, Any]  # one RFC 6902 operation
# jsonpatch's failures on its own patches: pointer/conflict errors, and TypeError/LookupError from the bugs.
_PATCH_FAILURES: Final = (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, LookupError)
_MD_SPECIAL: Final = re.compile(r"([\\`*_\[\]<>#|])")
_BACKTICK_RUN: Final = re.compile(r"`+")


@dataclass(frozen=True)
class Comparison:
    """One side-by-side: ``title`` names what is compared with what, ``changes`` is ``classify(old, new)``.

    ``old``/``new`` are the parsed documents; the caller computes ``changes`` (it may have filtered them).
    """

    title: str
    old: Mapping[str, Any]
    new: Mapping[str, Any]
    changes: Sequence[Change]


def md_cell(text: str) -> str:
    """``text`` safe in a Markdown table cell or list item: special characters escaped, on one line."""
    return " ".join(_MD_SPECIAL.sub(r"\\\1", text).split())


def render(fmt: str, comparisons: Sequence[Comparison], color: bool = False) -> str:
    """``comparisons`` rendered in format ``fmt`` (one of ``FORMATS``); ``color`` only affects ``text``.

    Raises ``ValueError`` naming the known formats when ``fmt`` is not one of them.
    """
    if fmt == "text":
        return render_text(comparisons, color)
    renderers: dict[str, Callable[[Sequence[Comparison]], str]] = {
        "markdown": render_markdown,
        "json": render_json,
        "jsonpatch": render_json_patch,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return renderers[fmt](comparisons)


# --- text ----------------------------------------------------------------------------------------------


def render_text(comparisons: Sequence[Comparison], color: bool) -> str:
    """A header line ``"<title>: <n> change(s)"`` per comparison, then one ``change_line`` per change.

    Comparisons are separated by a blank line; with ``color`` the severity labels carry ANSI colors.
    """
    return "\n".join(_text_block(comparison, color) for comparison in comparisons)


def change_line(change: Change, color: bool) -> str:
    """``"  <severity> <rule> <path>  <old> → <new>"``, columns padded, values shortened by ``short_json``."""
    label = paint(f"{change.severity.value:<9}", change.severity, color)
    return f"  {label} {change.rule:<30} {change.path}  {short_json(change.old)} → {short_json(change.new)}"


def paint(text: str, severity: Severity, color: bool) -> str:
    """``text`` in the color of ``severity`` when ``color``, else unchanged."""
    return f"{COLORS[severity]}{text}{RESET}" if color else text


def short_json(value: Any, width: int = TEXT_VALUE_WIDTH) -> str:
    """``value`` as one line of JSON (keys sorted), cut to ``width`` characters ending in ``…``; ``∅`` if absent."""
    if value is ABSENT:
        return ABSENT_MARK
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def _text_block(comparison: Comparison, color: bool) -> str:
    lines = [f"{comparison.title}: {len(comparison.changes)} change(s)"]
    lines += [change_line(change, color) for change in comparison.changes]
    return "".join(line + "\n" for line in lines)


# --- Markdown ------------------------------------------------------------------------------------------


def render_markdown(comparisons: Sequence[Comparison]) -> str:
    """Per comparison a ``##`` heading (the title), a count by severity, and a table of the changes.

    The table has the columns severity, rule, path, old, new; path and values are inline code, values
    shortened to ``MARKDOWN_VALUE_WIDTH`` characters ending in ``…``, a missing side shown as ``∅``. A ``|``
    anywhere in a cell is escaped as ``\\|`` (GitHub tables need that even inside code).
    """
    return "\n".join(_markdown_block(comparison) for comparison in comparisons)


def md_escape(text: str) -> str:
    """``text`` as literal Markdown inline text: the characters Markdown gives a meaning are backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text))


def md_code(text: str) -> str:
    """``text`` as a Markdown code span safe in a table cell: fence longer than any backtick run, ``|`` escaped."""
    text = _one_line(text)
    fence = "`" * (max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0) + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") or not text.strip() else text
    return f"{fence}{padded}{fence}".replace("|", "\\|")


def _markdown_block(comparison: Comparison) -> str:
    lines = [f"## {md_escape(comparison.title)}", "", _severity_summary(comparison.changes), ""]
    if comparison.changes:
        lines += ["| severity | rule | path | old | new |", "| --- | --- | --- | --- | --- |"]
        lines += [_markdown_row(change) for change in comparison.changes]
        lines.append("")
    return "\n".join(lines)


def _severity_summary(changes: Sequence[Change]) -> str:
    if not changes:
        return "No changes."
    counts = {severity: sum(1 for c in changes if c.severity is severity) for severity in Severity}
    parts = ", ".join(f"{n} {severity.value}" for severity, n in counts.items() if n)
    return f"{len(changes)} change(s): {parts}"


def _markdown_row(change: Change) -> str:
    cells = [
        change.severity.value,
        md_escape(change.rule),
        md_code(change.path),
        _markdown_value(change.old),
        _markdown_value(change.new),
    ]
    return "| " + " | ".join(cells) + " |"


def _markdown_value(value: Any) -> str:
    return ABSENT_MARK if value is ABSENT else md_code(short_json(value, MARKDOWN_VALUE_WIDTH))


def _one_line(text: str) -> str:
    """``text`` without raw line breaks (they would end a table row); JSON values never have any."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


# --- JSON ----------------------------------------------------------------------------------------------


def render_json(comparisons: Sequence[Comparison]) -> str:
    """A JSON list of ``{"title", "changes": [change_json(change)...]}``, one per comparison, indented."""
    report = [{"title": c.title, "changes": [change_json(change) for change in c.changes]} for c in comparisons]
    return _dump(report)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


# --- JSON Patch ----------------------------------------------------------------------------------------


def render_json_patch(comparisons: Sequence[Comparison]) -> str:
    """RFC 6902 patches from each canonical old document to its canonical new one, as JSON text.

    For exactly one comparison the text is the plain list of operations; otherwise a list of
    ``{"title", "patch"}``. The operations are only ``add``, ``remove`` and ``replace`` (see the module doc).
    """
    if len(comparisons) == 1:
        return _dump(json_patch(comparisons[0].old, comparisons[0].new))
    return _dump([{"title": c.title, "patch": json_patch(c.old, c.new)} for c in comparisons])


def json_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[_Op]:
    """Operations that turn ``canonicalize(old)`` into ``canonicalize(new)``: jsonpatch's, moves expanded.

    Falls back to ``_plain_patch`` when jsonpatch's patch fails to apply or yields another document.
    """
    source, target = canonicalize(old), canonicalize(new)
    try:
        ops, result = _expanded_patch(source, target)
    except _PATCH_FAILURES:
        return _plain_patch(source, target)
    return ops if _same_json(result, target) else _plain_patch(source, target)


def _expanded_patch(source: Any, target: Any) -> tuple[list[_Op], Any]:
    """jsonpatch's patch with ``move``/``copy`` expanded, and the document it produces from ``source``.

    The operations are applied one by one to a copy of ``source``, so a moved value is the one at ``from``
    in the document as the earlier operations left it. Raises one of ``_PATCH_FAILURES`` when an
    operation does not apply.
    """
    working = copy.deepcopy(source)
    expanded: list[_Op] = []
    for op in jsonpatch.make_patch(source, target).patch:
        for step in _expand(op, working):
            # A copy goes in: later steps mutate ``working`` in place, and ``step`` shares values with ``target``.
            working = jsonpatch.apply_patch(working, [copy.deepcopy(step)], in_place=True)
            expanded.append(step)
    return expanded, working


def _expand(op: _Op, doc: Any) -> list[_Op]:
    """``op`` as ``add``/``remove``/``replace`` steps; ``doc`` is the document as it stands before ``op``."""
    if op["op"] not in ("move", "copy"):
        return [op]
    value = copy.deepcopy(jsonpatch.JsonPointer(op["from"]).resolve(doc))
    add: _Op = {"op": "add", "path": op["path"], "value": value}
    return [{"op": "remove", "path": op["from"]}, add] if op["op"] == "move" else [add]


def _plain_patch(source: Any, target: Any, path: str = "") -> list[_Op]:
    """A patch from ``source`` to ``target`` built without move detection; correct by construction.

    Objects: removed keys, added keys, then the common keys recursively (keys sorted). Arrays: common
    indices recursively, then surplus items removed from the end or new ones appended. Anything else that
    differs as JSON text is replaced whole.
    """
    if isinstance(source, dict) and isinstance(target, dict):
        return _plain_object_patch(source, target, path)
    if isinstance(source, list) and isinstance(target, list):
        return _plain_array_patch(source, target, path)
    return [] if _same_json(source, target) else [{"op": "replace", "path": path, "value": copy.deepcopy(target)}]


def _plain_object_patch(source: dict[str, Any], target: dict[str, Any], path: str) -> list[_Op]:
    ops: list[_Op] = [
        {"op": "remove", "path": pointer_join(path, key)} for key in sorted(source.keys() - target.keys())
    ]
    for key in sorted(target.keys() - source.keys()):
        ops.append({"op": "add", "path": pointer_join(path, key), "value": copy.deepcopy(target[key])})
    for key in sorted(source.keys() & target.keys()):
        ops += _plain_patch(source[key], target[key], pointer_join(path, key))
    return ops


def _plain_array_patch(source: list[Any], target: list[Any], path: str) -> list[_Op]:
    ops: list[_Op] = []
    for index in range(min(len(source), len(target))):
        ops += _plain_patch(source[index], target[index], pointer_join(path, str(index)))
    ops += [{"op": "remove", "path": pointer_join(path, str(i))} for i in reversed(range(len(target), len(source)))]
    for index in range(len(source), len(target)):
        ops.append({"op": "add", "path": pointer_join(path, str(index)), "value": copy.deepcopy(target[index])})
    return ops


def _same_json(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same JSON (``1``, ``1.0`` and ``true`` differ; Python ``==`` does not)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
