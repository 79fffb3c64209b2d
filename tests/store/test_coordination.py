"""Replica coordination on SQLite, on PostgreSQL directly and through a real PgBouncer (transaction pooling).

Each "replica" is a CoordinationStore with its own engine (its own connections), as separate processes
would have; the SIGSTOP tests use real child processes. TTLs are 1-3 s; waits poll with generous
deadlines so a loaded machine makes the tests slower, not red.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.domain import TargetKey
from monitor.ha.ownership import assign
from monitor.store.coordination import CoordinationStore, check_fence, check_fences, check_singleton
from monitor.store.engine import _alembic_config, make_engine, upgrade
from monitor.store.records import FencedError
from monitor.store.repository import Repository
from tests.conftest import create_pg_database, drop_pg_database
from tests.support import pgbouncer as bouncers
from tests.support.pgbouncer import PgBouncer, terminate_backends

pytestmark = pytest.mark.slow  # waits out real lease TTLs, on three backends

T = TypeVar("T")
DEADLINE_S = 30.0
ROOT = Path(__file__).resolve().parents[2]
start_pgbouncer = bouncers.start_pgbouncer  # the fixture, used through `backend`
PG_ONLY = pytest.mark.parametrize("backend", ["postgresql", "pgbouncer"], indirect=True)


@dataclass
class Backend:
    """A migrated database and how to reach it; ``store()`` gives each replica its own engine."""

    kind: str
    url: str
    database: str = ""  # PostgreSQL database name
    bouncer: PgBouncer | None = None
    engines: list[Engine] = field(default_factory=list)

    def engine(self) -> Engine:
        engine = make_engine(self.url)
        self.engines.append(engine)
        return engine

    def store(self) -> CoordinationStore:
        return CoordinationStore(self.engine())

    def targets(self, count: int) -> list[int]:
        keys = [(TargetKey("c", f"r{i}", "images"), f"https://r{i}") for i in range(count)]
        return sorted(Repository(self.engine()).ensure_targets(keys).values())

    def audit(self) -> list[tuple[int, int, str, int]]:
        """The fenced writes that committed: (id, target, owner, epoch) in id order."""
        with self.engines[0].connect() as conn:
            rows = conn.execute(text("SELECT id, target_id, owner, epoch FROM fence_audit ORDER BY id"))
            return [(int(a), int(b), str(c), int(d)) for a, b, c, d in rows]


@pytest.fixture(params=["sqlite", "postgresql", "pgbouncer"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield from _prepared(Backend("sqlite", f"sqlite:///{tmp_path / 'monitor.db'}"))
        return
    request.getfixturevalue("pg_server")
    bouncer = request.getfixturevalue("start_pgbouncer")() if request.param == "pgbouncer" else None
    name = create_pg_database()
    url = bouncer.url(name) if bouncer else f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        yield from _prepared(Backend(request.param, url, name, bouncer))
    finally:
        if bouncer is not None:
            bouncer.stop()
        drop_pg_database(name)


def _prepared(backend: Backend) -> Iterator[Backend]:
    engine = backend.engine()
    upgrade(engine)
    serial = "BIGSERIAL PRIMARY KEY" if backend.kind != "sqlite" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE fence_audit (id {serial}, target_id BIGINT, owner TEXT, epoch BIGINT)"))
    try:
        yield backend
    finally:
        for engine in backend.engines:
            engine.dispose()


def eventually(probe: Callable[[], T | None], what: str, deadline: float = DEADLINE_S) -> T:
    """Call ``probe`` until it returns something other than None/False; fails after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"not within {deadline}s: {what}")


def fenced_write(store: CoordinationStore, replica: str, target_id: int, epoch: int) -> None:
    """A write that depends on holding the lease: raises FencedError when it does not."""

    def work(session: Session) -> None:
        check_fence(session, replica, target_id, epoch)
        _audit(session, target_id, replica, epoch)

    store._run("write", work)


def _audit(session: Session, target_id: int, owner: str, epoch: int) -> None:
    session.execute(
        text("INSERT INTO fence_audit (target_id, owner, epoch) VALUES (:t, :o, :e)"),
        {"t": target_id, "o": owner, "e": epoch},
    )


# --- membership ----------------------------------------------------------------------------------


def test_heartbeat_lists_the_live_replicas_and_drops_one_after_its_ttl(backend: Backend) -> None:
    a, b = backend.store(), backend.store()
    first = a.heartbeat("monitor-a", 30, {"version": "1.0", "pid": 11})
    b.heartbeat("monitor-b", 1, {})
    seen = a.heartbeat("monitor-a", 30, {"version": "1.1", "pid": 11})
    assert seen.live == ("monitor-a", "monitor-b")
    assert seen.me.info == {"version": "1.1", "pid": 11}
    assert seen.me.started_at == first.me.started_at and seen.me.heartbeat_at > first.me.heartbeat_at
    assert seen.me.expires_at > seen.now
    eventually(lambda: a.heartbeat("monitor-a", 30, {}).live == ("monitor-a",), "monitor-b expires")


def test_a_replica_coming_back_after_expiry_gets_a_new_start_time(backend: Backend) -> None:
    a, b = backend.store(), backend.store()
    first = a.heartbeat("monitor-a", 1, {})
    eventually(lambda: b.heartbeat("monitor-b", 30, {}).live == ("monitor-b",), "monitor-a expires")
    assert a.heartbeat("monitor-a", 1, {}).me.started_at > first.me.started_at


def test_replicas_long_expired_are_forgotten(backend: Backend) -> None:
    a, b = backend.store(), backend.store()
    a.heartbeat("monitor-a", 1, {})
    b.heartbeat("monitor-b", 30, {})
    assert a.forget_replicas(3600) == 0
    eventually(lambda: a.forget_replicas(0.5) == 1, "monitor-a is forgotten half a second after expiry")
    with backend.engines[0].connect() as conn:
        assert conn.execute(text("SELECT name FROM replicas")).scalars().all() == ["monitor-b"]


def test_invalid_names_and_ttls_are_refused(backend: Backend) -> None:
    store = backend.store()
    for call in (
        lambda: store.heartbeat("", 5, {}),
        lambda: store.sync("x" * 129, 5, []),
        lambda: store.sync("a", 0, []),
        lambda: store.singleton("", "a", 5),
    ):
        with pytest.raises(ValueError):
            call()


# --- target leases -------------------------------------------------------------------------------


def test_sync_claims_free_targets_and_never_takes_a_live_lease(backend: Backend) -> None:
    ids = backend.targets(6)
    a, b = backend.store(), backend.store()
    assert a.sync("a", 30, ids) == dict.fromkeys(ids, 1)
    assert b.sync("b", 30, ids) == {}
    assert a.sync("a", 30, ids[:3]) == dict.fromkeys(ids[:3], 1)  # renews three, releases three
    assert b.sync("b", 30, ids) == dict.fromkeys(ids[3:], 2)  # released: taken at once, next epoch
    owners = {lease.target_id: (lease.owner, lease.epoch, lease.live) for lease in a.leases()}
    assert owners == {t: ("a", 1, True) if t in ids[:3] else ("b", 2, True) for t in ids}


def test_ids_that_are_not_targets_are_ignored(backend: Backend) -> None:
    ids = backend.targets(2)
    assert backend.store().sync("a", 30, [*ids, 999_999]) == dict.fromkeys(ids, 1)


def test_an_expired_lease_is_taken_over_with_a_higher_epoch(backend: Backend) -> None:
    ids = backend.targets(3)
    a, b = backend.store(), backend.store()
    assert a.sync("a", 1, ids) == dict.fromkeys(ids, 1)
    taken = eventually(lambda: b.sync("b", 30, ids), "b takes the expired leases")
    assert taken == dict.fromkeys(ids, 2)
    assert a.sync("a", 30, ids) == {}  # a's renewal comes too late
    assert {(lease.owner, lease.epoch) for lease in a.leases()} == {("b", 2)}


def test_a_replica_reclaiming_its_own_expired_lease_gets_a_new_epoch(backend: Backend) -> None:
    [target] = backend.targets(1)
    a = backend.store()
    assert a.sync("a", 1, [target]) == {target: 1}
    eventually(lambda: not a.leases()[0].live, "the lease expires")
    assert a.sync("a", 30, [target]) == {target: 2}
    with pytest.raises(FencedError):
        fenced_write(a, "a", target, 1)  # a write planned under the old tenure


def test_a_fenced_write_after_expiry_or_takeover_is_refused(backend: Backend) -> None:
    [target] = backend.targets(1)
    a, b = backend.store(), backend.store()
    epoch = a.sync("a", 1, [target])[target]
    fenced_write(a, "a", target, epoch)
    eventually(lambda: not a.leases()[0].live, "the lease expires")
    with pytest.raises(FencedError, match="no longer holds"):
        fenced_write(a, "a", target, epoch)  # expired, nobody took it yet
    new = b.sync("b", 30, [target])[target]
    with pytest.raises(FencedError):
        fenced_write(a, "a", target, epoch)  # taken over
    with pytest.raises(FencedError):
        fenced_write(a, "a", target, new)  # the right epoch is not enough: the owner must match too
    fenced_write(b, "b", target, new)
    assert [(owner, e) for _, _, owner, e in backend.audit()] == [("a", epoch), ("b", new)]


def test_the_batch_fence_returns_the_targets_still_held(backend: Backend) -> None:
    ids = backend.targets(4)
    a, b = backend.store(), backend.store()
    held = a.sync("a", 30, ids)
    a.sync("a", 30, ids[:2])  # releases ids[2:]
    b.sync("b", 30, ids[3:])  # takes ids[3]
    stale = {**held, ids[1]: held[ids[1]] + 7}
    assert a._run("write", lambda session: check_fences(session, "a", stale)) == {ids[0]}


def test_leave_releases_every_lease_and_singleton_at_once(backend: Backend) -> None:
    ids = backend.targets(4)
    a, b = backend.store(), backend.store()
    a.heartbeat("a", 30, {})
    a.sync("a", 30, ids)
    assert a.singleton("prune", "a", 30) == 1
    a.leave("a")
    assert b.heartbeat("b", 30, {}).live == ("b",)
    assert b.sync("b", 30, ids) == dict.fromkeys(ids, 2)  # no wait for the 30 s TTL
    assert b.singleton("prune", "b", 30) == 2


# --- leader leases -------------------------------------------------------------------------------


def test_a_singleton_has_one_holder_until_it_expires(backend: Backend) -> None:
    a, b = backend.store(), backend.store()
    assert a.singleton("dispatch", "a", 1) == 1
    assert b.singleton("dispatch", "b", 1) is None
    assert a.singleton("dispatch", "a", 1) == 1  # renewed in time: same epoch
    assert b.singleton("prune", "b", 30) == 1  # another name is another lease
    assert eventually(lambda: b.singleton("dispatch", "b", 30), "b takes over the expired lease") == 2
    assert a.singleton("dispatch", "a", 1) is None
    with pytest.raises(FencedError):
        a._run("write", lambda session: check_singleton(session, "dispatch", "a", 1))
    b._run("write", lambda session: check_singleton(session, "dispatch", "b", 2))


@PG_ONLY
def test_racing_replicas_never_hold_a_singleton_at_the_same_epoch(backend: Backend) -> None:
    holders: dict[int, set[str]] = defaultdict(set)
    errors: list[BaseException] = []

    def race(name: str) -> None:
        store, end = backend.store(), time.monotonic() + 4
        while time.monotonic() < end:
            try:
                epoch = store.singleton("settle", name, 0.3)
                if epoch is not None:
                    holders[epoch].add(name)
                    if random.random() < 0.3:
                        time.sleep(0.5)  # paused past the 0.3 s lease: the write must be refused
                    store._run("write", partial(_write_as_leader, lease="settle", replica=name, epoch=epoch))
            except FencedError:
                pass  # held a moment ago, expired before the write: refused, as it should be
            except BaseException as exc:  # reported below
                errors.append(exc)
            time.sleep(random.uniform(0, 0.2))

    _run_threads(race, [f"r{i}" for i in range(4)])
    assert errors == []
    assert all(len(names) == 1 for names in holders.values()), holders
    assert len(holders) >= 2  # the lease changed hands at least once
    _assert_epochs_ordered(backend.audit())


# --- concurrency ---------------------------------------------------------------------------------


# Checked by PostgreSQL itself during the race: a change of holder only ever takes an expired lease,
# and moves the epoch on by exactly one.
TAKEOVER_GUARD = """
CREATE FUNCTION guard_takeover() RETURNS trigger AS $$
BEGIN
    IF OLD.expires_at > clock_timestamp() THEN
        RAISE EXCEPTION 'live lease of target % taken from % by %', OLD.target_id, OLD.owner, NEW.owner;
    END IF;
    IF NEW.epoch <> OLD.epoch + 1 THEN
        RAISE EXCEPTION 'epoch of target % went from % to %', OLD.target_id, OLD.epoch, NEW.epoch;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER guard_takeover BEFORE UPDATE ON target_leases FOR EACH ROW
    WHEN (OLD.owner <> NEW.owner OR OLD.epoch <> NEW.epoch) EXECUTE FUNCTION guard_takeover();
"""


@PG_ONLY
def test_concurrent_claims_never_give_a_target_two_owners(backend: Backend) -> None:
    ids = backend.targets(24)
    with backend.engines[0].begin() as conn:
        conn.execute(text(TAKEOVER_GUARD))
    reported: dict[tuple[int, int], set[str]] = defaultdict(set)
    refused: list[int] = []
    errors: list[BaseException] = []

    def replica(name: str) -> None:
        store, rng, end = backend.store(), random.Random(name), time.monotonic() + 5
        while time.monotonic() < end:
            try:
                live = store.heartbeat(name, 1.0, {}).live
                wanted = ids if rng.random() < 0.5 else [t for t, r in assign(ids, live).items() if r == name]
                held = store.sync(name, 1.0, wanted)
                for target, epoch in held.items():
                    reported[(target, epoch)].add(name)
                if rng.random() < 0.15:
                    time.sleep(1.3)  # paused past the lease: the write below must skip what was lost
                written = store._run("write", partial(_write_held, replica=name, held=held))
                refused.append(len(held) - written)
            except BaseException as exc:  # reported below
                errors.append(exc)

    _run_threads(replica, [f"r{i}" for i in range(4)])
    assert errors == []
    assert all(len(owners) == 1 for owners in reported.values())
    assert sum(refused) > 0  # the pauses did lose leases, and their writes were refused
    audit = backend.audit()
    _assert_epochs_ordered(audit)
    assert max(epoch for _, _, _, epoch in audit) > 1  # leases did change hands under contention


def _write_as_leader(session: Session, lease: str, replica: str, epoch: int) -> None:
    check_singleton(session, lease, replica, epoch)
    _audit(session, 0, replica, epoch)


def _write_held(session: Session, replica: str, held: dict[int, int]) -> int:
    """Write every target still held; returns how many."""
    still = sorted(check_fences(session, replica, held))
    for target in still:
        _audit(session, target, replica, held[target])
    return len(still)


def _assert_epochs_ordered(audit: list[tuple[int, int, str, int]]) -> None:
    """Per target, committed writes never go back to an older epoch, and each epoch has one writer."""
    last: dict[int, int] = {}
    writers: dict[tuple[int, int], set[str]] = defaultdict(set)
    for _, target, owner, epoch in audit:
        assert epoch >= last.get(target, 0), f"target {target}: epoch {epoch} written after {last[target]}"
        last[target] = epoch
        writers[(target, epoch)].add(owner)
    assert all(len(owners) == 1 for owners in writers.values()), writers


def _run_threads(body: Callable[[str], None], names: list[str]) -> None:
    threads = [threading.Thread(target=body, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)


@PG_ONLY
def test_a_write_in_progress_holds_off_a_takeover_until_it_commits(backend: Backend) -> None:
    [target] = backend.targets(1)
    a, b = backend.store(), backend.store()
    epoch = a.sync("a", 1, [target])[target]
    fenced, release = threading.Event(), threading.Event()

    def slow_write(session: Session) -> None:
        check_fence(session, "a", target, epoch)
        fenced.set()
        release.wait(DEADLINE_S)  # the lease expires meanwhile
        _audit(session, target, "a", epoch)

    writer = threading.Thread(target=lambda: a._run("write", slow_write))
    writer.start()
    assert fenced.wait(DEADLINE_S)
    eventually(lambda: not next(iter(b.leases())).live, "a's lease expires during the write")
    assert b.sync("b", 30, [target]) == {}  # the row is share-locked by the write: skipped, not waited for
    release.set()
    writer.join(DEADLINE_S)
    assert eventually(lambda: b.sync("b", 30, [target]), "b takes over after the commit") == {target: 2}
    assert [(owner, e) for _, _, owner, e in backend.audit()] == [("a", epoch)]


# --- faults --------------------------------------------------------------------------------------

CHILD = r"""
import sys
from sqlalchemy import text
from sqlalchemy.orm import Session
from monitor.store.coordination import CoordinationStore, FencedError, check_fence
from monitor.store.engine import make_engine

url, target, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
engine = make_engine(url)
store = CoordinationStore(engine)
epoch = store.sync("paused", 1.0, [target])[target]
insert = text("INSERT INTO fence_audit (target_id, owner, epoch) VALUES (:t, 'paused', :e)")

def write(session):
    check_fence(session, "paused", target, epoch, idle_timeout=1.0)
    session.execute(insert, {"t": target, "e": epoch})

try:
    if mode == "between":  # paused between its lease renewal and its write
        print("holding", epoch, flush=True)
        sys.stdin.readline()
        store._run("write", write)
    else:  # paused inside the write transaction, after the fence check
        with Session(engine) as session, session.begin():
            check_fence(session, "paused", target, epoch, idle_timeout=1.0)
            print("holding", epoch, flush=True)
            sys.stdin.readline()
            session.execute(insert, {"t": target, "e": epoch})
    print("committed", flush=True)
except FencedError:
    print("fenced", flush=True)
except Exception as exc:
    print("refused", type(exc).__name__, flush=True)
"""


def _read_line(process: subprocess.Popen[str], timeout: float = DEADLINE_S) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the child process said nothing"
    return process.stdout.readline().strip()


@PG_ONLY
@pytest.mark.parametrize("mode", ["between", "inside"])
def test_a_replica_paused_past_its_lease_cannot_write(backend: Backend, mode: str) -> None:
    """SIGSTOP a real process holding a lease; once another replica took it over, its write is refused.

    ``inside``: paused in the write transaction with the lease row share-locked; PostgreSQL ends that
    transaction after ``idle_timeout`` so the takeover is not blocked for ever.
    """
    [target] = backend.targets(1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, backend.url, str(target), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert _read_line(child) == "holding 1"
        child.send_signal(signal.SIGSTOP)
        b = backend.store()
        assert eventually(lambda: b.sync("b", 30, [target]), "b takes the paused replica's lease") == {target: 2}
        child.send_signal(signal.SIGCONT)
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        outcome = _read_line(child)
    finally:
        child.kill()
        child.wait()
    # between: the fence check refuses; inside: the transaction's connection was ended by PostgreSQL
    assert outcome.startswith(("fenced",) if mode == "between" else ("refused", "fenced")), outcome
    assert backend.audit() == []
    fenced_write(b, "b", target, 2)


@PG_ONLY
def test_coordination_survives_postgresql_terminating_its_backends(backend: Backend) -> None:
    ids = backend.targets(3)
    a = backend.store()
    a.heartbeat("a", 30, {})
    assert a.sync("a", 30, ids) == dict.fromkeys(ids, 1)
    assert terminate_backends(backend.database) >= 1
    assert a.heartbeat("a", 30, {}).live == ("a",)  # the next call reconnects
    assert a.sync("a", 30, ids) == dict.fromkeys(ids, 1)  # and the leases were not lost
    assert a.singleton("prune", "a", 30) == 1


@PG_ONLY
def test_a_write_interrupted_by_a_backend_termination_is_retried_whole(backend: Backend) -> None:
    [target] = backend.targets(1)
    a = backend.store()
    epoch = a.sync("a", 30, [target])[target]
    attempts: list[int] = []

    def write(session: Session) -> None:
        check_fence(session, "a", target, epoch)
        attempts.append(1)
        if len(attempts) == 1:
            eventually(lambda: terminate_backends(backend.database) >= 1, "the backend is terminated")
        _audit(session, target, "a", epoch)

    a._run("write", write)
    assert len(attempts) == 2
    assert [(owner, e) for _, _, owner, e in backend.audit()] == [("a", epoch)]


@pytest.mark.parametrize("backend", ["pgbouncer"], indirect=True)
@pytest.mark.parametrize("fault", ["restart", "kill", "reconnect"])
def test_coordination_survives_pgbouncer_faults(backend: Backend, fault: str) -> None:
    ids = backend.targets(3)
    a = backend.store()
    assert a.sync("a", 30, ids) == dict.fromkeys(ids, 1)
    assert backend.bouncer is not None
    if fault == "restart":
        backend.bouncer.restart()
    elif fault == "kill":
        backend.bouncer.kill(backend.database)
    else:
        backend.bouncer.reconnect(backend.database)
    assert a.heartbeat("a", 30, {}).live == ("a",)
    assert a.sync("a", 30, ids) == dict.fromkeys(ids, 1)


# --- schema --------------------------------------------------------------------------------------


def test_only_one_open_rollout_per_cloud_and_schema_can_exist(backend: Backend) -> None:
    engine = backend.engines[0]
    insert = text(
        "INSERT INTO rollouts (cloud, schema, to_sha256, started_at, completed_at, expected) "
        "VALUES ('c', :schema, 'x', CURRENT_TIMESTAMP, :done, false)"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"schema": "images", "done": None})
        conn.execute(insert, {"schema": "images", "done": "2026-01-01 00:00:00"})
        conn.execute(insert, {"schema": "images", "done": "2026-01-02 00:00:00"})
        conn.execute(insert, {"schema": "image", "done": None})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"schema": "images", "done": None})


def test_the_migration_closes_duplicate_open_rollouts_keeping_the_newest(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(_alembic_config(engine), "0004")
    insert = text(
        "INSERT INTO rollouts (id, cloud, schema, to_sha256, started_at, expected) "
        "VALUES (:id, 'c', :schema, 'x', :at, 0)"
    )
    with engine.begin() as conn:
        for row_id, schema, day in [(1, "images", 1), (2, "images", 3), (3, "image", 2), (4, "images", 2)]:
            conn.execute(insert, {"id": row_id, "schema": schema, "at": f"2026-01-0{day} 00:00:00.000000"})
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, completed_at, outcome FROM rollouts ORDER BY id")).all()
    engine.dispose()
    newest_start = "2026-01-03 00:00:00.000000"  # of id 2, the latest started open rollout of (c, images)
    assert [tuple(row) for row in rows] == [
        (1, newest_start, "superseded"),
        (2, None, None),
        (3, None, None),
        (4, newest_start, "superseded"),
    ]
