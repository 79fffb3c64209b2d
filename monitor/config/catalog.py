"""Which API-surface documents to watch for a service of the catalog, and where; pure, standard library only.

For a cloud with ``services:`` (Keystone / IAM auth), discovery reads each region's catalog; for every
service type listed (or every one with ``all``) its public endpoint gives the documents here:

============================ ============================== ============ ====================================
service type                 target                         kind         URL
============================ ============================== ============ ====================================
every one                    ``<type>-versions``            versions     the version root (below)
``network``                  ``network-extensions``         extensions   root + ``/v2.0/extensions``
``block-storage``            ``block-storage-extensions``   extensions   the catalog endpoint + ``/extensions``
``image``                    ``image-info-import``          json         root + ``/v2/info/import``
``image``                    ``image-info-stores``          json         root + ``/v2/info/stores``
============================ ============================== ============ ====================================

The **version root** is the endpoint without its version and project id, as keystoneauth finds it
(``…/v2.1`` → ``…``; ``…/v3/<project_id>`` → ``…``; ``…/compute/v2.1`` → ``…/compute``); version discovery
answers there. Block storage's extension list is per project, so it hangs off the endpoint itself, which
carries the project id. Service types are the official ones (``volumev3`` is ``block-storage``,
``sharev2`` ``shared-file-system``: discovery canonicalises them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_VERSION_TAIL: Final = re.compile(r"/v[0-9]+(?:\.[0-9]+)?(?:/(?:[0-9a-fA-F-]{8,}|%\(\w+\)s|\$\(\w+\)s))?/?$")
"""A trailing ``/vN[.M]``, optionally followed by a project id (hex/uuid or an unexpanded template)."""


@dataclass(frozen=True, slots=True)
class SurfaceDocument:
    """One document to watch: its target name, kind, URL, and the service type it describes."""

    name: str
    kind: str
    url: str
    service: str


def version_root(endpoint: str) -> str:
    """``endpoint`` without a trailing version (and the project id after it), without a trailing slash."""
    return _VERSION_TAIL.sub("", endpoint.rstrip("/")).rstrip("/")


def documents(service: str, endpoint: str) -> list[SurfaceDocument]:
    """The documents watched for ``service`` at its catalog ``endpoint`` (see the module table)."""
    root = version_root(endpoint)
    found = [SurfaceDocument(f"{service}-versions", "versions", root + "/", service)]
    if service == "network":
        found.append(SurfaceDocument("network-extensions", "extensions", root + "/v2.0/extensions", service))
    elif service == "block-storage":
        found.append(SurfaceDocument("block-storage-extensions", "extensions", endpoint.rstrip("/") + "/extensions",
                                     service))  # fmt: skip
    elif service == "image":
        found.append(SurfaceDocument("image-info-import", "json", root + "/v2/info/import", service))
        found.append(SurfaceDocument("image-info-stores", "json", root + "/v2/info/stores", service))
    return found
