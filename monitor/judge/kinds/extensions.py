"""The ``extensions`` kind: the extension lists of neutron (``GET /v2.0/extensions``) and cinder
(``GET /v3/{project_id}/extensions``); pure functions.

**Reading**: ``{"extensions": [...]}``, each entry an object with a string ``alias``; anything else (no
``extensions`` array, an entry without an alias, two entries with one alias) is ``INVALID_SCHEMA``. The list
becomes a set keyed by alias; the body's other top-level members go under ``other``; the hosts of links are
removed. No response header is part of the document: none of these services describes its extensions in
headers. Canonical form::

    {"extensions": {"router": {"alias": "router", "description": "Router abstraction for ...", "links": [],
                               "name": "Neutron L3 Router", "updated": "2012-07-20T10:00:00-00:00"}, ...}}

**Judging** (docs/change-rules.md, section ``extensions``): an alias leaving is breaking (what the extension
added to the API is gone: neutron's plugins decide the list, so two regions of one release can differ here),
an alias appearing info; inside an extension, ``updated``, ``name``, ``description``, ``links`` and the rest
are judged by ``entries``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from monitor.domain import ABSENT, Change, Severity
from monitor.judge.kinds import entries
from monitor.judge.kinds.base import RuleTable, as_canonical, json_kind, not_this_kind, parse_object, short
from monitor.judge.kinds.hosts import strip_href_hosts
from monitor.judge.kinds.walk import DiffMember, diff_members, members, sorted_changes

NAME: Final = "extensions"
STATUSES: Final = frozenset({200})

RULES: Final[RuleTable] = {
    "extension-removed": frozenset({Severity.BREAKING}),
    "extension-added": frozenset({Severity.INFO}),
    **entries.ENTRY_RULES,
}
"""Every rule id of the kind with its possible severities, as in docs/change-rules.md."""


class ExtensionsKind:
    """Extension lists, keyed by alias."""

    name: str = NAME
    statuses: frozenset[int] = STATUSES
    rules: RuleTable = RULES

    def normalise(self, body: bytes, headers: Mapping[str, str], *, keep_hosts: bool = False) -> dict[str, Any]:
        """The canonical extensions document (see the module); raises ``DocumentError`` (``INVALID_JSON``,
        ``INVALID_SCHEMA`` for JSON that is no extension list). ``headers`` are not used."""
        doc = parse_object(body, NAME)
        raw = doc.get("extensions", ABSENT)
        if not isinstance(raw, list):
            found = "missing" if raw is ABSENT else f"a JSON {json_kind(raw)}"
            raise not_this_kind(NAME, f"'extensions' is {found}, not an array")
        canonical: dict[str, Any] = {"extensions": _keyed(raw)}
        other = {name: value for name, value in doc.items() if name != "extensions"}
        if other:
            canonical["other"] = entries.canonical_entry(other)
        return as_canonical(canonical if keep_hosts else strip_href_hosts(canonical))

    def classify(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
        """The changes between two normalised extensions documents, sorted by path, rule and values."""
        return sorted_changes(diff_members(old, new, "", _TOP_HANDLERS, entries.diff_value))


def extension_aliases(doc: Mapping[str, Any]) -> list[str]:
    """The aliases of a normalised extensions document, sorted; raises ``ValueError`` when ``doc`` is not one."""
    extensions = doc.get("extensions")
    if not isinstance(extensions, Mapping):
        raise ValueError("not a normalised extensions document: no 'extensions' object")
    return sorted(extensions)


def _keyed(raw: list[Any]) -> dict[str, dict[str, Any]]:
    """The canonical entries by alias; raises ``DocumentError`` (``INVALID_SCHEMA``) for a bad or repeated one."""
    keyed: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("alias"), str) or not entry["alias"]:
            raise not_this_kind(NAME, f"entry {index} is not an object with a string 'alias'")
        if entry["alias"] in keyed:
            raise not_this_kind(NAME, f"two entries have the alias {short(entry['alias'])}")
        keyed[entry["alias"]] = entries.canonical_entry(entry)
    return keyed


def _diff_extensions(old: Any, new: Any, path: str) -> Iterator[Change]:
    """Aliases removed (breaking), added (info), or changed inside."""
    yield from diff_members(members(old), members(new), path, {}, _diff_extension)


def _diff_extension(old: Any, new: Any, path: str) -> Iterator[Change]:
    if new is ABSENT:
        yield Change(path, "extension-removed", Severity.BREAKING, old, ABSENT)
    elif old is ABSENT:
        yield Change(path, "extension-added", Severity.INFO, ABSENT, new)
    else:
        yield from entries.diff_entry(old, new, path, {})


_TOP_HANDLERS: Final[Mapping[str, DiffMember]] = {"extensions": _diff_extensions, "other": entries.diff_other}
