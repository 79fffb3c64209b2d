"""Strict parsing and canonical form of a schema document; pure functions, standard library only.

``parse_document`` is the gate every fetched schema body passes (``parse_json`` is its first half, shared
with the other document kinds of ``monitor.judge.kinds``): it accepts only strict JSON (no NaN/Infinity,
no duplicate keys, at most ``MAX_DEPTH`` levels) whose top level looks like a JSON schema. The canonical
form makes two documents that mean the same thing byte-identical, so their hash is equal: object keys are
sorted, and the arrays JSON Schema treats as sets (``enum``, ``required``, ``type``) are sorted and
de-duplicated.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from monitor.domain import FailureReason

MAX_DEPTH: Final = 64
"""Deepest nesting of arrays/objects a document may have; the top-level object is depth 1."""

SCHEMA_KEYWORDS: Final = frozenset({"properties", "type", "$schema", "items", "$ref", "allOf", "anyOf", "oneOf"})
"""A top-level object needs at least one of these to count as a JSON schema."""

SET_KEYWORDS: Final = frozenset({"enum", "required", "type"})
"""Keywords whose array value JSON Schema treats as a set: order and repetition carry no meaning."""

DATA_KEYWORDS: Final = frozenset({"enum", "const", "default", "examples"})
"""Keywords whose value is instance data, not schema: nothing inside them is a set keyword."""

SCHEMA_MAP_KEYWORDS: Final = frozenset({"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"})
"""Keywords whose value maps arbitrary names to subschemas (a property may be named ``enum``)."""

_PREVIEW_CHARS: Final = 32
_SET_KEY_ENCODER: Final = json.JSONEncoder(sort_keys=True)
# A JSON string (escapes included) or one bracket; everything else is skipped by finditer.
_STRING_OR_BRACKET: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class DocumentError(Exception):
    """A fetched body is not a usable document of its kind; ``reason`` says which way (invalid JSON, or JSON
    that is not that kind of document: ``INVALID_SCHEMA``).

    The message quotes at most a short preview of the body, never the whole of it.
    """

    def __init__(self, message: str, reason: FailureReason) -> None:
        super().__init__(message)
        self.reason = reason


def parse_document(body: bytes) -> dict[str, Any]:
    """Parse ``body`` as a strict-JSON schema document and return its top-level object.

    Raises ``DocumentError`` with reason ``INVALID_JSON`` for every body ``parse_json`` refuses; with reason
    ``INVALID_SCHEMA`` when it is JSON but not an object that looks like a schema (see ``SCHEMA_KEYWORDS``;
    ``properties``, when present, must be an object).
    """
    doc = parse_json(body)
    _check_looks_like_schema(doc)
    return doc  # type: ignore[no-any-return]  # _check_looks_like_schema proved it is a dict


def parse_json(body: bytes) -> Any:
    """Parse ``body`` as strict JSON and return the value, whatever its JSON type.

    Raises ``DocumentError`` with reason ``INVALID_JSON`` when the body is not UTF-8, not JSON, truncated,
    contains NaN/Infinity (or a number too large for a float), repeats a key in an object, or nests deeper
    than ``MAX_DEPTH``. A leading UTF-8 BOM is ignored, as RFC 8259 allows.
    """
    text = _decode(body)
    _check_depth(text)
    try:
        return json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise _invalid_json(f"not valid JSON ({_short(exc)})", text) from None


def canonicalize(doc: Any) -> Any:
    """Return a new structure equal in meaning to ``doc``, in canonical form; ``doc`` is not modified.

    Object keys are sorted at every depth. Arrays under ``enum``, ``required`` and ``type`` are sorted by
    ``json.dumps(item, sort_keys=True)`` and de-duplicated, and a one-element ``type`` array becomes its
    single string (``["string"]`` and ``"string"`` mean the same). Every other array keeps its order, and
    inside instance data (``enum``, ``const``, ``default``, ``examples`` values) only keys are sorted.
    Expects the bounded depth ``parse_document`` guarantees.
    """
    return _canonical_schema(doc)


def canonical_json(doc: Any) -> str:
    """The canonical form of ``doc`` as compact JSON text; equal for documents that mean the same."""
    return json.dumps(canonicalize(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_sha256(canonical: str) -> str:
    """Hex SHA-256 of the UTF-8 bytes of ``canonical`` (the text from ``canonical_json``)."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def count_properties(doc: Any) -> int:
    """Number of named properties across every ``properties`` object of ``doc``, at any depth."""
    return sum(len(props) for props in _properties_objects(doc))


def set_key(item: Any) -> str:
    """The sort/identity key of one member of a set keyword (``enum`` value, ``required`` name, type).

    Equal to ``json.dumps(item, sort_keys=True)``; a shared encoder avoids building one per call.
    """
    return _SET_KEY_ENCODER.encode(item)


def align(old: Sequence[Any], new: Sequence[Any]) -> Iterator[tuple[int | None, int | None]]:
    """How two arrays line up, items matched by :func:`set_key` (difflib, no autojunk), equal items left out.

    ``(i, j)``: ``old[i]`` replaced by ``new[j]`` (in a replaced run of equal length, item by item);
    ``(i, None)``: ``old[i]`` deleted; ``(None, j)``: ``new[j]`` inserted.
    """
    matcher = difflib.SequenceMatcher(None, [set_key(i) for i in old], [set_key(i) for i in new], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            yield from zip(range(i1, i2), range(j1, j2), strict=True)
            continue
        yield from ((i, None) for i in range(i1, i2))
        yield from ((None, j) for j in range(j1, j2))


# --- parsing -------------------------------------------------------------------------------------------


def _decode(body: bytes) -> str:
    """``body`` as text; raises ``DocumentError`` (invalid JSON) when it is not UTF-8."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        preview = body.decode("utf-8", errors="replace")
        raise _invalid_json(f"body is not UTF-8 (bad byte at offset {exc.start})", preview) from None


def _check_depth(text: str) -> None:
    """Raise ``DocumentError`` (invalid JSON) when brackets nest deeper than ``MAX_DEPTH``.

    Runs on the raw text, before ``json.loads``, so a hostile document never reaches the recursive parser;
    brackets inside strings do not count. It only bounds depth: unbalanced text is left to the parser.
    """
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _invalid_json(f"nesting deeper than {MAX_DEPTH} levels", text)
        elif token in "]}":
            depth -= 1


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that builds the object, raising ``ValueError`` on a repeated key."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:_PREVIEW_CHARS]!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    """``parse_constant`` that refuses ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON)."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    """``parse_float`` that refuses numbers too large for a float (``1e400`` would become infinity)."""
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError("number out of range for a float")
    return value


def _check_looks_like_schema(doc: Any) -> None:
    """Raise ``DocumentError`` (invalid schema) unless ``doc`` is an object that looks like a JSON schema."""
    if not isinstance(doc, dict):
        raise DocumentError(f"top level is a JSON {_json_kind(doc)}, not an object", FailureReason.INVALID_SCHEMA)
    if not SCHEMA_KEYWORDS & doc.keys():
        wanted = ", ".join(sorted(SCHEMA_KEYWORDS))
        raise DocumentError(f"object has none of the schema keys {wanted}", FailureReason.INVALID_SCHEMA)
    if "properties" in doc and not isinstance(doc["properties"], dict):
        kind = _json_kind(doc["properties"])
        raise DocumentError(f"'properties' is a JSON {kind}, not an object", FailureReason.INVALID_SCHEMA)


def _invalid_json(what: str, text: str) -> DocumentError:
    """A ``DocumentError`` for invalid JSON whose message shows only a short preview of the body."""
    return DocumentError(f"{what}; body starts {text[:_PREVIEW_CHARS]!r}", FailureReason.INVALID_JSON)


def _short(exc: BaseException) -> str:
    """The parser's own message, bounded (the messages of ``json`` quote positions, not the body)."""
    return str(exc)[:160]


def _json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    kinds: list[tuple[type, str]] = [(bool, "boolean"), (dict, "object"), (list, "array"), (str, "string")]
    for py_type, name in kinds:
        if isinstance(value, py_type):
            return name
    return "null" if value is None else "number"


# --- canonical form ------------------------------------------------------------------------------------


def _canonical_schema(node: Any) -> Any:
    """Canonical copy of a node in schema position (an object's members are keywords)."""
    if isinstance(node, Mapping):
        return {key: _canonical_member(key, node[key]) for key in sorted(node)}
    if isinstance(node, list | tuple):
        return [_canonical_schema(item) for item in node]
    return node


def _canonical_member(key: str, value: Any) -> Any:
    """Canonical copy of the value of keyword ``key``."""
    if key in SET_KEYWORDS and isinstance(value, list | tuple):
        return _canonical_set(key, value)
    if key in DATA_KEYWORDS:
        return _canonical_data(value)
    if key in SCHEMA_MAP_KEYWORDS and isinstance(value, Mapping):
        return {name: _canonical_schema(value[name]) for name in sorted(value)}
    return _canonical_schema(value)


def _canonical_set(key: str, items: list[Any] | tuple[Any, ...]) -> Any:
    """The items of a set keyword, canonical, de-duplicated and sorted; a lone ``type`` becomes a string."""
    by_key = {set_key(item): _canonical_data(item) for item in items}
    ordered = [by_key[k] for k in sorted(by_key)]
    if key == "type" and len(ordered) == 1 and isinstance(ordered[0], str):
        return ordered[0]
    return ordered


def _canonical_data(node: Any) -> Any:
    """Canonical copy of instance data: keys sorted, every array left in its order."""
    if isinstance(node, Mapping):
        return {key: _canonical_data(node[key]) for key in sorted(node)}
    if isinstance(node, list | tuple):
        return [_canonical_data(item) for item in node]
    return node


def _properties_objects(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every ``properties`` object in a schema, found by walking keyword positions (not instance data)."""
    if isinstance(node, list | tuple):
        for item in node:
            yield from _properties_objects(item)
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        if key in DATA_KEYWORDS:
            continue
        if key in SCHEMA_MAP_KEYWORDS and isinstance(value, Mapping):
            if key == "properties":
                yield value
            for subschema in value.values():
                yield from _properties_objects(subschema)
        else:
            yield from _properties_objects(value)
