"""What every document kind is (``DocumentKind``) and the pieces their normalisers share; pure.

A kind turns a fetched body into its canonical document (``normalise``) and classifies the differences
between two canonical documents (``classify``). Every canonical document is a JSON object that
``monitor.judge.canonical.canonicalize`` leaves as it is (keys sorted, no array that ``canonicalize`` would
reorder), so ``canonical_json`` and ``document_sha256`` — and the reports that canonicalise again — see
exactly the document the kind classified: ``classify`` returns no change exactly when the canonical JSON texts
are equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from monitor.domain import Change, FailureReason, Severity
from monitor.judge.canonical import DocumentError, canonicalize, parse_json, set_key

RuleTable = Mapping[str, frozenset[Severity]]
"""A kind's registry of rule ids, each with the severities its changes can have (docs/change-rules.md)."""


class DocumentKind(Protocol):
    """One kind of watched document: how to read a body and how to judge a change between two of them."""

    name: str
    """``"schema"``, ``"versions"``, ``"extensions"`` or ``"json"``."""
    statuses: frozenset[int]
    """HTTP statuses whose body is a document of this kind (version discovery answers 300 too)."""
    rules: RuleTable
    """Every rule id ``classify`` can return, with its possible severities."""

    def normalise(self, body: bytes, headers: Mapping[str, str], *, keep_hosts: bool = False) -> dict[str, Any]:
        """The canonical document (a JSON object, stable under key order/whitespace).

        Raises ``DocumentError`` with reason ``INVALID_JSON`` for a body that is not strict JSON, and with
        reason ``INVALID_SCHEMA`` for JSON that is not this kind of document. ``headers`` are the response
        headers (names lower-case). Unless ``keep_hosts``, the hosts of links are removed (see ``hosts``).
        """
        ...

    def classify(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
        """The classified differences between two normalised documents, sorted by path, rule, values."""
        ...


def parse_object(body: bytes, kind: str) -> dict[str, Any]:
    """``body`` parsed as strict JSON (``parse_json``), which must be an object.

    Raises ``DocumentError``: ``INVALID_JSON`` as ``parse_json`` does, ``INVALID_SCHEMA`` for another JSON
    value at the top (a ``kind`` document is always an object).
    """
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise not_this_kind(kind, f"top level is a JSON {json_kind(doc)}, not an object")
    return doc


def not_this_kind(kind: str, what: str) -> DocumentError:
    """The ``DocumentError`` (reason ``INVALID_SCHEMA``) for JSON that is no ``kind`` document; ``what``
    says why and must not quote the body at length."""
    article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
    return DocumentError(f"not {article} {kind} document: {what}", FailureReason.INVALID_SCHEMA)


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    kinds: list[tuple[type, str]] = [(bool, "boolean"), (dict, "object"), (list, "array"), (str, "string")]
    for py_type, name in kinds:
        if isinstance(value, py_type):
            return name
    return "null" if value is None else "number"


def as_canonical(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` run through ``canonicalize`` once, so that ``canonicalize`` leaves the result unchanged."""
    return canonicalize(doc)  # type: ignore[no-any-return]  # an object stays an object


def sorted_set(items: list[Any], key: Any = None) -> list[Any]:
    """``items`` as a set: de-duplicated (by canonical JSON) and sorted by ``key(item)`` then canonical JSON."""
    unique = {set_key(item): item for item in items}
    by = key or (lambda item: "")
    return [unique[text] for text in sorted(unique, key=lambda text: (by(unique[text]), text))]


def short(text: str) -> str:
    """``text`` cut to a length fit for an error message."""
    return repr(text[:40])
