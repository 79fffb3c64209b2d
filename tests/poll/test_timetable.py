"""The timetable: targets on the grid of their interval with a fresh jitter per run; a busy target is skipped; a
backlog collapses into one run; removed targets are never handed out. Times are plain numbers (no clock)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from monitor.config.settings import Secret, TokenSettings
from monitor.domain import TargetKey, TargetSpec
from monitor.poll.timetable import Slot, Timetable

BASE = TargetSpec(
    TargetKey("c", "r1", "images"), "http://127.0.0.1:1/r1", interval=10.0, timeout=3.0, jitter=0.0,
    max_body_bytes=2**20, retries=0, retry_after_cap=5.0, allow_http=True, auth=TokenSettings(token=Secret("t")),
)  # fmt: skip


def spec(region: str = "r1", interval: float = 10.0, jitter: float = 0.0) -> TargetSpec:
    return replace(BASE, key=TargetKey("c", region, "images"), interval=interval, jitter=jitter)


def keys(slots: list[Slot]) -> list[str]:
    return [slot.spec.key.region for slot in slots]


def test_a_target_runs_on_the_grid_of_its_interval_from_its_first_run() -> None:
    table = Timetable()
    table.add(spec(), first=5.0)
    assert table.take_due(4.9) == []
    [slot] = table.take_due(5.2)  # a tick a little late
    table.done(slot)
    assert table.due_at(slot.spec.key) == 15.0  # the grid, not the late tick, sets the next run
    assert table.take_due(14.9) == [] and keys(table.take_due(15.0)) == ["r1"]


def test_a_poll_still_running_when_due_is_skipped_and_never_overlaps_itself() -> None:
    table = Timetable()
    table.add(spec(), first=0.0)
    [slot] = table.take_due(0.0)
    assert table.take_due(10.0) == []  # still running: this run is skipped
    assert table.due_at(slot.spec.key) == 20.0
    table.done(slot)
    assert keys(table.take_due(20.0)) == ["r1"]


def test_a_backlog_collapses_into_one_run_at_the_next_grid_point() -> None:
    table = Timetable()
    table.add(spec(), first=0.0)
    table.done(table.take_due(0.0)[0])
    assert keys(table.take_due(95.0)) == ["r1"]  # nine runs missed: one run now
    assert table.due_at(spec().key) == 100.0
    assert table.take_due(99.0) == []


def test_each_run_gets_a_fresh_jitter_within_the_window_and_the_grid_does_not_drift() -> None:
    table = Timetable(random.Random(7))
    table.add(spec(jitter=3.0), first=0.0)
    offsets = []
    for grid in range(10, 200, 10):
        due = table.due_at(spec().key)
        assert due is not None
        [slot] = table.take_due(due)
        table.done(slot)
        if grid > 10:
            offsets.append(due - (grid - 10))
    assert all(0.0 <= offset <= 3.0 for offset in offsets) and len(set(offsets)) > 1


def test_due_targets_come_out_in_one_batch_and_removed_or_replaced_ones_never_do() -> None:
    table = Timetable()
    for region, first in (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 50.0)):
        table.add(spec(region), first=first)
    table.remove([spec("b").key])
    table.add(spec("c", interval=60.0), first=40.0)  # changed: rescheduled, the old entry is stale
    [a] = table.take_due(10.0)
    assert keys([a]) == ["a"] and table.next_due() == 11.0
    table.done(a)
    assert sorted(keys(table.take_due(45.0))) == ["a", "c"]  # "c" at 40, "a" at 41 (its grid): one batch
    assert len(table) == 3 and {s.key.region for s in table.specs} == {"a", "c", "d"}


@pytest.mark.slow  # 100,000 slots three times: 8 s
@pytest.mark.parametrize("interval", [0.5, 7.0, 300.0])
def test_a_hundred_thousand_targets_cost_one_heap_entry_each(interval: float) -> None:
    table = Timetable()
    for i in range(100_000):
        table.add(spec(f"r{i}", interval=interval), first=float(i % 10))
    assert len(table) == 100_000 and len(table.take_due(10.0)) == 100_000
