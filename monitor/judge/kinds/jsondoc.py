"""The ``json`` kind: any other JSON document (Glance ``/v2/info/import``, ``/v2/info/stores``, keystone's
json-home); pure functions.

**Reading**: any strict-JSON object (another value at the top is ``INVALID_SCHEMA``). Every string value that is
an absolute http(s) URL loses its host (``hosts.strip_url_hosts``; object keys are left alone: json-home's
relation URLs name documentation, not the region). Then ``canonicalize``: keys sorted at every depth, and —
as for every kind, so that the stored hash sees what ``classify`` sees — arrays under ``enum``, ``required``
and ``type`` sorted as sets; every other array keeps its order. Canonical form of a Glance
``/v2/info/import``::

    {"import-methods": {"description": "Import methods available.", "type": "array",
                        "value": ["glance-direct", "web-download", "copy-image"]}}

**Judging** (docs/change-rules.md, section ``json``): nothing is known about what the document means, so
the rules are about values. A member or array item appearing is ``value-added``, info: a reader that
tolerates unknown members (as JSON APIs require) is unaffected. One disappearing is ``value-removed`` and a
value changing ``value-changed``, both warning: something a client may read is gone or different, and
whether anyone relies on it cannot be told from the document. A ``description`` member changing, appearing or
going is ``description-changed``, cosmetic: it is prose in every OpenStack document. Each difference is
reported once, at the highest point where it is whole; arrays are re-aligned (see ``walk``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from monitor.domain import ABSENT, Change, Severity
from monitor.judge.kinds.base import RuleTable, as_canonical, parse_object
from monitor.judge.kinds.hosts import strip_url_hosts
from monitor.judge.kinds.walk import diff_values, sorted_changes

NAME: Final = "json"
STATUSES: Final = frozenset({200})

RULES: Final[RuleTable] = {
    "value-added": frozenset({Severity.INFO}),
    "value-removed": frozenset({Severity.WARNING}),
    "value-changed": frozenset({Severity.WARNING}),
    "description-changed": frozenset({Severity.COSMETIC}),
}
"""Every rule id of the kind with its possible severities, as in docs/change-rules.md."""

_DESCRIPTION_SUFFIX: Final = "/description"


class JsonKind:
    """Any JSON object, judged by generic rules."""

    name: str = NAME
    statuses: frozenset[int] = STATUSES
    rules: RuleTable = RULES

    def normalise(self, body: bytes, headers: Mapping[str, str], *, keep_hosts: bool = False) -> dict[str, Any]:
        """The canonical document (see the module); raises ``DocumentError`` (``INVALID_JSON``,
        ``INVALID_SCHEMA`` when the top level is not an object). ``headers`` are not used."""
        doc = parse_object(body, NAME)
        return as_canonical(doc if keep_hosts else strip_url_hosts(doc))

    def classify(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
        """The changes between two normalised documents, sorted by path, rule and values."""
        return sorted_changes(diff_values(old, new, "", _change))


def _change(path: str, old: Any, new: Any) -> Change:
    """One difference, by the rules of the module."""
    if path.endswith(_DESCRIPTION_SUFFIX):
        return Change(path, "description-changed", Severity.COSMETIC, old, new)
    if old is ABSENT:
        return Change(path, "value-added", Severity.INFO, old, new)
    if new is ABSENT:
        return Change(path, "value-removed", Severity.WARNING, old, new)
    return Change(path, "value-changed", Severity.WARNING, old, new)
