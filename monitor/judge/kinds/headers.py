"""The microversion headers of a versions document, reconciled with its body; pure functions.

Services speak of microversions in two kinds of response header:

* **the range**: ``X-OpenStack-<service>-API-Minimum-Version`` and ``-Maximum-Version`` (ironic sends them
  with every response, ironic-inspector too). They state the range the body's version entry states.
* **the served microversion**: ``OpenStack-API-Version: <service type> X.Y`` (nova, cinder, placement, manila)
  and the older ``X-OpenStack-<service>-API-Version`` (nova, ironic, manila): the microversion this one
  response was served at, the default for a request without a version header or the maximum for ``latest``.
  It describes the request, not the API: no part of the surface, never folded.

**The effective range** of a document is its body and its range headers reconciled. The headers speak of one
entry, the *described entry*: the document's only entry or, among several, the only one whose body gives a
minimum or a maximum (otherwise none). A range header equal to the described entry's value restates the body
and is dropped, so a response with restating headers and the same response without any have one canonical
document. A header that disagrees (another value, a malformed one, or one with no described entry) stays.

When two documents are compared, a range header missing on one side stands for the described entry's value on
that side (``effective``): either way, that side's range is its body's. So a header that starts to disagree is
judged against what the body said before (ironic ``-Maximum-Version`` 1.82 restated, then 1.80 with the body
still at 1.82: the maximum went down), exactly as when both responses carried the header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from monitor.domain import ABSENT

MINIMUM_SUFFIX: Final = "-api-minimum-version"
MAXIMUM_SUFFIX: Final = "-api-maximum-version"

_RANGE_HEADER: Final = re.compile(r"x-openstack-[a-z0-9]+(?:-[a-z0-9]+)*?-api-(?:minimum|maximum)-version")
_SERVED_HEADER: Final = re.compile(r"openstack-api-version|x-openstack-[a-z0-9]+(?:-[a-z0-9]+)*?-api-version")
_RANGE_MEMBERS: Final = ("min_version", "max_version")


def is_range_header(name: str) -> bool:
    """Whether ``name`` (lower case) is a minimum or maximum microversion header."""
    return _RANGE_HEADER.fullmatch(name) is not None


def is_served_header(name: str) -> bool:
    """Whether ``name`` (lower case) says which microversion one response was served at."""
    return _SERVED_HEADER.fullmatch(name) is not None and not is_range_header(name)


def is_minimum(name: str) -> bool:
    return name.endswith(MINIMUM_SUFFIX)


def is_maximum(name: str) -> bool:
    return name.endswith(MAXIMUM_SUFFIX)


def described_entry(versions: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The entry the range headers speak of: the only entry, or the only one with a range in the body."""
    entries = [entry for entry in versions.values() if isinstance(entry, Mapping)]
    if len(entries) == 1:
        return entries[0]
    ranged = [entry for entry in entries if any(entry.get(member) is not None for member in _RANGE_MEMBERS)]
    return ranged[0] if len(ranged) == 1 else None


def reconcile(versions: Mapping[str, Any], folded: Mapping[str, str]) -> dict[str, str]:
    """The range headers of ``folded`` that do not restate the described entry of ``versions`` (canonical
    entries; header values in the canonical microversion spelling where they are one)."""
    entry = described_entry(versions)
    return {name: value for name, value in folded.items() if entry is None or value != _entry_value(entry, name)}


def effective(headers: Mapping[str, Any], versions: Mapping[str, Any], name: str) -> Any:
    """The range header ``name`` of one side of a comparison: its value when it disagrees with the body (it
    is in ``headers``), else the described entry's value; ``ABSENT`` when neither says anything."""
    if name in headers:
        return headers[name]
    entry = described_entry(versions)
    value = _entry_value(entry, name) if entry is not None else None
    return ABSENT if value is None else value


def _entry_value(entry: Mapping[str, Any], name: str) -> Any:
    """The member of a canonical entry that the range header ``name`` restates (``None``: none)."""
    if is_minimum(name):
        return entry.get("min_version")
    return entry.get("max_version") if is_maximum(name) else None
