"""The times of the targets' last polls, collected in memory and written in one batch every few seconds.

An unchanged poll writes no row: it only marks here when it happened (and that the target's current
snapshot was seen again). :meth:`LastSeen.take` hands over everything marked since the last flush; if
writing fails, :meth:`LastSeen.give_back` keeps it for the next flush, so a database outage loses nothing
but the time it lasts. A crash loses at most one flush interval of "last seen" times, never a snapshot,
change or outcome transition (those are written at once).

The validators proven for a snapshot's document (:mod:`monitor.poll.conditional`) ride on the same batch:
:meth:`LastSeen.keep_validators` marks them, :meth:`LastSeen.take_validators` hands them over. They are
marked only when they change, which an unchanged poll almost never does. Lost in a crash, they cost one full
response after the restart, never a wrong answer: they are stored on the snapshot they validate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from monitor.store.records import Seen, SnapshotValidators


class LastSeen:
    """Thread-safe: polls mark from the event loop and from store threads."""

    def __init__(self) -> None:
        self._pending: dict[int, Seen] = {}
        self._validators: dict[int, SnapshotValidators] = {}  # target id -> the latest validators to write
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

    def keep_validators(self, entry: SnapshotValidators) -> None:
        """Write ``entry`` at the next flush (replacing the target's earlier one not yet written)."""
        with self._lock:
            self._validators[entry.target_id] = entry

    def take_validators(self) -> list[SnapshotValidators]:
        """Every validator entry kept since the last ``take_validators``."""
        with self._lock:
            pending, self._validators = list(self._validators.values()), {}
        return pending

    def give_back_validators(self, entries: Iterable[SnapshotValidators]) -> None:
        """Keep entries whose write failed, unless the target has a newer one meanwhile."""
        with self._lock:
            for entry in entries:
                self._validators.setdefault(entry.target_id, entry)

    def __len__(self) -> int:
        return len(self._pending)
