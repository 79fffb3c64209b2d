"""Coordination of monitor replicas sharing one PostgreSQL: heartbeats, target leases, leader leases.

Each public method is one short transaction (see :class:`~monitor.store.repository.Transactions`). The
protocol is in docs/high-availability.md; in short:

* ``replicas`` — every replica upserts its row with ``expires_at = now + ttl`` (:meth:`heartbeat`); the
  live replicas are the rows not expired, which every replica reads the same way.
* ``target_leases`` — one row per target: ``owner``, ``epoch``, ``expires_at``. A replica renews the leases
  it holds and wants, claims wanted ones that are free, expired or released, and releases (expires now)
  those it no longer wants (:meth:`sync`). Every change of holder increments ``epoch``; a write that
  depends on ownership checks ``(owner, epoch, expires_at)`` in its own transaction
  (:func:`check_fence`) and keeps the lease row share-locked until it commits, so a takeover can only
  commit after that write or make it fail.
* ``singleton_leases`` — the same with a name instead of a target, for work one replica does
  (:meth:`singleton`).

The guarantees come from the database, not from the code's timing: claims are conditional (``WHERE
expires_at <= now``, ``INSERT … ON CONFLICT DO NOTHING``), contended rows are skipped (``FOR UPDATE SKIP
LOCKED``), rows are locked in ``target_id`` order (no deadlocks), and "now" is always the database's
``clock_timestamp()`` — evaluated when the row is examined, even after a lock wait — never a replica's
clock. Nothing needs session state (no session advisory locks, no LISTEN/NOTIFY, only transaction-local
settings), so it all works through PgBouncer in transaction pooling mode.

On SQLite (one process, see :mod:`monitor.store.sqlite_lock`) the same statements run with the process
clock read once per transaction and without row locks (SQLite has a single writer, so the conditional
statements are still atomic); it works, it just has nobody to coordinate with.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Interval, case, delete, exists, func, literal, select, update
from sqlalchemy.orm import Session

from monitor.domain import utcnow
from monitor.store.base import Transactions, as_utc, dialect_insert
from monitor.store.records import FencedError, LeaseRecord, Membership, ReplicaRecord, StoreError
from monitor.store.tables import Replica, SingletonLease, Target, TargetLease

WHEN = DateTime(timezone=True)
CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's bind parameter limits
LOCK_TIMEOUT_S = 5.0  # a coordination statement waiting longer than this fails (and is retried next tick)
# A transaction holding lease locks that goes idle this long (its process paused or partitioned) is ended
# by PostgreSQL, which releases its locks so the lease can be taken over.
IDLE_IN_TRANSACTION_TIMEOUT_S = 10.0
MAX_NAME = 128

__all__ = [
    "CoordinationStore",
    "check_fence",
    "check_fences",
    "check_singleton",
]


def _utc(value: datetime) -> datetime:
    """In UTC (SQLite hands back naive values; psycopg gives the session's zone)."""
    return as_utc(value).astimezone(UTC)


class CoordinationStore(Transactions):
    """Heartbeats, target leases and leader leases; raises StoreError (rolled back) on database failures."""

    # --- membership ----------------------------------------------------------------------------

    def heartbeat(self, replica: str, ttl: float, info: Mapping[str, Any]) -> Membership:
        """Upsert ``replica``'s row, live for ``ttl`` seconds from the database's now; returns the membership.

        ``started_at`` is kept across heartbeats and reset when the row had expired (a new run).
        Raises ValueError for an empty or too long name or a non-positive ttl.
        """
        _check(replica, ttl)
        body = json.dumps(dict(info), sort_keys=True)

        def work(session: Session) -> Membership:
            clock = _Clock(session)
            _limit_waits(session)
            insert = dialect_insert(session)(Replica).values(
                name=replica, started_at=clock.now(), heartbeat_at=clock.now(), expires_at=clock.after(ttl), info=body
            )
            new = insert.excluded
            restarted = case((Replica.expires_at <= new.heartbeat_at, new.started_at), else_=Replica.started_at)
            changes = {"started_at": restarted, "heartbeat_at": new.heartbeat_at, "expires_at": new.expires_at}
            session.execute(insert.on_conflict_do_update(index_elements=["name"], set_={**changes, "info": new.info}))
            return _membership(session, clock, replica)

        return self._run("heartbeat", work)

    def forget_replicas(self, expired_for: float) -> int:
        """Delete the rows of replicas expired more than ``expired_for`` seconds ago; returns how many."""

        def work(session: Session) -> int:
            cutoff = _Clock(session).after(-expired_for)
            result = session.execute(delete(Replica).where(Replica.expires_at < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)

        return self._run("heartbeat", work)

    # --- target leases -------------------------------------------------------------------------

    def sync(self, replica: str, ttl: float, wanted: Collection[int]) -> dict[int, int]:
        """Bring ``replica``'s leases in line with ``wanted``; returns target id → epoch of every lease held.

        Renews (same epoch) the leases it holds and still wants; releases the ones it holds and no longer
        wants; claims (epoch + 1, or 1 for a first lease) wanted targets whose lease is free, expired or
        released. A lease another replica holds unexpired is never taken; one locked by a write or a claim
        in progress is skipped this time. Ids that are not targets are ignored.
        Raises ValueError like :meth:`heartbeat`.
        """
        _check(replica, ttl)
        want = set(wanted)

        def work(session: Session) -> dict[int, int]:
            clock = _Clock(session)
            _limit_waits(session)
            held = _lock_held(session, clock, replica)
            _release(session, clock, replica, sorted(held.keys() - want))
            result = _renew(session, clock, replica, ttl, sorted(held.keys() & want))
            missing = sorted(want - held.keys())
            result |= _take_free(session, clock, replica, ttl, missing)
            result |= _insert_new(session, clock, replica, ttl, [t for t in missing if t not in result])
            return result

        return self._run("leases", work)

    def leave(self, replica: str) -> None:
        """Hand everything over (a SIGTERM): delete ``replica``'s row, release its target and leader leases."""

        def work(session: Session) -> None:
            clock = _Clock(session)
            _limit_waits(session)
            _release(session, clock, replica, sorted(_lock_held(session, clock, replica)))
            session.execute(delete(Replica).where(Replica.name == replica))
            session.execute(
                update(SingletonLease)
                .where(SingletonLease.owner == replica, SingletonLease.expires_at > clock.now())
                .values(expires_at=clock.now())
            )

        self._run("leave", work)

    def leases(self) -> list[LeaseRecord]:
        """Every target lease, by target id, with whether it is live by the database's clock."""

        def work(session: Session) -> list[LeaseRecord]:
            live = (TargetLease.expires_at > _Clock(session).now()).label("live")
            rows = session.execute(select(TargetLease, live).order_by(TargetLease.target_id))
            return [LeaseRecord(r.target_id, r.owner, r.epoch, _utc(r.expires_at), bool(alive)) for r, alive in rows]

        return self._run("read", work)

    # --- leader leases -------------------------------------------------------------------------

    def singleton(self, name: str, replica: str, ttl: float) -> int | None:
        """Acquire or renew the leader lease ``name`` for ``ttl`` seconds; returns its epoch while held.

        None while another replica holds it unexpired (or is acquiring it right now). The epoch stays
        the same while ``replica`` renews in time and grows by one at every change of holder.
        """
        _check(replica, ttl)
        if not name or len(name) > 63:
            raise ValueError(f"invalid singleton name {name!r}")

        def work(session: Session) -> int | None:
            clock = _Clock(session)
            _limit_waits(session)
            first = dialect_insert(session)(SingletonLease).values(
                name=name, owner=replica, epoch=1, expires_at=clock.after(ttl)
            )
            first = first.on_conflict_do_nothing(index_elements=["name"])
            created = session.scalar(first.returning(SingletonLease.epoch))
            if created is not None:
                return int(created)
            return _renew_or_take_singleton(session, clock, name, replica, ttl)

        return self._run("singleton", work)


# --- fencing: inside another transaction of the store ----------------------------------------------


def check_fence(
    session: Session, replica: str, target_id: int, epoch: int, *, idle_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT_S
) -> None:
    """Refuse a write unless ``replica`` holds ``target_id``'s lease at ``epoch``, unexpired by the DB clock.

    Call it first in the transaction that writes (a snapshot, a change): it share-locks the lease row
    until that transaction ends, so a takeover waits for (or skips) it and a write that loses the lease
    fails here instead of committing. On PostgreSQL it also limits how long the transaction may sit idle
    (``idle_timeout`` seconds), so a paused process cannot hold the lock for ever.
    Raises FencedError; the caller's ``_run`` rolls the transaction back.
    """
    _limit_waits(session, lock_timeout=None, idle_timeout=idle_timeout)
    if not _holds(session, TargetLease, TargetLease.target_id == target_id, replica, epoch):
        raise FencedError("fence", f"replica {replica} no longer holds target {target_id} at epoch {epoch}")


def check_fences(
    session: Session,
    replica: str,
    epochs: Mapping[int, int],
    *,
    idle_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT_S,
) -> set[int]:
    """The batch form of :func:`check_fence`: the target ids of ``epochs`` (id → epoch) still held.

    Share-locks the leases it returns (in target id order) until the transaction ends; raises nothing.
    """
    _limit_waits(session, lock_timeout=None, idle_timeout=idle_timeout)
    clock = _Clock(session)
    held: set[int] = set()
    for chunk in _chunks(sorted(epochs)):
        query = (
            select(TargetLease.target_id, TargetLease.epoch)
            .where(TargetLease.target_id.in_(chunk), TargetLease.owner == replica, TargetLease.expires_at > clock.now())
            .order_by(TargetLease.target_id)
            .with_for_update(read=True)
        )
        held.update(target for target, epoch in session.execute(query) if epochs[target] == epoch)
    return held


def check_singleton(session: Session, name: str, replica: str, epoch: int) -> None:
    """:func:`check_fence` for a leader lease: raises FencedError unless ``replica`` holds ``name`` at ``epoch``."""
    _limit_waits(session, lock_timeout=None)
    if not _holds(session, SingletonLease, SingletonLease.name == name, replica, epoch):
        raise FencedError("fence", f"replica {replica} no longer holds {name} at epoch {epoch}")


def _holds(session: Session, lease: type[TargetLease | SingletonLease], which: Any, replica: str, epoch: int) -> bool:
    """Whether ``replica`` holds the unexpired lease ``which`` selects at ``epoch``; share-locks it if so."""
    query = select(lease.epoch).where(
        which, lease.owner == replica, lease.epoch == epoch, lease.expires_at > _Clock(session).now()
    )
    return session.scalar(query.with_for_update(read=True)) is not None


# --- the statements ------------------------------------------------------------------------------


class _Clock:
    """The database's clock as SQL.

    PostgreSQL: ``clock_timestamp()``, the time when the expression is evaluated — not ``now()``, the
    transaction's start, which would judge expiry with a stale time after a lock wait. SQLite has no
    server clock: the process clock, read once per transaction (SQLite means one process).
    """

    def __init__(self, session: Session) -> None:
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._fixed = utcnow()

    def now(self) -> ColumnElement[datetime]:
        return func.clock_timestamp(type_=WHEN) if self._postgres else literal(self._fixed, WHEN)

    def after(self, seconds: float) -> ColumnElement[datetime]:
        """``now + seconds`` (negative: before now)."""
        if self._postgres:
            return func.clock_timestamp(type_=WHEN) + literal(timedelta(seconds=seconds), Interval())
        return literal(self._fixed + timedelta(seconds=seconds), WHEN)

    def read(self, session: Session) -> datetime:
        """The current time by this clock, as a value."""
        if not self._postgres:
            return self._fixed
        return _utc(session.execute(select(func.clock_timestamp(type_=WHEN))).scalar_one())


def _limit_waits(
    session: Session,
    lock_timeout: float | None = LOCK_TIMEOUT_S,
    idle_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT_S,
) -> None:
    """Transaction-local (``SET LOCAL``, so fine under PgBouncer) limits on lock waits and idling."""
    if session.get_bind().dialect.name != "postgresql":
        return
    settings = {"idle_in_transaction_session_timeout": idle_timeout}
    if lock_timeout is not None:
        settings["lock_timeout"] = lock_timeout
    calls = [func.set_config(name, f"{max(1, round(seconds * 1000))}ms", True) for name, seconds in settings.items()]
    session.execute(select(*calls))  # set_config(..., is_local => true) is SET LOCAL


def _membership(session: Session, clock: _Clock, replica: str) -> Membership:
    now = clock.read(session)
    rows = session.scalars(select(Replica).where(Replica.expires_at > now).order_by(Replica.name))
    live = tuple(_replica(row) for row in rows)
    me = next((r for r in live if r.name == replica), None)
    if me is None:  # just written with expires_at in the future: only a clock going backwards gets here
        raise StoreError("heartbeat", f"replica {replica} is not live right after its heartbeat")
    return Membership(now, live, me)


def _replica(row: Replica) -> ReplicaRecord:
    return ReplicaRecord(
        row.name, _utc(row.started_at), _utc(row.heartbeat_at), _utc(row.expires_at), json.loads(row.info)
    )


def _lock_held(session: Session, clock: _Clock, replica: str) -> dict[int, int]:
    """The unexpired leases of ``replica`` (id → epoch), locked in id order until the transaction ends.

    Waits only for this replica's own writes in progress (their share locks) and for a claim of a lease
    that expired a moment ago; neither waits for anything this transaction holds.
    """
    query = (
        select(TargetLease.target_id, TargetLease.epoch)
        .where(TargetLease.owner == replica, TargetLease.expires_at > clock.now())
        .order_by(TargetLease.target_id)
        .with_for_update()
    )
    return {target: epoch for target, epoch in session.execute(query)}


def _release(session: Session, clock: _Clock, replica: str, target_ids: Sequence[int]) -> None:
    for chunk in _chunks(target_ids):
        session.execute(
            update(TargetLease)
            .where(TargetLease.target_id.in_(chunk), TargetLease.owner == replica)
            .values(expires_at=clock.now())
        )


def _updated(session: Session, where: Any, **values: Any) -> dict[int, int]:
    """Update the leases ``where`` holds with ``values``; returns target id → epoch of each lease updated."""
    statement = update(TargetLease).where(where).values(**values).returning(TargetLease.target_id, TargetLease.epoch)
    return {target: epoch for target, epoch in session.execute(statement)}


def _renew(session: Session, clock: _Clock, replica: str, ttl: float, target_ids: Sequence[int]) -> dict[int, int]:
    renewed: dict[int, int] = {}
    for chunk in _chunks(target_ids):
        mine = TargetLease.target_id.in_(chunk) & (TargetLease.owner == replica)
        renewed.update(_updated(session, mine, expires_at=clock.after(ttl)))
    return renewed


def _take_free(session: Session, clock: _Clock, replica: str, ttl: float, target_ids: Sequence[int]) -> dict[int, int]:
    """Take over existing leases that are expired or released and not locked by anyone: epoch + 1."""
    taken: dict[int, int] = {}
    for chunk in _chunks(target_ids):
        free = (
            select(TargetLease.target_id)
            .where(TargetLease.target_id.in_(chunk), TargetLease.expires_at <= clock.now())
            .order_by(TargetLease.target_id)
            .with_for_update(skip_locked=True)
        )
        locked = list(session.scalars(free))
        if not locked:
            continue
        taken.update(_updated(session, TargetLease.target_id.in_(locked), owner=replica,
                              epoch=TargetLease.epoch + 1, expires_at=clock.after(ttl)))  # fmt: skip
    return taken


def _insert_new(session: Session, clock: _Clock, replica: str, ttl: float, target_ids: Sequence[int]) -> dict[int, int]:
    """First leases of targets that have none: epoch 1; a concurrent first claim wins or loses whole."""
    inserted: dict[int, int] = {}
    for chunk in _chunks(target_ids):
        source = (
            select(Target.id, literal(replica), literal(1), clock.after(ttl))
            .where(Target.id.in_(chunk), ~exists().where(TargetLease.target_id == Target.id))
            .order_by(Target.id)  # insert (and lock) in id order, as every other statement does
        )
        statement = (
            dialect_insert(session)(TargetLease)
            .from_select(["target_id", "owner", "epoch", "expires_at"], source)
            .on_conflict_do_nothing(index_elements=["target_id"])
            .returning(TargetLease.target_id, TargetLease.epoch)
        )
        inserted.update((target, epoch) for target, epoch in session.execute(statement))
    return inserted


def _renew_or_take_singleton(session: Session, clock: _Clock, name: str, replica: str, ttl: float) -> int | None:
    live = (SingletonLease.expires_at > clock.now()).label("live")
    query = select(SingletonLease.owner, SingletonLease.epoch, live).where(SingletonLease.name == name)
    row = session.execute(query.with_for_update(skip_locked=True)).first()
    if row is None:  # another replica is acquiring or renewing it right now
        return None
    owner, epoch, alive = row
    if alive and owner != replica:
        return None
    epoch = int(epoch) if alive else int(epoch) + 1
    session.execute(
        update(SingletonLease)
        .where(SingletonLease.name == name)
        .values(owner=replica, epoch=epoch, expires_at=clock.after(ttl))
    )
    return epoch


def _check(replica: str, ttl: float) -> None:
    if not replica or len(replica) > MAX_NAME:
        raise ValueError(f"invalid replica name {replica!r} (1 to {MAX_NAME} characters)")
    if not ttl > 0:
        raise ValueError(f"lease ttl must be positive, got {ttl}")


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    batch: list[int] = []
    for target_id in ids:
        batch.append(target_id)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
