"""What consumer contracts are judged on, from the database, and the marks stored with changes: on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.domain import ABSENT, Change, ConsumerBreak, FailureReason, PollResult, Severity, TargetKey
from monitor.store.consumers import ConsumerStore
from monitor.store.records import HistoryFilter, TargetNow
from monitor.store.repository import Repository
from tests.support.stored import DOC_A, DOC_B, ok, stored

T0 = datetime(2026, 1, 1, tzinfo=UTC)
A = TargetKey("c", "r1", "compute-versions")
B = TargetKey("c", "r2", "compute-versions")
FAILING = TargetKey("c", "r3", "compute-versions")
OTHER_SCHEMA = TargetKey("c", "r1", "images")
RETIRED = TargetKey("c", "r4", "compute-versions")
MARK = ConsumerBreak("tf", "815d30ea", "compute-versions: v2.1 serves microversion 2.96",
                     "max microversion 2.95 < required 2.96")  # fmt: skip


def test_current_gives_each_polled_target_of_the_groups_its_document_and_failure(repo: Repository) -> None:
    ids = repo.ensure_targets([(key, f"https://{key.region}") for key in (A, B, FAILING, OTHER_SCHEMA, RETIRED)])
    first = repo.record_snapshot(ids[A], None, stored(DOC_A), [], ok(A, T0), transition=True)
    repo.record_snapshot(ids[A], first, stored(DOC_B), [], ok(A, T0 + timedelta(minutes=1)))
    repo.record_snapshot(ids[FAILING], None, stored(DOC_A), [], ok(FAILING, T0), transition=True)
    failed = PollResult(FAILING, T0 + timedelta(minutes=2), 0.1, ok=False, reason=FailureReason.HTTP_503)
    repo.record_transition(ids[FAILING], failed)
    repo.record_snapshot(ids[OTHER_SCHEMA], None, stored(DOC_A), [], ok(OTHER_SCHEMA, T0))
    repo.retire_targets([RETIRED])

    found = ConsumerStore(repo.engine).current({("c", "compute-versions")})

    assert found == {
        A: TargetNow(stored(DOC_B).sha256, None),
        B: TargetNow(None, None),  # registered, never polled
        FAILING: TargetNow(stored(DOC_A).sha256, "http_503"),
    }
    assert ConsumerStore(repo.engine).current(set()) == {}
    bodies = ConsumerStore(repo.engine).bodies({stored(DOC_B).sha256, "0" * 64})
    assert bodies == {stored(DOC_B).sha256: stored(DOC_B).body}


def test_a_recovered_target_is_not_failing(repo: Repository) -> None:
    tid = repo.ensure_targets([(A, "u")])[A]
    repo.record_transition(tid, PollResult(A, T0, 0.1, ok=False, reason=FailureReason.TIMEOUT))
    assert ConsumerStore(repo.engine).current({("c", "compute-versions")})[A] == TargetNow(None, "timeout")
    repo.record_snapshot(tid, None, stored(DOC_A), [], ok(A, T0 + timedelta(minutes=1)), transition=True)
    assert ConsumerStore(repo.engine).current({("c", "compute-versions")})[A] == TargetNow(stored(DOC_A).sha256, None)


def test_the_marks_of_a_change_are_stored_with_it_and_read_back(repo: Repository) -> None:
    tid = repo.ensure_targets([(A, "u")])[A]
    first = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(A, T0))
    marked = Change("/versions/v2.1/max_version", "max-microversion-lowered", Severity.BREAKING, "2.96", "2.95",
                    breaks=(MARK,))  # fmt: skip
    plain = Change("/properties/b", "property-added", Severity.INFO, ABSENT, {"type": "integer"})
    repo.record_snapshot(tid, first, stored(DOC_B), [marked, plain], ok(A, T0 + timedelta(hours=1)))

    records = {r.rule: r for r in repo.history(HistoryFilter())}

    assert records["max-microversion-lowered"].breaks == (MARK,)
    assert records["property-added"].breaks == ()
    assert records["max-microversion-lowered"].as_json()["breaks"] == [MARK.as_json()]
    assert repo.change(records["property-added"].id).as_json()["breaks"] == []  # type: ignore[union-attr]
