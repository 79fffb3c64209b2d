"""The repository on SQLite and on the real PostgreSQL: the same tests for both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from monitor.app import StartupError, open_database
from monitor.canonical import canonical_json, count_properties, document_sha256
from monitor.config import parse_config
from monitor.domain import ABSENT, Change, PollResult, Severity, TargetKey
from monitor.store.engine import current_revision, head_revision, make_engine, upgrade
from monitor.store.repository import HistoryFilter, Repository, SnapshotConflictError, StoredDocument, StoreError
from monitor.store.tables import ChangeRow, Document, PollOutcome, Snapshot
from tests.conftest import create_pg_database, drop_pg_database, fail_inserts

KEY = TargetKey("c", "r1", "images")
OTHER = TargetKey("c", "r2", "images")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def repo(db_url: str) -> Repository:
    engine = make_engine(db_url)
    upgrade(engine)
    return Repository(engine)


def stored(doc: dict[str, object]) -> StoredDocument:
    canonical = canonical_json(doc)
    return StoredDocument(document_sha256(canonical), canonical, len(canonical), count_properties(doc))


def ok(key: TargetKey, at: datetime, changes: tuple[Change, ...] = ()) -> PollResult:
    return PollResult(key, at, 0.1, ok=True, http_status=200, changes=changes)


DOC_A = {"type": "object", "properties": {"a": {"type": "string"}}}
DOC_B = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
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
        urls = dict(conn.execute(text("SELECT id, url FROM targets")).all())
    assert urls == {first[KEY]: "https://a2", first[OTHER]: "https://b"}


def test_a_document_shared_by_targets_is_stored_once(repo: Repository) -> None:
    ids = repo.ensure_targets([(KEY, "u1"), (OTHER, "u2")])
    repo.record_snapshot(ids[KEY], None, stored(DOC_A), [], ok(KEY, T0))
    repo.record_snapshot(ids[OTHER], None, stored(DOC_A), [], ok(OTHER, T0))
    assert count(repo, Document) == 1
    assert count(repo, Snapshot) == 2


def test_an_unchanged_poll_moves_last_seen_and_adds_no_snapshot(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    sid = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0))
    repo.record_unchanged(tid, sid, ok(KEY, T0 + timedelta(minutes=5)))
    snapshots = repo.snapshots(tid)
    assert len(snapshots) == 1
    assert snapshots[0].last_seen == T0 + timedelta(minutes=5)
    assert count(repo, Document) == 1
    assert repo.poll_count(tid) == 2


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


def test_a_failed_change_write_leaves_neither_snapshot_nor_change(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    first = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0))
    fail_inserts(repo.engine, "changes")
    with pytest.raises(StoreError) as info:
        repo.record_snapshot(tid, first, stored(DOC_B), [CHANGE], ok(KEY, T0 + timedelta(hours=1)))
    assert info.value.operation == "record_snapshot"
    assert count(repo, Snapshot) == 1 and count(repo, ChangeRow) == 0 and count(repo, Document) == 1
    assert count(repo, PollOutcome) == 1


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
    failed = PollResult(KEY, T0 + timedelta(hours=2), 0.2, ok=False, reason=None, http_status=503)
    repo.record_poll(tid, failed)
    state = repo.load_states([tid])[tid]
    assert state.snapshot_id == second
    assert state.document is not None and json.loads(state.document.body) == DOC_B
    assert state.last_poll_ok is False and state.last_poll_at == T0 + timedelta(hours=2)
    assert state.last_success_at == T0 + timedelta(hours=1)
    assert state.last_change_at == T0 + timedelta(hours=1)


def test_prune_removes_only_old_poll_rows(repo: Repository) -> None:
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    sid = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(KEY, T0))
    repo.record_unchanged(tid, sid, ok(KEY, T0 + timedelta(days=40)))
    assert repo.prune_polls(T0 + timedelta(days=10)) == 1
    assert count(repo, PollOutcome) == 1
    assert len(repo.snapshots(tid)) == 1


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
