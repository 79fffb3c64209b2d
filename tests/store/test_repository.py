"""The repository on SQLite and on the real PostgreSQL: the same tests for both backends."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from monitor.app import StartupError, open_database
from monitor.config import parse_config
from monitor.domain import ABSENT, Change, FailureReason, PollResult, Severity, TargetKey
from monitor.store.coordination import CoordinationStore
from monitor.store.engine import current_revision, head_revision, make_engine, upgrade
from monitor.store.records import (
    Fence,
    FirstSnapshot,
    HistoryFilter,
    Seen,
    SnapshotConflictError,
    StoreError,
)
from monitor.store.repository import Repository
from monitor.store.tables import ChangeRow, Document, PollTransition, Snapshot
from tests.conftest import create_pg_database, drop_pg_database, fail_inserts
from tests.support.stored import DOC_A, DOC_B, T0, ok, stored

KEY = TargetKey("c", "r1", "images")
OTHER = TargetKey("c", "r2", "images")


CHANGE = Change("/properties/b", "property-added", Severity.INFO, ABSENT, {"type": "integer"})


def count(repo: Repository, table: type) -> int:
    with repo.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_migrations_reach_head(repo: Repository) -> None:
    assert current_revision(repo.engine) == head_revision()


def test_ensure_targets_is_idempotent_and_updates_urls(repo: Repository) -> None:
    first = repo.ensure_targets([(KEY, "https://a"), (OTHER, "https://b")])
    again = repo.ensure_targets([(KEY, "https://a2")])
    assert again[KEY] == first[KEY]
    assert first[KEY] != first[OTHER]
    with repo.engine.connect() as conn:
        urls: dict[int, str] = {tid: url for tid, url in conn.execute(text("SELECT id, url FROM targets"))}
    assert urls == {first[KEY]: "https://a2", first[OTHER]: "https://b"}


def test_a_document_shared_by_targets_is_stored_once(repo: Repository) -> None:
    ids = repo.ensure_targets([(KEY, "u1"), (OTHER, "u2")])
    repo.record_snapshot(ids[KEY], None, stored(DOC_A), [], ok(KEY, T0))
    repo.record_snapshot(ids[OTHER], None, stored(DOC_A), [], ok(OTHER, T0))
    assert count(repo, Document) == 1
    assert count(repo, Snapshot) == 2


def test_a_batch_of_unchanged_polls_moves_last_seen_and_adds_no_row(repo: Repository) -> None:
    ids = repo.ensure_targets([(KEY, "u"), (OTHER, "u2")])
    sid = repo.record_snapshot(ids[KEY], None, stored(DOC_A), [], ok(KEY, T0), transition=True)
    repo.record_snapshot(ids[OTHER], None, stored(DOC_A), [], ok(OTHER, T0), transition=True)
    later = T0 + timedelta(minutes=5)

    repo.flush_seen([Seen(ids[KEY], later, later, sid), Seen(ids[OTHER], later, None, None)])

    [snapshot] = repo.snapshots(ids[KEY])
    assert snapshot.last_seen == later
    states = repo.load_states([ids[KEY], ids[OTHER]])
    assert states[ids[KEY]].last_poll_at == later and states[ids[KEY]].last_success_at == later
    assert states[ids[OTHER]].last_poll_at == later and states[ids[OTHER]].last_success_at == T0  # kept
    assert count(repo, Document) == 1 and count(repo, Snapshot) == 2 and count(repo, PollTransition) == 2


def test_a_change_is_stored_with_its_snapshot(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    first = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0))
    second = repo.record_snapshot(tid, first, stored(DOC_B), [CHANGE], ok(KEY, T0 + timedelta(hours=1)))
    [record] = repo.history(HistoryFilter())
    assert record.snapshot_id == second
    assert (record.path, record.rule, record.severity) == ("/properties/b", "property-added", Severity.INFO)
    assert record.old is ABSENT and record.new == {"type": "integer"}
    assert record.from_sha256 == stored(DOC_A).sha256 and record.to_sha256 == stored(DOC_B).sha256
    assert record.as_json()["old_present"] is False


def test_a_stale_base_is_a_conflict_and_writes_nothing(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    first = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0))
    repo.record_snapshot(tid, first, stored(DOC_B), [CHANGE], ok(KEY, T0 + timedelta(hours=1)))
    with pytest.raises(SnapshotConflictError):
        repo.record_snapshot(tid, first, stored(DOC_B), [CHANGE], ok(KEY, T0 + timedelta(hours=2)))
    assert count(repo, ChangeRow) == 1 and count(repo, Snapshot) == 2


def test_first_snapshots_are_written_as_one_batch_leaving_out_conflicts_and_lost_leases(repo: Repository) -> None:
    keys = [TargetKey("c", f"r{i}", "images") for i in range(4)]
    ids = repo.ensure_targets([(key, "u") for key in keys])
    other_writer = repo.record_snapshot(ids[keys[0]], None, stored(DOC_B), [], ok(keys[0], T0))
    held = CoordinationStore(repo.engine).sync("a", 30, [ids[key] for key in keys[:3]])  # keys[3]: not ours
    firsts = [FirstSnapshot(ids[k], stored(DOC_A), replace(ok(k, T0), first_snapshot=True), transition=True)
              for k in keys]  # fmt: skip

    recorded = repo.record_firsts(firsts, Fence("a", epochs={ids[k]: held.get(ids[k], 1) for k in keys}))

    assert recorded.conflicts == {ids[keys[0]]} and recorded.fenced == {ids[keys[3]]}
    assert set(recorded.snapshots) == {ids[keys[1]], ids[keys[2]]}
    states = repo.load_states(list(ids.values()))
    for key in keys[1:3]:
        state = states[ids[key]]
        assert state.snapshot_id == recorded.snapshots[ids[key]] and state.document is not None
        assert state.document.sha256 == stored(DOC_A).sha256
        assert state.last_poll_ok is True and state.last_success_at == T0 and state.last_poll_at == T0
    assert states[ids[keys[0]]].snapshot_id == other_writer and states[ids[keys[3]]].snapshot_id is None
    assert count(repo, Snapshot) == 3 and count(repo, PollTransition) == 2 and count(repo, Document) == 2


def test_a_failed_batch_of_first_snapshots_writes_nothing(repo: Repository) -> None:
    keys = [TargetKey("c", f"r{i}", "images") for i in range(3)]
    ids = repo.ensure_targets([(key, "u") for key in keys])
    fail_inserts(repo.engine, "poll_transitions")
    firsts = [FirstSnapshot(ids[k], stored(DOC_A), ok(k, T0), transition=True) for k in keys]
    with pytest.raises(StoreError) as info:
        repo.record_firsts(firsts)
    assert info.value.operation == "record_snapshot"
    assert count(repo, Snapshot) == 0 and count(repo, Document) == 0


def test_a_failed_change_write_leaves_neither_snapshot_nor_change(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    first = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0))
    fail_inserts(repo.engine, "changes")
    with pytest.raises(StoreError) as info:
        repo.record_snapshot(tid, first, stored(DOC_B), [CHANGE], ok(KEY, T0 + timedelta(hours=1)))
    assert info.value.operation == "record_snapshot"
    assert count(repo, Snapshot) == 1 and count(repo, ChangeRow) == 0 and count(repo, Document) == 1
    assert count(repo, PollTransition) == 0


def test_history_filters(repo: Repository) -> None:
    ids = repo.ensure_targets([(KEY, "u1"), (OTHER, "u2")])
    for key in (KEY, OTHER):
        first = repo.record_snapshot(ids[key], None, stored(DOC_A), [], ok(key, T0))
        breaking = Change("/properties/a", "property-removed", Severity.BREAKING, {"type": "string"}, ABSENT)
        when = T0 + (timedelta(days=2) if key == OTHER else timedelta(hours=1))
        repo.record_snapshot(ids[key], first, stored(DOC_B), [CHANGE, breaking], ok(key, when))
    assert len(repo.history(HistoryFilter())) == 4
    assert {r.target for r in repo.history(HistoryFilter(region="r2"))} == {OTHER}
    assert [r.rule for r in repo.history(HistoryFilter(min_severity=Severity.WARNING))] == ["property-removed"] * 2
    assert len(repo.history(HistoryFilter(since=T0 + timedelta(days=1)))) == 2
    assert len(repo.history(HistoryFilter(limit=1))) == 1


def test_load_states_restores_the_latest_snapshot_and_times(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    first = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0))
    second = repo.record_snapshot(tid, first, stored(DOC_B), [CHANGE], ok(KEY, T0 + timedelta(hours=1)))
    failed = PollResult(KEY, T0 + timedelta(hours=2), 0.2, ok=False, reason=FailureReason.HTTP_503, http_status=503)
    repo.record_transition(tid, failed)
    state = repo.load_states([tid])[tid]
    assert state.snapshot_id == second
    assert state.document is not None and json.loads(state.document.body) == DOC_B
    assert state.last_poll_ok is False and state.last_reason is FailureReason.HTTP_503
    assert state.last_poll_at == T0 + timedelta(hours=2)
    assert state.last_success_at == T0 + timedelta(hours=1)
    assert state.last_change_at == T0 + timedelta(hours=1)


def test_load_states_answers_for_many_targets_at_once(repo: Repository) -> None:
    keys = [TargetKey("c", f"r{i}", "images") for i in range(2100)]  # more than a few batches: read over every target
    ids = repo.ensure_targets([(key, f"u{i}") for i, key in enumerate(keys)])
    for key in keys[::100]:
        repo.record_snapshot(ids[key], None, stored(DOC_A), [], ok(key, T0), transition=True)

    states = repo.load_states(list(ids.values()))

    assert len(states) == 2100
    with_documents = {tid for tid, state in states.items() if state.document is not None}
    assert with_documents == {ids[key] for key in keys[::100]}
    assert all(states[ids[key]].last_poll_ok is None for key in keys[1:100])
    some = [ids[key] for key in keys[:700]]  # more than a batch, fewer than all: the others are left out
    assert repo.load_states(some) == {tid: states[tid] for tid in some}


def test_transitions_tell_when_a_target_started_failing_and_why(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0), transition=True)
    down = PollResult(KEY, T0 + timedelta(hours=1), 0.2, ok=False, reason=FailureReason.HTTP_503, http_status=503,
                      error="HTTP 503")  # fmt: skip
    repo.record_transition(tid, down)
    repo.record_transition(tid, ok(KEY, T0 + timedelta(hours=2)))

    [first, failing, recovered] = repo.transitions(tid)

    assert first.ok and first.started_at == T0
    assert (failing.ok, failing.reason, failing.http_status, failing.error) == (
        False, FailureReason.HTTP_503, 503, "HTTP 503",
    )  # fmt: skip
    assert failing.started_at == T0 + timedelta(hours=1)
    assert recovered.ok and recovered.started_at == T0 + timedelta(hours=2)


def test_prune_removes_old_transitions_but_keeps_each_targets_current_one(repo: Repository) -> None:
    ids = repo.ensure_targets([(KEY, "u"), (OTHER, "u2")])
    repo.record_snapshot(ids[KEY], None, stored(DOC_A), [], ok(KEY, T0), transition=True)
    repo.record_transition(ids[KEY], PollResult(KEY, T0 + timedelta(days=1), 0.1, ok=False,
                                                reason=FailureReason.TIMEOUT))  # fmt: skip
    repo.record_transition(ids[KEY], ok(KEY, T0 + timedelta(days=40)))
    repo.record_transition(ids[OTHER], ok(OTHER, T0))  # old, but its target's only one

    assert repo.prune_transitions(T0 + timedelta(days=10)) == 2

    assert [t.started_at for t in repo.transitions(ids[KEY])] == [T0 + timedelta(days=40)]
    assert [t.started_at for t in repo.transitions(ids[OTHER])] == [T0]
    assert len(repo.snapshots(ids[KEY])) == 1


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert int(conn.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 1000


def test_postgresql_behind_is_refused_until_db_upgrade(pg_server: str) -> None:
    name = create_pg_database()
    try:
        cloud = {"name": "c", "endpoint": "https://x", "regions": ["r"]}
        config = parse_config({"database": {"url": pg_server + name}, "clouds": [cloud]})
        with pytest.raises(StartupError, match="db upgrade"):
            open_database(config)
        engine = make_engine(pg_server + name)
        upgrade(engine)
        engine.dispose()
        open_database(config).dispose()
    finally:
        drop_pg_database(name)


def test_migrations_create_exactly_the_models(repo: Repository) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from monitor.store.tables import Base

    with repo.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert differences == []


def test_the_poll_rows_of_an_older_database_become_transitions(db_url: str) -> None:
    from alembic import command

    from monitor.store.engine import _alembic_config

    engine = make_engine(db_url)
    command.upgrade(_alembic_config(engine), "0004")
    rows = [("success", None), ("success", None), ("failure", "http_503"), ("failure", "http_503"),
            ("failure", "timeout"), ("success", None), ("success", None)]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO targets (id, cloud, region, schema, url, created_at) "
                          "VALUES (1, 'c', 'r1', 'images', 'u', :t)"), {"t": T0})  # fmt: skip
        insert = text("INSERT INTO poll_outcomes (target_id, started_at, duration, outcome, reason) "
                      "VALUES (1, :at, 0.1, :outcome, :reason)")  # fmt: skip
        for minute, (outcome, reason) in enumerate(rows):
            conn.execute(insert, {"at": T0 + timedelta(minutes=minute), "outcome": outcome, "reason": reason})

    upgrade(engine)

    repository = Repository(engine)
    transitions = repository.transitions(1)
    assert [(t.ok, t.reason and t.reason.value) for t in transitions] == [
        (True, None), (False, "http_503"), (False, "timeout"), (True, None),
    ]  # fmt: skip
    assert [t.started_at for t in transitions] == [T0 + timedelta(minutes=m) for m in (0, 2, 4, 5)]
    state = repository.load_states([1])[1]
    assert state.last_poll_at == T0 + timedelta(minutes=6) and state.last_success_at == T0 + timedelta(minutes=6)
    engine.dispose()
