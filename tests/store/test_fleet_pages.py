"""What a page of targets reads from the store, on SQLite and PostgreSQL: the targets in label order after a
cursor, one target by its labels, the documents each (cloud, schema) serves counted, and the stamp that says
when that count is out of date."""

from __future__ import annotations

import itertools
from datetime import timedelta

from sqlalchemy import insert

from monitor.domain import TargetKey
from monitor.store.drift import DriftStore
from monitor.store.repository import Repository
from monitor.store.tables import Snapshot
from tests.support.stored import DOC_A, DOC_B, T0, ok, stored


def fleet(repo: Repository, regions: list[str], schema: str = "images") -> dict[TargetKey, int]:
    keys = [TargetKey("c", region, schema) for region in regions]
    return repo.ensure_targets([(key, f"u-{key.region}") for key in keys])


def test_a_page_of_targets_starts_after_the_cursor_in_label_order_without_retired_ones(repo: Repository) -> None:
    ids = fleet(repo, ["r3", "r1", "r2", "r10"]) | fleet(repo, ["r1"], schema="image")
    repo.retire_targets([TargetKey("c", "r2", "images")])
    first = repo.target_page(None, 2)
    assert [row.key for row in first] == [TargetKey("c", "r1", "image"), TargetKey("c", "r1", "images")]
    rest = repo.target_page(first[-1].key, 10)
    assert [row.key.region for row in rest] == ["r10", "r3"]  # r2 retired; plain string order
    assert rest[0].id == ids[TargetKey("c", "r10", "images")] and rest[0].url == "u-r10"
    assert repo.target_page(TargetKey("c", "r3", "images"), 10) == []


def test_one_target_is_read_by_its_labels_while_it_is_polled(repo: Repository) -> None:
    ids = fleet(repo, ["r1", "r2"])
    row = repo.target_row(TargetKey("c", "r1", "images"))
    assert row is not None and row.id == ids[TargetKey("c", "r1", "images")] and row.url == "u-r1"
    repo.retire_targets([TargetKey("c", "r1", "images")])
    assert repo.target_row(TargetKey("c", "r1", "images")) is None
    assert repo.target_row(TargetKey("c", "r9", "images")) is None


def test_the_documents_of_each_group_are_counted_with_their_first_region(repo: Repository) -> None:
    drift = DriftStore(repo.engine)
    ids = fleet(repo, ["r1", "r2", "r3", "r4"])
    for region, doc in (("r1", DOC_B), ("r2", DOC_A), ("r3", DOC_A), ("r4", DOC_B)):
        key = TargetKey("c", region, "images")
        repo.record_snapshot(ids[key], None, stored(doc), [], ok(key, T0))
    later = TargetKey("c", "r4", "images")  # r4 moves on to DOC_A: only its latest snapshot counts
    repo.record_snapshot(ids[later], repo.load_states([ids[later]])[ids[later]].snapshot_id, stored(DOC_A), [],
                         ok(later, T0 + timedelta(hours=1)))  # fmt: skip
    a, b = stored(DOC_A).sha256, stored(DOC_B).sha256
    assert drift.document_tallies() == {("c", "images"): {a: (3, "r2"), b: (1, "r1")}}
    repo.retire_targets([TargetKey("c", "r2", "images")])
    assert drift.document_tallies() == {("c", "images"): {a: (2, "r3"), b: (1, "r1")}}
    assert drift.region_documents({("c", "r1"), ("c", "r2")}) == {TargetKey("c", "r1", "images"): b}


def test_the_stamp_moves_with_every_snapshot_even_one_committed_out_of_id_order(repo: Repository) -> None:
    drift = DriftStore(repo.engine)
    ids = fleet(repo, ["r1", "r2"])
    key = TargetKey("c", "r1", "images")
    repo.record_snapshot(ids[key], None, stored(DOC_A), [], ok(key, T0))
    stamps = [drift.documents_stamp()]
    other = ids[TargetKey("c", "r2", "images")]
    for snapshot_id in (1000, 500):  # a lower id committed after a higher one, as PostgreSQL's ids may commit
        with repo.engine.begin() as conn:
            conn.execute(insert(Snapshot).values(id=snapshot_id, target_id=other, document_sha256=stored(DOC_A).sha256,
                                                 first_seen=T0, last_seen=T0))  # fmt: skip
        stamps.append(drift.documents_stamp())
    repo.retire_targets([key])
    stamps.append(drift.documents_stamp())
    repo.ensure_targets([(key, "u-r1")])  # polled again
    stamps.append(drift.documents_stamp())
    assert all(before != after for before, after in itertools.pairwise(stamps)), stamps
    assert stamps[-1] == stamps[-3]  # polled again: the same targets polled, the same documents as before
    assert drift.documents_stamp() == stamps[-1]  # nothing moved: the same stamp
