"""The ``schema`` kind: JSON schema documents (Glance / IMS ``/v2/schemas/*``), exactly as before kinds.

``normalise`` is ``canonical.parse_document`` followed by ``canonical.canonicalize``; ``classify`` is
``diffing.classify`` with the rules of docs/change-rules.md (its first section). Response headers and
``keep_hosts`` play no part: these documents name their links by URI templates (``{self}``), not hosts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from monitor.domain import Change
from monitor.judge.canonical import parse_document
from monitor.judge.kinds.base import RuleTable, as_canonical
from monitor.judge.kinds.schema import rules as diffing

NAME: Final = "schema"
STATUSES: Final = frozenset({200})

RULES: Final[RuleTable] = {rule: frozenset(severities) for rule, severities in diffing.SEVERITIES.items()}
"""``diffing.SEVERITIES`` as a rule table: each rule with its writable and read-only severities."""


class SchemaKind:
    """JSON schema documents, judged by the schema rules of ``monitor.judge.kinds.schema.rules``."""

    name: str = NAME
    statuses: frozenset[int] = STATUSES
    rules: RuleTable = RULES

    def normalise(self, body: bytes, headers: Mapping[str, str], *, keep_hosts: bool = False) -> dict[str, Any]:
        """``canonicalize(parse_document(body))``; raises ``DocumentError`` as ``parse_document`` does."""
        return as_canonical(parse_document(body))

    def classify(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
        """``diffing.classify(old, new)``."""
        return diffing.classify(old, new)
