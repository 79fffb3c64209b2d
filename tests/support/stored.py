"""What the store's tests write: two small documents, a first poll time, and the rows they become.

:data:`DOC_A` and :data:`DOC_B` are two JSON schemas (``B`` is ``A`` plus a property ``b``); :data:`T0` is the
time of a first poll; :func:`stored` is a document as the repository stores it (canonical bytes, hash, size,
property count); :func:`ok` is a successful poll of a target. (The ``repo`` fixture these are written with is in
tests/store/conftest.py.)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.domain import Change, PollResult, TargetKey
from monitor.judge.canonical import canonical_json, count_properties, document_sha256
from monitor.store.records import StoredDocument

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DOC_A = {"type": "object", "properties": {"a": {"type": "string"}}}
DOC_B = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}


def stored(doc: Mapping[str, Any]) -> StoredDocument:
    canonical = canonical_json(doc)
    return StoredDocument(document_sha256(canonical), canonical, len(canonical), count_properties(doc))


def ok(key: TargetKey, at: datetime, changes: tuple[Change, ...] = ()) -> PollResult:
    return PollResult(key, at, 0.1, ok=True, http_status=200, changes=changes)
