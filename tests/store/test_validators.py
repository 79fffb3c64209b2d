"""The HTTP validators of snapshots (migration 0009) on SQLite and on the real PostgreSQL: written with the
batched poll times, restored for the target's latest snapshot only, fenced like the poll times; and the
migration itself, up and down, keeping every row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import Engine, inspect, text

from monitor.domain import PollResult, TargetKey
from monitor.store.engine import _alembic_config, make_engine, upgrade
from monitor.store.records import Fence, Seen, SnapshotValidators, Validators
from monitor.store.repository import Repository
from tests.support.stored import DOC_A, DOC_B, stored

KEY = TargetKey("c", "r1", "images")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ETAG = Validators('"abc"', "Tue, 01 Dec 2026 19:22:57 GMT")


def ok(at: datetime) -> PollResult:
    return PollResult(KEY, at, 0.1, ok=True, http_status=200)


def repository(url: str) -> Repository:
    engine = make_engine(url)
    upgrade(engine)
    return Repository(engine)


def test_validators_are_written_with_the_poll_times_and_restored_for_the_latest_snapshot(db_url: str) -> None:
    repo = repository(db_url)
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    first = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(T0))
    assert repo.load_states([tid])[tid].validators is None  # a new snapshot holds none

    later = T0 + timedelta(minutes=5)
    repo.flush_seen([Seen(tid, later, later, first)], validators=[SnapshotValidators(tid, first, ETAG)])
    state = repo.load_states([tid])[tid]
    assert state.validators == ETAG and state.last_success_at == later

    repo.flush_seen([], validators=[SnapshotValidators(tid, first, Validators('"def"', None))])  # alone, too
    assert repo.load_states([tid])[tid].validators == Validators('"def"', None)

    repo.record_snapshot(tid, first, stored(DOC_B), [], ok(T0 + timedelta(hours=1)))
    assert repo.load_states([tid])[tid].validators is None  # they describe the old document, not this one
    repo.engine.dispose()


def test_validators_of_a_target_whose_lease_is_gone_are_not_written(migrated_db_url: str) -> None:
    repo = repository(migrated_db_url)
    tid = repo.ensure_targets([(KEY, "u")])[KEY]
    sid = repo.record_snapshot(tid, None, stored(DOC_A), [], ok(T0))

    repo.flush_seen([], Fence("replica-a", epochs={tid: 1}), [SnapshotValidators(tid, sid, ETAG)])

    assert repo.load_states([tid])[tid].validators is None  # replica-a holds no lease on it: fenced out
    repo.engine.dispose()


def test_migration_0009_adds_the_columns_and_goes_back_down_keeping_the_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    config = _alembic_config(engine)
    command.upgrade(config, "0008")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO targets (id, cloud, region, schema, url, created_at) "
                          "VALUES (1, 'c', 'r1', 'images', 'u', :t)"), {"t": T0})  # fmt: skip
        conn.execute(text("INSERT INTO documents (sha256, body, size, properties, created_at) "
                          "VALUES ('s', '{}', 2, 0, :t)"), {"t": T0})  # fmt: skip
        conn.execute(text("INSERT INTO snapshots (id, target_id, document_sha256, first_seen, last_seen) "
                          "VALUES (1, 1, 's', :t, :t)"), {"t": T0})  # fmt: skip

    command.upgrade(config, "0009")
    assert {"etag", "last_modified"} <= snapshot_columns(engine)
    Repository(engine).flush_seen([], validators=[SnapshotValidators(1, 1, ETAG)])
    assert Repository(engine).load_states([1])[1].validators == ETAG

    command.downgrade(config, "0008")
    assert not {"etag", "last_modified"} & snapshot_columns(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, document_sha256 FROM snapshots")).all() == [(1, "s")]
    command.upgrade(config, "head")
    assert Repository(engine).load_states([1])[1].validators is None  # back up: none, until the next proof
    engine.dispose()


def snapshot_columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("snapshots")}
