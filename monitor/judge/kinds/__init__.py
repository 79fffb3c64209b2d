"""Document kinds: how a watched body becomes a canonical document, and how its changes are judged; pure.

A target's *kind* says what its body is:

========== ============================================================== ================
kind       documents                                                      body statuses
========== ============================================================== ================
schema     JSON schemas (Glance / IMS ``/v2/schemas/*``): today's rules    200
versions   version discovery (``GET /`` of a service, ``GET /v2.1``...)   200, 300
extensions neutron / cinder extension lists                               200
json       any other JSON object (Glance ``/v2/info/*``, json-home)        200
========== ============================================================== ================

``get_kind(name)`` returns the ``DocumentKind``: ``normalise(body, headers, keep_hosts=False)`` gives the
canonical document (raising ``monitor.judge.canonical.DocumentError``), ``classify(old, new)`` the ``Change``s
between two canonical documents, ``rules`` every rule id it can return with its severities
(docs/change-rules.md has one section per kind). Hosts never count: unless ``keep_hosts``, links lose their
scheme, host and port, so two regions serving the same surface normalise to byte-identical
``canonical_json``.

For metrics and a surface view: ``version_entries(doc)`` lists the API versions of a normalised versions
document (id, closed-set status, minimum and maximum as ``Microversion | None``); ``extension_aliases(doc)``
the aliases of a normalised extensions document. ``fold_headers(headers)`` is the part of a response's headers
that can be part of a versions document (its microversion range); ``reconciled(doc)`` brings a stored versions
document of the earlier canonical form (the served microversion and restating headers kept) into today's.

Standard library only (and what ``monitor.judge.canonical`` / ``monitor.judge.kinds.schema.rules`` use).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from monitor.judge.kinds.base import DocumentKind, RuleTable
from monitor.judge.kinds.extensions import ExtensionsKind, extension_aliases
from monitor.judge.kinds.jsondoc import JsonKind
from monitor.judge.kinds.microversion import Microversion
from monitor.judge.kinds.schema import SchemaKind
from monitor.judge.kinds.versions import VersionEntry, VersionsKind, fold_headers, reconciled, version_entries

_KINDS: Final[Mapping[str, DocumentKind]] = {
    kind.name: kind for kind in (SchemaKind(), VersionsKind(), ExtensionsKind(), JsonKind())
}

KIND_NAMES: Final[tuple[str, ...]] = tuple(_KINDS)
"""``("schema", "versions", "extensions", "json")``; ``schema`` is the default kind of a target."""


def get_kind(name: str) -> DocumentKind:
    """The kind called ``name``; raises ``KeyError`` for a name not in ``KIND_NAMES``."""
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown document kind {name!r}; known: {', '.join(KIND_NAMES)}") from None


__all__ = [
    "KIND_NAMES",
    "DocumentKind",
    "Microversion",
    "RuleTable",
    "VersionEntry",
    "extension_aliases",
    "fold_headers",
    "get_kind",
    "reconciled",
    "version_entries",
]
