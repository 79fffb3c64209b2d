"""From a fetched body to a comparable document: its raw digest, its canonical form, and a cache of recent ones.

:func:`raw_digest` is what decides "the same bytes as last time" (no parsing needed); :func:`digest`
normalises a body by its target's kind, validates and canonicalises it, and hashes the canonical JSON (pure:
it runs in a worker thread); :class:`DigestCache` keeps the last few results, so identical bodies served by
many targets (a fleet of regions serving one document) are normalised once.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from monitor.domain import FailureReason, TargetSpec, in_thread
from monitor.judge.canonical import DocumentError, canonical_json, count_properties, document_sha256
from monitor.judge.kinds import fold_headers, get_kind
from monitor.poll.fetch import Fetched
from monitor.store.records import StoredDocument


@dataclass(frozen=True, slots=True)
class Read:
    """A fetched body that parsed and looks like a schema (``document`` None: the same bytes as the base's)."""

    raw: bytes
    sha256: str
    document: dict[str, Any] | None = None  # canonical form
    stored: StoredDocument | None = None


class ReadFailed(Exception):
    """A read of the target failed: nothing was fetched that could be compared. Carries the result's fields."""

    def __init__(self, reason: FailureReason, message: str, status: int | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def digest(raw: bytes, fetched: Fetched, spec: TargetSpec) -> Read:
    """Normalise (by the target's kind), validate, canonicalise and hash a body (pure; runs in a worker thread);
    raises ReadFailed."""
    try:
        document = get_kind(spec.kind).normalise(fetched.body, fetched.headers, keep_hosts=spec.keep_hosts)
    except DocumentError as exc:
        raise ReadFailed(exc.reason, str(exc), fetched.status) from None
    canonical = canonical_json(document)
    stored = StoredDocument(document_sha256(canonical), canonical, len(fetched.body), count_properties(document))
    return Read(raw, stored.sha256, json.loads(canonical), stored)


def raw_digest(fetched: Fetched) -> bytes:
    """What decides "the same bytes as last time": the body and the headers a kind may fold into the document."""
    hashed = hashlib.sha256(fetched.body)
    for name, value in sorted(fold_headers(fetched.headers).items()):
        hashed.update(f"\0{name}:{value}".encode())
    return hashed.digest()


_DigestKey = tuple[bytes, str, bool]  # the raw digest, the kind and keep_hosts: all that decides the canonical form


class DigestCache:
    """The last ``size`` successful digests (least recently used dropped): identical bodies of many targets
    are normalised once. The documents are shared, as after a restore, and never modified."""

    def __init__(self, executor: Executor, size: int = 64) -> None:
        self._executor = executor
        self._size = size
        self._reads: OrderedDict[_DigestKey, Read] = OrderedDict()

    async def read(self, raw: bytes, fetched: Fetched, spec: TargetSpec) -> Read:
        """The digest of ``fetched`` (whose :func:`raw_digest` is ``raw``): from the cache, or computed in a
        worker thread and cached; raises ReadFailed (a failure is not cached)."""
        key = (raw, spec.kind, spec.keep_hosts)
        read = self._reads.get(key)
        if read is not None:
            self._reads.move_to_end(key)
            return read
        read = await in_thread(self._executor, digest, raw, fetched, spec)
        self._reads[key] = read
        while len(self._reads) > self._size:
            self._reads.popitem(last=False)
        return read
