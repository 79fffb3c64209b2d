"""The reference document of every (cloud, schema), from the database, recounted only when documents moved.

Whether a target deviates needs its group's reference: the document a configured region serves, or the
majority's (:func:`monitor.fleet.rules.tallied_reference`). The majority needs every region of the group, and
a group may have tens of thousands: one page of ``GET /api/targets`` must not read them all. So the database
counts them (:meth:`~monitor.store.drift.DriftStore.document_tallies`: per document, how many regions serve it
and the first of them), and :class:`References` keeps the answer until
:meth:`~monitor.store.drift.DriftStore.documents_stamp` says a snapshot was added or the targets polled now
changed. A steady fleet answers from memory after one cheap query; the first answer after a document changed
pays the count once (a pass over the fleet's latest snapshots).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from monitor.domain import TargetKey
from monitor.fleet import rules
from monitor.fleet.rules import MAJORITY
from monitor.judge.regions import Tally
from monitor.store.drift import DriftStore

Group = tuple[str, str]  # (cloud, schema)


class References:
    """Thread-safe; every method may raise StoreError."""

    def __init__(self, store: DriftStore, configured: Mapping[str, str]) -> None:
        self._store = store
        self._configured = dict(configured)  # cloud -> "majority" or the reference region
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._references: dict[Group, str | None] = {}

    def get(self) -> dict[Group, str | None]:
        """The reference document (sha256) of every (cloud, schema) with a document; as of this call."""
        stamp = self._store.documents_stamp()  # before the count: a cache is never newer than its stamp says
        with self._lock:
            if stamp == self._stamp:
                return self._references
        references = self._count()
        with self._lock:
            self._stamp, self._references = stamp, references
        return references

    def _count(self) -> dict[Group, str | None]:
        named = {(cloud, region) for cloud, region in self._configured.items() if region != MAJORITY}
        documents = self._store.region_documents(named)
        answers: dict[Group, str | None] = {}
        for (cloud, schema), tallies in self._store.document_tallies().items():
            configured = self._configured.get(cloud, MAJORITY)
            document = documents.get(TargetKey(cloud, configured, schema))
            counted = {sha: Tally(*tally) for sha, tally in tallies.items()}
            answers[(cloud, schema)] = rules.tallied_reference(configured, document, counted)
        return answers
