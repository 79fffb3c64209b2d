"""The ``versions`` kind: OpenStack version discovery documents; pure functions.

**Reading**, as keystoneauth's ``discover.get_version_data`` and ``Discover.version_data`` do:

* The entries come from the first of ``{"versions": {"values": [...]}}`` (keystone), ``{"versions": [...]}``
  (most services), ``{"version": {...}}`` (nova ``GET /v2.1``, ironic ``GET /v1/``), or — older ironic — a
  body that is itself one version (``id`` and ``links``), whose status is ``CURRENT`` and whose missing
  ``min_version``/``version`` come from the ``X-OpenStack-*-API-Minimum/Maximum-Version`` headers. Anything
  else is ``INVALID_SCHEMA``, as is an entry that is no object or has no string ``id``, two entries with
  one ``id``, or a microversion that is neither empty nor ``MAJOR.MINOR``.
* ``max_version`` supersedes ``version``; an empty string (nova's v2.0 says ``""``) means no microversions.
  Both ``min_version`` and ``max_version`` are always present in the canonical entry, ``null`` for none, in
  the canonical spelling of ``Microversion``; the ``version`` key itself is dropped.
* ``status`` is upper-cased, ``STABLE`` (keystone) becomes ``CURRENT``; a status keystoneauth does not know
  keeps its upper-cased spelling (keystoneauth would say ``UNKNOWN``, and a move between two unknown
  statuses would vanish); a missing status is ``UNKNOWN``. ``version_entries`` maps unknown ones to
  ``UNKNOWN``, a closed set fit for metric labels.
* The body's other top-level members (ironic's ``name``, ``description``, resource links) go under
  ``other``; ironic's ``default_version`` is reduced to its ``id`` there, its details being those of the
  entry it names.
* Of the response headers, only the microversion range (``X-OpenStack-<service>-API-Minimum-Version`` and
  ``-Maximum-Version``) can be part of the document, and only where it disagrees with the body: the range is
  the body and those headers reconciled (``monitor.judge.kinds.headers``); a header that restates the body is
  dropped, one that disagrees is kept under ``headers``. The microversion one response was served at
  (``OpenStack-API-Version``, ``X-OpenStack-<service>-API-Version``) is no part of the surface, nor are
  ``Date``, ``Last-Modified`` (placement sets it to the time of the request), request ids, ``Server`` and
  the like.

Canonical form (nova ``GET /``; the hosts of links removed, see ``hosts``)::

    {"headers": {},
     "versions": {
       "v2.0": {"id": "v2.0", "links": [{"href": "/v2/", "rel": "self"}], "max_version": null,
                "min_version": null, "status": "SUPPORTED", "updated": "2011-01-21T11:33:21Z"},
       "v2.1": {"id": "v2.1", "links": [{"href": "/v2.1/", "rel": "self"}], "max_version": "2.95",
                "min_version": "2.1", "status": "CURRENT", "updated": "2013-07-23T11:33:21Z"}}}

**Judging** (the table of docs/change-rules.md, section ``versions``): entries by id — removed is breaking,
added info; one entry replaced by one with another id of the same major version (keystone's ``v3.14`` →
``v3.15``) is ``version-id-raised`` (info: keystoneauth's ``version_match`` takes any minor at least the one
asked for) or ``version-id-lowered`` (breaking), and the two entries are then compared member by member.
Microversions compare as ``Microversion``s, "none" below every microversion: the maximum going down (or
away) is breaking, going up info; the minimum going up is breaking, going down info — and a minimum coming or
going is ``min-microversion-lowered`` too, since no request that worked before is refused by it. A
status moving out of what keystoneauth's discovery accepts by default (``CURRENT``, ``SUPPORTED``,
``DEPRECATED``) into ``EXPERIMENTAL`` or an unknown status is breaking (clients stop finding the version),
a move down that lifecycle (``CURRENT`` → ``SUPPORTED`` → ``DEPRECATED``) a warning, any other move info.
A disagreeing minimum/maximum header follows the microversion rules at ``/headers/<name>``, a header missing
on one side standing for that side's body (``headers.effective``). Everything else is judged by ``entries``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from monitor.domain import ABSENT, Change, Severity, pointer_join
from monitor.judge.kinds import entries
from monitor.judge.kinds.base import RuleTable, as_canonical, json_kind, not_this_kind, parse_object, short
from monitor.judge.kinds.headers import effective, is_maximum, is_minimum, is_range_header, is_served_header, reconcile
from monitor.judge.kinds.hosts import strip_href_hosts
from monitor.judge.kinds.microversion import Microversion
from monitor.judge.kinds.walk import DiffMember, diff_members, members, same, sorted_changes

NAME: Final = "versions"
STATUSES: Final = frozenset({200, 300})

KNOWN_STATUSES: Final = ("CURRENT", "SUPPORTED", "DEPRECATED", "EXPERIMENTAL")
"""keystoneauth's ``Status.KNOWN``."""
UNKNOWN_STATUS: Final = "UNKNOWN"

_B, _W, _I = Severity.BREAKING, Severity.WARNING, Severity.INFO
RULES: Final[RuleTable] = {
    "version-removed": frozenset({_B}),
    "version-added": frozenset({_I}),
    "version-id-lowered": frozenset({_B}),
    "version-id-raised": frozenset({_I}),
    "max-microversion-lowered": frozenset({_B}),
    "max-microversion-raised": frozenset({_I}),
    "min-microversion-raised": frozenset({_B}),
    "min-microversion-lowered": frozenset({_I}),
    "version-status-changed": frozenset({_B, _W, _I}),
    **entries.ENTRY_RULES,
}
"""Every rule id of the kind with its possible severities, as in docs/change-rules.md."""

_DISCOVERABLE_RANK: Final = {"CURRENT": 3, "SUPPORTED": 2, "DEPRECATED": 1}
"""The statuses keystoneauth's discovery accepts by default, highest first in the lifecycle."""
_VERSION_ID: Final = re.compile(r"v?([0-9]+(?:\.[0-9]+)*)")
_CANONICAL_MEMBERS: Final = frozenset({"id", "status", "min_version", "max_version"})


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One API version of a normalised versions document, for metrics and the surface view."""

    id: str
    status: str
    """One of ``KNOWN_STATUSES`` or ``UNKNOWN``: a closed set (the document's own spelling may be another)."""
    min_version: Microversion | None
    max_version: Microversion | None


class VersionsKind:
    """Version discovery documents (``GET /`` of a service, ``GET /v2.1``...)."""

    name: str = NAME
    statuses: frozenset[int] = STATUSES
    rules: RuleTable = RULES

    def normalise(self, body: bytes, headers: Mapping[str, str], *, keep_hosts: bool = False) -> dict[str, Any]:
        """The canonical versions document (see the module); raises ``DocumentError`` (``INVALID_JSON``,
        ``INVALID_SCHEMA`` for JSON that is no version document)."""
        doc = parse_object(body, NAME)
        surface = fold_headers(headers)
        raw_entries, other = _split(doc, surface)
        versions = _keyed(raw_entries)
        canonical: dict[str, Any] = {"versions": versions, "headers": reconcile(versions, surface)}
        if other:
            canonical["other"] = entries.canonical_entry(other)
        return as_canonical(canonical if keep_hosts else strip_href_hosts(canonical))

    def classify(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
        """The changes between two normalised versions documents, sorted by path, rule and values."""
        sides = members(old.get("versions")), members(new.get("versions"))
        handlers: dict[str, DiffMember] = {**_TOP_HANDLERS, "headers": partial(_diff_headers, sides)}
        return sorted_changes(diff_members(old, new, "", handlers, entries.diff_value))


def fold_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The response headers that can be part of the surface: the microversion range (see
    ``monitor.judge.kinds.headers``), by lower-case name, in the canonical microversion spelling (a malformed value
    as text, whitespace collapsed). The served microversion and every other header are left out."""
    folded: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if is_range_header(lower):
            folded[lower] = _header_value(value)
    return folded


def reconciled(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A normalised versions document of an earlier canonical form in today's: the served microversion dropped
    from ``headers`` and the range headers reconciled with the body, as ``normalise`` does now (migration
    0007). A document already in today's form comes back equal.

    Raises ``ValueError`` when ``doc`` is no normalised versions document: other top-level members than
    ``versions``, ``headers`` and ``other``, an entry that is no object with its own id, a status and both
    microversions, or a header that is neither a range nor a served microversion.
    """
    versions, headers = doc.get("versions"), doc.get("headers")
    if not set(doc) <= {"versions", "headers", "other"} or not isinstance(headers, Mapping):
        raise ValueError("not a normalised versions document: members other than versions, headers and other")
    if not isinstance(versions, Mapping) or not all(_is_canonical_entry(k, e) for k, e in versions.items()):
        raise ValueError("not a normalised versions document: 'versions' is no object of canonical entries")
    if not all(isinstance(v, str) and (is_range_header(n) or is_served_header(n)) for n, v in headers.items()):
        raise ValueError("not a normalised versions document: a header that is no microversion header")
    ranges = {name: value for name, value in headers.items() if is_range_header(name)}
    return as_canonical({**doc, "headers": reconcile(versions, ranges)})


def version_entries(doc: Mapping[str, Any]) -> list[VersionEntry]:
    """The API versions of a normalised versions document, ordered by version number (``v2.0`` before
    ``v2.1`` before ``v10``), ids that are no version number last, by id.

    Raises ``ValueError`` when ``doc`` is not a normalised versions document.
    """
    versions = doc.get("versions")
    if not isinstance(versions, Mapping) or not all(isinstance(e, Mapping) for e in versions.values()):
        raise ValueError("not a normalised versions document: no 'versions' object of entries")
    found = [_version_entry(version_id, entry) for version_id, entry in versions.items()]
    return sorted(found, key=lambda e: (_id_number(e.id) is None, _id_number(e.id) or (), e.id))


def version_number(version_id: str) -> tuple[int, ...] | None:
    """The number of a version id as keystoneauth reads it (``v3.14`` → (3, 14), ``v1`` → (1, 0)); ``None`` for
    an id that is no version number."""
    return _id_number(version_id)


def normalise_status(raw: Any) -> str:
    """A version status in canonical spelling: upper case, ``STABLE`` → ``CURRENT``, missing → ``UNKNOWN``;
    raises ``DocumentError`` (``INVALID_SCHEMA``) when it is not a string."""
    if raw is ABSENT or raw is None:
        return UNKNOWN_STATUS
    if not isinstance(raw, str):
        raise not_this_kind(NAME, f"status is a JSON {json_kind(raw)}")
    status = raw.strip().upper()
    return "CURRENT" if status == "STABLE" else status


# --- reading -------------------------------------------------------------------------------------------


def _split(doc: dict[str, Any], surface: Mapping[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """The raw entries of ``doc`` and its other top-level members, in keystoneauth's order of shapes."""
    if "versions" in doc:
        versions = doc["versions"]
        if isinstance(versions, Mapping) and isinstance(versions.get("values"), list):
            return list(versions["values"]), _other(doc, "versions")
        if isinstance(versions, list):
            return versions, _other(doc, "versions")
        raise not_this_kind(NAME, f"'versions' is a JSON {json_kind(versions)}, not an array or {{'values': [...]}}")
    if "version" in doc:
        if not isinstance(doc["version"], Mapping):
            raise not_this_kind(NAME, f"'version' is a JSON {json_kind(doc['version'])}, not an object")
        return [doc["version"]], _other(doc, "version")
    if isinstance(doc.get("id"), str) and isinstance(doc.get("links"), list):
        return [_bare_version(doc, surface)], {}
    raise not_this_kind(NAME, "no 'versions' or 'version' member, and not itself a version (id and links)")


def _bare_version(doc: dict[str, Any], surface: Mapping[str, str]) -> dict[str, Any]:
    """A body that is itself a version (older ironic), completed as keystoneauth does: status ``CURRENT``,
    a missing ``min_version``/``version`` taken from the minimum/maximum headers (when they are one)."""
    entry = {**doc, "status": "CURRENT"}
    for name, value in surface.items():
        if _microversion_or_none(value) is None:
            continue  # a malformed header stays under ``headers`` and is judged there
        if is_minimum(name):
            entry.setdefault("min_version", value)
        if is_maximum(name):
            entry.setdefault("version", value)
    return entry


def _other(doc: Mapping[str, Any], consumed: str) -> dict[str, Any]:
    """The top-level members beside the entries; ``default_version`` reduced to its id."""
    other = {name: value for name, value in doc.items() if name != consumed}
    default = other.get("default_version")
    if isinstance(default, Mapping) and isinstance(default.get("id"), str):
        other["default_version"] = default["id"]
    return other


def _keyed(raw_entries: list[Any]) -> dict[str, dict[str, Any]]:
    """The canonical entries by id; raises ``DocumentError`` (``INVALID_SCHEMA``) for a bad or repeated one."""
    keyed: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(raw_entries):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise not_this_kind(NAME, f"entry {index} is not an object with a string 'id'")
        if raw["id"] in keyed:
            raise not_this_kind(NAME, f"two entries have the id {short(raw['id'])}")
        keyed[raw["id"]] = _canonical_entry(raw)
    return keyed


def _canonical_entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One entry in canonical form: status normalised, ``min_version``/``max_version`` unified."""
    entry = {name: value for name, value in raw.items() if name not in ("version", "max_version", "min_version")}
    entry["status"] = normalise_status(raw.get("status", ABSENT))
    entry["min_version"] = _entry_microversion(raw, "min_version")
    entry["max_version"] = _entry_microversion(raw, "max_version") or _entry_microversion(raw, "version")
    return entries.canonical_entry(entry)


def _entry_microversion(raw: Mapping[str, Any], key: str) -> str | None:
    """The canonical spelling of ``raw[key]``, ``None`` when missing, ``null`` or empty; raises
    ``DocumentError`` (``INVALID_SCHEMA``) when it is not a microversion."""
    value = raw.get(key)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(f"a JSON {json_kind(value)}")
        parsed = Microversion.parse(value)
    except ValueError as exc:
        raise not_this_kind(NAME, f"{key} of {short(raw['id'])} is not a microversion ({exc})") from None
    return None if parsed is None else str(parsed)


def _header_value(value: str) -> str:
    """A range header's value in canonical microversion spelling; a malformed value is kept as text
    (whitespace collapsed) and judged as text."""
    text = " ".join(value.split())
    try:
        return str(Microversion.parse(text) or "")
    except ValueError:
        return text


def _is_canonical_entry(version_id: str, entry: Any) -> bool:
    """Whether ``entry`` has the members ``_canonical_entry`` always writes, and its own id."""
    return isinstance(entry, Mapping) and entry.get("id") == version_id and entry.keys() >= _CANONICAL_MEMBERS


def _version_entry(version_id: str, entry: Mapping[str, Any]) -> VersionEntry:
    status = entry.get("status")
    return VersionEntry(
        id=version_id,
        status=status if status in KNOWN_STATUSES else UNKNOWN_STATUS,
        min_version=Microversion.parse(entry.get("min_version")),
        max_version=Microversion.parse(entry.get("max_version")),
    )


def _id_number(version_id: str) -> tuple[int, ...] | None:
    """The number of a version id as keystoneauth reads it (``v3.14`` → (3, 14), ``v1`` → (1, 0)), or None."""
    match = _VERSION_ID.fullmatch(version_id)
    if match is None:
        return None
    parts = tuple(int(part) for part in match.group(1).split("."))
    return parts if len(parts) > 1 else (*parts, 0)


# --- judging -------------------------------------------------------------------------------------------


def _diff_versions(old: Any, new: Any, path: str) -> Iterator[Change]:
    """Entries removed, added, replaced by another id of the same major version, or changed inside."""
    old_entries, new_entries = members(old), members(new)
    removed = sorted(old_entries.keys() - new_entries.keys())
    added = sorted(new_entries.keys() - old_entries.keys())
    renamed = _renamed(removed, added)
    for version_id in removed:
        if version_id not in renamed:
            yield Change(pointer_join(path, version_id), "version-removed", _B, old_entries[version_id], ABSENT)
    for version_id in added:
        if version_id not in renamed.values():
            yield Change(pointer_join(path, version_id), "version-added", _I, ABSENT, new_entries[version_id])
    for old_id, new_id in renamed.items():
        yield from _diff_renamed(old_id, new_id, old_entries[old_id], new_entries[new_id], pointer_join(path, new_id))
    for version_id in sorted(old_entries.keys() & new_entries.keys()):
        yield from _diff_entry(old_entries[version_id], new_entries[version_id], pointer_join(path, version_id))


def _renamed(removed: list[str], added: list[str]) -> dict[str, str]:
    """Removed ids paired with added ids: where a major version lost exactly one id and gained exactly one
    other, of a different number."""
    pairs: dict[str, str] = {}
    for major in {_major(version_id) for version_id in removed} - {None}:
        gone = [version_id for version_id in removed if _major(version_id) == major]
        new = [version_id for version_id in added if _major(version_id) == major]
        if len(gone) == 1 and len(new) == 1 and _id_number(gone[0]) != _id_number(new[0]):
            pairs[gone[0]] = new[0]
    return pairs


def _major(version_id: str) -> int | None:
    """The major version of an id (``v3.14`` → 3), ``None`` when the id is no version number."""
    number = _id_number(version_id)
    return None if number is None else number[0]


def _diff_renamed(old_id: str, new_id: str, old: Any, new: Any, path: str) -> Iterator[Change]:
    """One version whose id moved within its major version, then the rest of the two entries."""
    raised = (_id_number(new_id) or ()) > (_id_number(old_id) or ())
    rule, severity = ("version-id-raised", _I) if raised else ("version-id-lowered", _B)
    yield Change(pointer_join(path, "id"), rule, severity, old_id, new_id)
    yield from _diff_entry(old, new, path)


def _diff_entry(old: Any, new: Any, path: str) -> Iterator[Change]:
    yield from entries.diff_entry(old, new, path, _ENTRY_HANDLERS)


def _diff_status(old: Any, new: Any, path: str) -> Iterator[Change]:
    """``version-status-changed``: breaking out of default discovery, warning down the lifecycle, else info."""
    old_rank = _DISCOVERABLE_RANK.get(old if isinstance(old, str) else UNKNOWN_STATUS)
    new_rank = _DISCOVERABLE_RANK.get(new if isinstance(new, str) else UNKNOWN_STATUS)
    if old_rank is not None and new_rank is None:
        severity = _B
    elif old_rank is not None and new_rank is not None and new_rank < old_rank:
        severity = _W
    else:
        severity = _I
    yield Change(path, "version-status-changed", severity, old, new)


def _diff_maximum(old: Any, new: Any, path: str) -> Iterator[Change]:
    """A maximum microversion: going down (or away) is breaking, going up (or appearing) info."""
    yield from _diff_microversion(old, new, path, ("max-microversion-raised", _I), ("max-microversion-lowered", _B))


def _diff_minimum(old: Any, new: Any, path: str) -> Iterator[Change]:
    """A minimum microversion: going up is breaking; going down, appearing or going away info."""
    before, after = _microversion_or_none(old), _microversion_or_none(new)
    if before == after:
        yield from entries.diff_value(old, new, path)  # two texts that are no microversion
    elif before is not None and after is not None and after > before:
        yield Change(path, "min-microversion-raised", _B, old, new)
    else:
        yield Change(path, "min-microversion-lowered", _I, old, new)


def _diff_microversion(
    old: Any, new: Any, path: str, raised: tuple[str, Severity], lowered: tuple[str, Severity]
) -> Iterator[Change]:
    """``raised``/``lowered`` by comparing two microversions, "none" below every microversion."""
    before, after = _microversion_or_none(old), _microversion_or_none(new)
    if before == after:
        yield from entries.diff_value(old, new, path)  # unparsable header text, or two spellings of one
        return
    rule, severity = raised if before is None or (after is not None and after > before) else lowered
    yield Change(path, rule, severity, old, new)


def _diff_headers(
    sides: tuple[Mapping[str, Any], Mapping[str, Any]], old: Any, new: Any, path: str
) -> Iterator[Change]:
    """The range headers of two documents, each missing one standing for its side's body (``effective``);
    ``sides`` are the two documents' entries."""
    old_headers, new_headers = members(old), members(new)
    for name in sorted(old_headers.keys() | new_headers.keys()):
        before, after = effective(old_headers, sides[0], name), effective(new_headers, sides[1], name)
        if not same(before, after):
            yield from _diff_header(before, after, pointer_join(path, name))


def _diff_header(old: Any, new: Any, path: str) -> Iterator[Change]:
    """A range header by the microversion rules (a header that is none, of no canonical document: a value)."""
    if is_maximum(path):
        yield from _diff_maximum(old, new, path)
    elif is_minimum(path):
        yield from _diff_minimum(old, new, path)
    else:
        yield from entries.diff_value(old, new, path)


def _microversion_or_none(value: Any) -> Microversion | None:
    """The microversion of a canonical value; ``None`` for none, ``ABSENT``, or a header text that is no
    microversion (a maximum header turned to garbage is as good as gone)."""
    if not isinstance(value, str):
        return None
    try:
        return Microversion.parse(value)
    except ValueError:
        return None


_ENTRY_HANDLERS: Final[Mapping[str, DiffMember]] = {
    "id": lambda old, new, path: iter(()),  # differs only between renamed entries, reported by them
    "status": _diff_status,
    "min_version": _diff_minimum,
    "max_version": _diff_maximum,
}
_TOP_HANDLERS: Final[Mapping[str, DiffMember]] = {
    "versions": _diff_versions,
    "other": entries.diff_other,
}
"""The members of a document with their own rules; ``classify`` adds ``headers``, which needs both sides'
entries."""
