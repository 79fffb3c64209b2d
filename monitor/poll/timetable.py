"""When each target is due: a heap of next-due times, read a batch at a time. Pure: no clock, no event loop.

The scheduler (:mod:`monitor.poll.scheduler`) asks :meth:`Timetable.take_due` for every target due by ``now``
once per tick and starts those polls. The rules are APScheduler's interval jobs with ``max_instances=1`` and
``coalesce=True``, which this replaces for polls:

* a target runs on a grid of its interval from its first run; each run is moved by a fresh random offset in
  ``[0, jitter]`` (the grid itself does not drift);
* a target whose previous poll still runs when it is due is skipped (two polls of one target never overlap),
  and its next run is the next point of the grid;
* a backlog (the process stalled, a poll slower than several intervals) collapses into one run: the next run
  is the first grid point after now, never a burst of missed ones.

Times are plain floats (the caller's monotonic clock), so the rules are tested without sleeping. One entry per
target, whatever the fleet's size; removing a target marks its heap entry stale (dropped when it surfaces).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.domain import TargetKey, TargetSpec


@dataclass(slots=True, eq=False)
class Slot:
    """One scheduled target: its spec, the grid point of its next run, and whether a poll of it runs now."""

    spec: TargetSpec
    grid: float
    due: float
    busy: bool = False
    live: bool = True  # False once removed: its heap entry is stale


class Timetable:
    """Every scheduled target's next run; ``take_due`` hands out the due ones and schedules their next run."""

    def __init__(self, jitter: random.Random | None = None) -> None:
        self._slots: dict[TargetKey, Slot] = {}
        self._heap: list[tuple[float, int, Slot]] = []
        self._seq = 0  # ties in due time break by insertion order (slots are not comparable)
        self._random = jitter or random.Random()

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: object) -> bool:
        return key in self._slots

    @property
    def specs(self) -> list[TargetSpec]:
        """The targets scheduled now."""
        return [slot.spec for slot in self._slots.values()]

    def due_at(self, key: TargetKey) -> float | None:
        """When ``key`` runs next (None: not scheduled)."""
        slot = self._slots.get(key)
        return slot.due if slot is not None else None

    def add(self, spec: TargetSpec, first: float) -> Slot:
        """Schedule ``spec``, its first run at ``first`` (its grid starts there); replaces an entry of the same key."""
        self.remove([spec.key])
        slot = Slot(spec, first, first)
        self._slots[spec.key] = slot
        self._push(slot)
        return slot

    def remove(self, keys: Iterable[TargetKey]) -> None:
        """Stop scheduling ``keys`` (a poll of one running now finishes; it is not scheduled again)."""
        for key in keys:
            slot = self._slots.pop(key, None)
            if slot is not None:
                slot.live = False

    def next_due(self) -> float | None:
        """The earliest due time of any target (None: nothing scheduled)."""
        while self._heap and not self._heap[0][2].live:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def take_due(self, now: float) -> list[Slot]:
        """Every target due by ``now`` whose previous poll has finished, marked busy; each is rescheduled.

        The caller starts a poll of each and calls :meth:`done` when it ends.
        """
        due: list[Slot] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _at, _seq, slot = heapq.heappop(heap)
            if not slot.live:
                continue
            self._advance(slot, now)
            if not slot.busy:  # max_instances=1: a poll still running skips this run
                slot.busy = True
                due.append(slot)
        return due

    @staticmethod
    def done(slot: Slot) -> None:
        """The poll of ``slot`` ended; its next run may start."""
        slot.busy = False

    def _advance(self, slot: Slot, now: float) -> None:
        """The next grid point after ``now`` (missed points collapse into one run), plus a fresh jitter."""
        interval = slot.spec.interval
        slot.grid += interval
        if slot.grid <= now:
            slot.grid += math.floor((now - slot.grid) / interval + 1) * interval
        jitter = min(slot.spec.jitter, interval)
        slot.due = slot.grid + (self._random.uniform(0, jitter) if jitter > 0 else 0.0)
        self._push(slot)

    def _push(self, slot: Slot) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (slot.due, self._seq, slot))
