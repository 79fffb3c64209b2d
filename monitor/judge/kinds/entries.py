"""What the keyed-entry kinds (``versions``, ``extensions``) share: entries, links, the ``other`` members.

Both kinds turn a list of entries into an object keyed by the entries' identity (a version's ``id``, an
extension's ``alias``), and keep the body's remaining top-level members under ``other``. Inside an entry, and
under ``other``, the members without a rule of their own are judged here:

* ``updated`` (a timestamp): ``updated-changed``, cosmetic.
* ``name``, ``description``: ``description-changed``, cosmetic.
* ``links``: a set of links (order means nothing; sorted by ``rel``, then canonical JSON, so a link whose href
  moved stays at its index and is reported as its ``href``); every difference is ``link-changed``, info:
  discovery clients follow the links they are given (keystoneauth even repairs their host), and an endpoint
  that really went away shows as a removed entry or a failing poll.
* anything else (``media-types``, ``default_version``, ``namespace``, ironic's resource links):
  ``value-changed``, info. These members describe the entry; none of them decides whether a client's
  request is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from monitor.domain import Change, Severity
from monitor.judge.kinds.base import RuleTable, sorted_set
from monitor.judge.kinds.walk import DiffMember, diff_members, diff_values, members

ENTRY_RULES: Final[RuleTable] = {
    "updated-changed": frozenset({Severity.COSMETIC}),
    "description-changed": frozenset({Severity.COSMETIC}),
    "link-changed": frozenset({Severity.INFO}),
    "value-changed": frozenset({Severity.INFO}),
}
"""The rules of this module, part of the registry of every keyed-entry kind."""

SET_MEMBERS: Final = frozenset({"media-types"})
"""Array members of an entry whose order means nothing (besides ``links``)."""


def canonical_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``entry`` with ``links`` and the ``SET_MEMBERS`` arrays in set order."""
    result = dict(entry)
    if isinstance(result.get("links"), list):
        result["links"] = sorted_set(result["links"], key=_rel)
    for name in SET_MEMBERS:
        if isinstance(result.get(name), list):
            result[name] = sorted_set(result[name])
    return result


def diff_entry(old: Any, new: Any, path: str, handlers: Mapping[str, DiffMember]) -> Iterator[Change]:
    """Changes inside one entry present on both sides: ``handlers`` first, then this module's rules."""
    yield from diff_members(members(old), members(new), path, {**_ENTRY_HANDLERS, **handlers}, diff_value)


def diff_other(old: Any, new: Any, path: str) -> Iterator[Change]:
    """Changes among the ``other`` members (the body's top-level members beside the entries)."""
    yield from diff_members(members(old), members(new), path, _ENTRY_HANDLERS, diff_value)


def diff_value(old: Any, new: Any, path: str) -> Iterator[Change]:
    """``value-changed`` (info) at every point where two values differ."""
    yield from diff_values(old, new, path, lambda p, o, n: Change(p, "value-changed", Severity.INFO, o, n))


def _diff_updated(old: Any, new: Any, path: str) -> Iterator[Change]:
    yield Change(path, "updated-changed", Severity.COSMETIC, old, new)


def _diff_text(old: Any, new: Any, path: str) -> Iterator[Change]:
    yield Change(path, "description-changed", Severity.COSMETIC, old, new)


def _diff_links(old: Any, new: Any, path: str) -> Iterator[Change]:
    yield from diff_values(old, new, path, lambda p, o, n: Change(p, "link-changed", Severity.INFO, o, n))


def _rel(link: Any) -> str:
    """A link's ``rel`` (empty when it has none), the first sort key of a set of links."""
    rel = link.get("rel") if isinstance(link, Mapping) else None
    return rel if isinstance(rel, str) else ""


_ENTRY_HANDLERS: Final[Mapping[str, DiffMember]] = {
    "name": _diff_text,
    "description": _diff_text,
    "updated": _diff_updated,
    "links": _diff_links,
}
