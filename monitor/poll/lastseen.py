"""The times of the targets' last polls, collected in memory and written in one batch every few seconds.

An unchanged poll writes no row: it only marks here when it happened (and that the target's current
snapshot was seen again). :meth:`LastSeen.take` hands over everything marked since the last flush; if
writing fails, :meth:`LastSeen.give_back` keeps it for the next flush, so a database outage loses nothing
but the time it lasts. A crash loses at most one flush interval of "last seen" times, never a snapshot,
change or outcome transition (those are written at once).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from monitor.store.records import Seen


class LastSeen:
    """Thread-safe: polls mark from the event loop and from store threads."""

    def __init__(self) -> None:
        self._pending: dict[int, Seen] = {}
        self._lock = threading.Lock()

    def mark(self, target_id: int, at: datetime, *, ok: bool, snapshot_id: int | None) -> None:
        """A poll of the target started ``at``; ``ok`` when it succeeded (and saw ``snapshot_id``)."""
        with self._lock:
            before = self._pending.get(target_id)
            if before is not None and before.last_poll_at > at:
                return  # an older poll finishing late: the newer one counts
            if ok:
                entry = Seen(target_id, at, at, snapshot_id)
            elif before is not None:  # a failure after a success in the same batch keeps that success
                entry = Seen(target_id, at, before.last_success_at, before.snapshot_id)
            else:
                entry = Seen(target_id, at, None, None)
            self._pending[target_id] = entry

    def take(self) -> list[Seen]:
        """Everything marked since the last ``take``."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        return pending

    def give_back(self, seen: Iterable[Seen]) -> None:
        """Keep entries whose write failed, unless a newer mark replaced them meanwhile."""
        with self._lock:
            for entry in seen:
                newer = self._pending.get(entry.target_id)
                if newer is None:
                    self._pending[entry.target_id] = entry
                elif newer.last_success_at is None and entry.last_success_at is not None:
                    self._pending[entry.target_id] = Seen(
                        entry.target_id, newer.last_poll_at, entry.last_success_at, entry.snapshot_id
                    )

    def __len__(self) -> int:
        return len(self._pending)
