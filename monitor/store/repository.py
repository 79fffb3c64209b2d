"""The repository: every read and write the monitor makes, each in one short transaction.

Blocking (SQLAlchemy sync); the service calls it from a worker thread. Every public method either
completes its transaction or raises :class:`StoreError` after rolling back, so no half-written snapshot
or change can exist. Transient failures (SQLite ``database is locked`` past the busy timeout, a dropped
PostgreSQL connection) are retried a few times first.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    CursorResult,
    Engine,
    Row,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from monitor.domain import (
    ABSENT,
    Change,
    ConsumerBreak,
    FailureReason,
    PollResult,
    Severity,
    TargetKey,
    fingerprint,
    utcnow,
)
from monitor.store.base import Transactions, among_ids, as_utc, dialect_insert, opt_aware
from monitor.store.coordination import check_fence, check_fences
from monitor.store.records import (
    ChangeRecord,
    ExpectedAck,
    Fence,
    FirstSnapshot,
    FirstsRecorded,
    HistoryFilter,
    Seen,
    SnapshotConflictError,
    SnapshotRecord,
    SnapshotValidators,
    StoredDocument,
    StoreError,
    TargetRow,
    TargetState,
    TransitionRecord,
    Validators,
)
from monitor.store.tables import Acknowledgement, ChangeRow, Document, PollTransition, Snapshot, Target

T = TypeVar("T")


def _json_or_null(value: Any) -> str | None:
    return None if value is ABSENT else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _from_json(text: str | None) -> Any:
    return ABSENT if text is None else json.loads(text)


class Repository(Transactions):
    """All persistence of polls, snapshots and changes."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        # shas of documents known to be committed (documents are never deleted): their insert can be skipped,
        # so the many targets that serve one document write it once, not once each
        self._stored_documents: set[str] = set()

    # --- targets and restore -----------------------------------------------------------------

    def ensure_targets(self, targets: Iterable[tuple[TargetKey, str]]) -> dict[TargetKey, int]:
        """Insert unknown targets (safe against a concurrent replica), refresh URLs, un-retire; returns every id.

        Set-based: one multi-row insert, one read of the targets, one batch of updates, whatever the count.
        """
        wanted = dict(targets)

        def work(session: Session) -> dict[TargetKey, int]:
            now = utcnow()
            rows = [
                {"cloud": key.cloud, "region": key.region, "schema": key.schema, "url": url, "created_at": now}
                for key, url in wanted.items()
            ]
            insert = dialect_insert(session)(Target).on_conflict_do_nothing(
                index_elements=["cloud", "region", "schema"]
            )
            for chunk in _chunks(rows):
                session.execute(insert, chunk)
            ids, updates = {}, []
            for row in session.execute(select(Target.id, Target.cloud, Target.region, Target.schema, Target.url,
                                              Target.retired_at)):  # fmt: skip
                key = TargetKey(row.cloud, row.region, row.schema)
                if key in wanted:
                    ids[key] = row.id
                    if row.url != wanted[key] or row.retired_at is not None:
                        updates.append({"id": row.id, "url": wanted[key], "retired_at": None})  # polled (again)
            if updates:
                session.execute(update(Target), updates)
            return ids

        return self._run("ensure_targets", work)

    def retire_targets(self, keys: Iterable[TargetKey]) -> None:
        """Mark targets that discovery dropped (read views leave them out; their history stays)."""
        wanted = set(keys)

        def work(session: Session) -> None:
            now = utcnow()
            rows = session.execute(select(Target.id, Target.cloud, Target.region, Target.schema)
                                   .where(Target.retired_at.is_(None)))  # fmt: skip
            updates = [
                {"id": r.id, "retired_at": now} for r in rows if TargetKey(r.cloud, r.region, r.schema) in wanted
            ]
            if updates:
                session.execute(update(Target), updates)

        if wanted:
            self._run("ensure_targets", work)

    def load_states(self, target_ids: Sequence[int]) -> dict[int, TargetState]:
        """The restorable state of each target id (targets never polled get an empty state).

        Set-based: a few queries per batch of ids, each distinct document read once.
        """

        def work(session: Session) -> dict[int, TargetState]:
            if len(target_ids) > FEW_CHUNKS * CHUNK:  # a fleet: five queries over every target beat parameter lists
                return _states(session, target_ids, every=True)
            return {tid: state for ids in _chunks(target_ids) for tid, state in _states(session, ids).items()}

        return self._run("restore", work)

    # --- recording polls ---------------------------------------------------------------------

    def record_transition(self, target_id: int, result: PollResult, fence: Fence | None = None) -> None:
        """Store that the target's poll outcome changed to ``result``'s (nothing else is written).

        Raises FencedError (writing nothing) when ``fence`` no longer holds the target.
        """

        def work(session: Session) -> None:
            if fence is not None:
                check_fence(session, fence.replica, target_id, fence.epoch)
            session.execute(insert(PollTransition).values(_transition_values(target_id, result)))

        self._run("record_poll", work)

    def flush_seen(
        self, seen: Sequence[Seen], fence: Fence | None = None, validators: Sequence[SnapshotValidators] = ()
    ) -> None:
        """Write the batched times of the targets' last polls (and snapshots' ``last_seen``) in one transaction,
        with the snapshots' changed ``validators``.

        With ``fence``, only the targets its ``epochs`` still hold are written (the others were handed over).
        """

        def work(session: Session) -> None:
            entries, proven = seen, validators
            if fence is not None:
                held = check_fences(session, fence.replica, fence.epochs)
                entries = [s for s in seen if s.target_id in held]
                proven = [v for v in validators if v.target_id in held]
            succeeded = [s for s in entries if s.last_success_at is not None]
            # Core executemany by primary key (the ORM's bulk UPDATE costs several times more per row)
            batches: list[tuple[Any, list[dict[str, Any]]]] = [
                (_SEEN_OK, [{"tid": s.target_id, "poll": s.last_poll_at, "success": s.last_success_at}
                            for s in succeeded]),
                (_SEEN_FAILED, [{"tid": s.target_id, "poll": s.last_poll_at} for s in entries
                                if s.last_success_at is None]),
                (_SEEN_SNAPSHOT, [{"sid": s.snapshot_id, "seen": s.last_success_at} for s in succeeded
                                  if s.snapshot_id is not None]),
                (_VALIDATORS, [{"sid": v.snapshot_id, "etag": v.validators.etag,
                                "modified": v.validators.last_modified} for v in proven]),
            ]  # fmt: skip
            for statement, rows in batches:
                for chunk in _chunks(rows):
                    session.execute(statement, chunk)

        if seen or validators:
            self._run("record_poll", work)

    def record_snapshot(
        self,
        target_id: int,
        previous_snapshot_id: int | None,
        document: StoredDocument,
        changes: Sequence[Change],
        result: PollResult,
        *,
        transition: bool = False,
        fence: Fence | None = None,
        acknowledge: ExpectedAck | None = None,
    ) -> int:
        """Store a new document (once), a new snapshot and its changes in one transaction; with
        ``transition`` also the poll's outcome as a transition, with ``acknowledge`` the acknowledgements of
        expected changes. The target's last poll times move too. Returns the new snapshot's id.

        Raises SnapshotConflictError when the target's latest snapshot is no longer
        ``previous_snapshot_id`` (another writer got there first), FencedError when ``fence`` no longer holds
        the target; nothing is written then.
        """

        def work(session: Session) -> int:
            if fence is not None:  # first: the lease stays share-locked until this transaction ends
                check_fence(session, fence.replica, target_id, fence.epoch)
            # Serialise writers of one target (PostgreSQL; SQLite has a single writer anyway).
            session.execute(select(Target.id).where(Target.id == target_id).with_for_update())
            hold_changes_lock(session, shared=True)
            latest = session.scalar(select(func.max(Snapshot.id)).where(Snapshot.target_id == target_id))
            if latest != previous_snapshot_id:
                raise SnapshotConflictError("record_snapshot", f"target {target_id} has a newer snapshot")
            if document.sha256 not in self._stored_documents:
                self._insert_document(session, document, result.started_at)
            # Core statements, not the ORM's unit of work: a first round writes thousands of these
            inserted = session.execute(
                insert(Snapshot).values(target_id=target_id, document_sha256=document.sha256,
                                        first_seen=result.started_at, last_seen=result.started_at)
            )  # fmt: skip
            key = cast(CursorResult[Any], inserted).inserted_primary_key  # lastrowid or RETURNING: any SQLite
            assert key is not None
            snapshot_id = int(key[0])
            from_sha = self._snapshot_sha(session, previous_snapshot_id) if changes else ""
            for change in changes:
                session.add(_change_row(target_id, snapshot_id, from_sha, document.sha256, change, result))
            if transition:
                session.execute(insert(PollTransition).values(_transition_values(target_id, result)))
            if acknowledge is not None:
                session.add_all(
                    Acknowledgement(target_id=target_id, fingerprint=fp, comment=acknowledge.comment,
                                    actor="expected-window", created_at=result.started_at)
                    for fp in acknowledge.fingerprints
                )  # fmt: skip
            session.execute(update(Target).where(Target.id == target_id)
                            .values(last_poll_at=result.started_at, last_success_at=result.started_at))  # fmt: skip
            return snapshot_id

        snapshot_id = self._run("record_snapshot", work)
        self._stored_documents.add(document.sha256)  # committed
        return snapshot_id

    def record_firsts(self, firsts: Sequence[FirstSnapshot], fence: Fence | None = None) -> FirstsRecorded:
        """The batch form of :meth:`record_snapshot` for first snapshots (no changes, no acknowledgements):
        a few statements for the whole batch in one transaction, whatever its size.

        A target that has a snapshot already is left out (``conflicts``: reload and compare it), one whose
        lease ``fence.epochs`` (target id → epoch) no longer holds too (``fenced``); the rest are written.
        Raises StoreError (nothing written) when the database fails.
        """

        def work(session: Session) -> FirstsRecorded:
            ids = [first.target_id for first in firsts]
            held = check_fences(session, fence.replica, fence.epochs) if fence is not None else set(ids)
            fenced = set(ids) - held
            conflicts: set[int] = set()
            for chunk in _chunks(sorted(held)):  # lock the targets (PostgreSQL), then look for snapshots
                session.execute(select(Target.id).where(Target.id.in_(chunk)).order_by(Target.id).with_for_update())
                conflicts.update(session.scalars(select(Snapshot.target_id).where(Snapshot.target_id.in_(chunk))))
            writing = [first for first in firsts if first.target_id in held - conflicts]
            if writing:
                self._write_firsts(session, writing)
            snapshots: dict[int, int] = {}
            for chunk in _chunks([first.target_id for first in writing]):  # each has exactly one snapshot now
                query = select(Snapshot.target_id, Snapshot.id).where(Snapshot.target_id.in_(chunk))
                snapshots.update((target_id, snapshot_id) for target_id, snapshot_id in session.execute(query))
            return FirstsRecorded(snapshots, conflicts, fenced)

        recorded = self._run("record_snapshot", work)
        self._stored_documents.update(
            first.document.sha256 for first in firsts if first.target_id in recorded.snapshots
        )
        return recorded

    def _write_firsts(self, session: Session, firsts: Sequence[FirstSnapshot]) -> None:
        documents = {
            first.document.sha256: first for first in firsts if first.document.sha256 not in self._stored_documents
        }
        for first in documents.values():
            self._insert_document(session, first.document, first.result.started_at)
        snapshots = [{"target_id": f.target_id, "document_sha256": f.document.sha256, "first_seen": f.result.started_at,
                      "last_seen": f.result.started_at} for f in firsts]  # fmt: skip
        transitions = [_transition_values(f.target_id, f.result) for f in firsts if f.transition]
        polls = [{"id": f.target_id, "last_poll_at": f.result.started_at, "last_success_at": f.result.started_at}
                 for f in firsts]  # fmt: skip
        for table, rows in ((Snapshot, snapshots), (PollTransition, transitions)):
            for chunk in _chunks(rows):
                session.execute(insert(table), chunk)
        for chunk in _chunks(polls):
            session.execute(update(Target), chunk)

    def _insert_document(self, session: Session, document: StoredDocument, when: datetime) -> None:
        values = {
            "sha256": document.sha256,
            "body": document.body,
            "size": document.size,
            "properties": document.properties,
            "created_at": when,
        }
        session.execute(
            dialect_insert(session)(Document).values(**values).on_conflict_do_nothing(index_elements=["sha256"])
        )

    @staticmethod
    def _snapshot_sha(session: Session, snapshot_id: int | None) -> str:
        sha = session.scalar(select(Snapshot.document_sha256).where(Snapshot.id == snapshot_id))
        if sha is None:
            raise StoreError("record_snapshot", "changes need a previous snapshot")
        return sha

    def prune_transitions(self, older_than: datetime) -> int:
        """Delete transitions that started before ``older_than``, except each target's latest; returns how many."""

        def work(session: Session) -> int:
            latest = select(func.max(PollTransition.id)).group_by(PollTransition.target_id)
            result = session.execute(
                delete(PollTransition).where(PollTransition.started_at < older_than, PollTransition.id.not_in(latest))
            )
            return int(getattr(result, "rowcount", 0) or 0)

        return self._run("prune", work)

    # --- reading -----------------------------------------------------------------------------

    def document(self, sha256: str) -> StoredDocument | None:
        return self._run("read", lambda session: load_document(session, sha256))

    def target_id(self, key: TargetKey) -> int | None:
        return self._run(
            "read",
            lambda session: session.scalar(
                select(Target.id).where(
                    Target.cloud == key.cloud, Target.region == key.region, Target.schema == key.schema
                )
            ),
        )

    def snapshots(self, target_id: int) -> list[SnapshotRecord]:
        """A target's snapshots, oldest first."""

        def work(session: Session) -> list[SnapshotRecord]:
            rows = session.scalars(select(Snapshot).where(Snapshot.target_id == target_id).order_by(Snapshot.id))
            return [SnapshotRecord(r.id, r.document_sha256, as_utc(r.first_seen), as_utc(r.last_seen)) for r in rows]

        return self._run("read", work)

    def history(self, where: HistoryFilter) -> list[ChangeRecord]:
        """Stored changes matching ``where``, oldest first (the newest ``limit`` of them).

        ``where.before_id`` pages back: the newest ``limit`` changes older than that change id.
        """

        def work(session: Session) -> list[ChangeRecord]:
            query = select(ChangeRow, Target).join(Target, ChangeRow.target_id == Target.id)
            query = query.where(*_history_conditions(where))
            query = query.order_by(ChangeRow.id.desc()).limit(where.limit)
            return [change_record(change, target) for change, target in reversed(session.execute(query).all())]

        return self._run("read", work)

    def targets(self) -> dict[TargetKey, TargetRow]:
        """Every target polled now (retired ones left out), with its id and URL."""

        def work(session: Session) -> dict[TargetKey, TargetRow]:
            query = select(Target.id, Target.cloud, Target.region, Target.schema, Target.url).where(
                Target.retired_at.is_(None)
            )
            rows = (TargetRow(r.id, TargetKey(r.cloud, r.region, r.schema), r.url) for r in session.execute(query))
            return {row.key: row for row in rows}

        return self._run("read", work)

    def target_row(self, key: TargetKey) -> TargetRow | None:
        """The target ``key`` while it is polled (None: unknown or retired); one index lookup."""

        def work(session: Session) -> TargetRow | None:
            query = select(Target.id, Target.url).where(
                Target.cloud == key.cloud, Target.region == key.region, Target.schema == key.schema,
                Target.retired_at.is_(None),
            )  # fmt: skip
            found = session.execute(query).first()
            return TargetRow(found.id, key, found.url) if found is not None else None

        return self._run("read", work)

    def target_page(self, after: TargetKey | None, limit: int) -> list[TargetRow]:
        """Up to ``limit`` targets polled now (retired ones left out) in label order — cloud, region, schema as
        the database orders them — the first after ``after`` (None: from the start).

        Keyset paging on the unique index of the labels (``uq_targets_key``): the database reads about
        ``limit`` index entries whatever the number of targets, and a walk sees each target once while others
        are added or retired before or after the page it is on.
        """

        def work(session: Session) -> list[TargetRow]:
            labels = tuple_(Target.cloud, Target.region, Target.schema)
            query = select(Target.id, Target.cloud, Target.region, Target.schema, Target.url).where(
                Target.retired_at.is_(None)
            )
            if after is not None:
                query = query.where(labels > tuple_(after.cloud, after.region, after.schema))
            query = query.order_by(Target.cloud, Target.region, Target.schema).limit(limit)
            return [TargetRow(r.id, TargetKey(r.cloud, r.region, r.schema), r.url) for r in session.execute(query)]

        return self._run("read", work)

    def change(self, change_id: int) -> ChangeRecord | None:
        """One stored change (a permalink), or None."""

        def work(session: Session) -> ChangeRecord | None:
            row = session.execute(
                select(ChangeRow, Target)
                .join(Target, ChangeRow.target_id == Target.id)
                .where(ChangeRow.id == change_id)
            ).first()
            return change_record(row[0], row[1]) if row is not None else None

        return self._run("read", work)

    def change_times(self, since: datetime) -> dict[int, list[datetime]]:
        """See :func:`change_times`."""
        return self._run("read", lambda session: change_times(session, since))

    def transitions(self, target_id: int, limit: int = 100) -> list[TransitionRecord]:
        """The target's latest outcome transitions, oldest first: when it started failing, why, and recovered."""

        def work(session: Session) -> list[TransitionRecord]:
            query = (
                select(PollTransition)
                .where(PollTransition.target_id == target_id)
                .order_by(PollTransition.id.desc())
                .limit(limit)
            )
            return [_transition(row) for row in reversed(session.scalars(query).all())]

        return self._run("read", work)


def change_times(
    session: Session, since: datetime, target_ids: Collection[int] | None = None
) -> dict[int, list[datetime]]:
    """When each target's document changed since ``since``: its snapshots first seen then, except its first.

    The one definition of "changes" behind flapping (``changes.flapping_threshold`` within
    ``changes.flapping_window``), for the metrics, the notifications and the read side alike.
    """
    firsts = select(func.min(Snapshot.id)).group_by(Snapshot.target_id)
    query = select(Snapshot.target_id, Snapshot.first_seen).where(Snapshot.first_seen >= since)
    if target_ids is not None:  # both sides: the firsts of a page of targets, not of every target
        query = query.where(among_ids(session, Snapshot.target_id, target_ids))
        firsts = firsts.where(among_ids(session, Snapshot.target_id, target_ids))
    query = query.where(Snapshot.id.not_in(firsts))
    times: dict[int, list[datetime]] = {}
    for target_id, first_seen in session.execute(query.order_by(Snapshot.first_seen)):
        times.setdefault(target_id, []).append(as_utc(first_seen))
    return times


def _history_conditions(where: HistoryFilter) -> list[Any]:
    conditions: list[Any] = []
    if where.cloud:
        conditions.append(Target.cloud == where.cloud)
    if where.region:
        conditions.append(Target.region == where.region)
    if where.schema:
        conditions.append(Target.schema == where.schema)
    if where.min_severity is not None:
        allowed = [s.value for s in Severity if s.rank >= where.min_severity.rank]
        conditions.append(ChangeRow.severity.in_(allowed))
    if where.since is not None:
        conditions.append(ChangeRow.detected_at >= where.since)
    if where.before_id is not None:
        conditions.append(ChangeRow.id < where.before_id)
    return conditions


CHANGES_LOCK = 0x5D_C4A9  # PostgreSQL advisory lock between change writers and the notification cursor


def hold_changes_lock(session: Session, *, shared: bool) -> None:
    """Writers of changes hold this shared; ``group_pending`` holds it exclusively while reading them.

    Change ids come from a sequence and can commit out of order on PostgreSQL; without the lock the
    notification cursor could move past an id whose transaction had not committed yet, and lose it.
    SQLite has one writer at a time, so it needs nothing.
    """
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {function}(:key)"), {"key": CHANGES_LOCK})


def _stored(document: Document) -> StoredDocument:
    return StoredDocument(document.sha256, document.body, document.size, document.properties)


def load_document(session: Session, sha256: str) -> StoredDocument | None:
    """The stored document with this SHA-256 (None: there is none): the one way every store reads one."""
    return _opt_stored(session.get(Document, sha256))


def _opt_stored(document: Document | None) -> StoredDocument | None:
    return _stored(document) if document is not None else None


def _transition_values(target_id: int, result: PollResult) -> dict[str, Any]:
    return {
        "target_id": target_id,
        "started_at": result.started_at,
        "duration": result.duration,
        "outcome": "success" if result.ok else "failure",
        "reason": result.reason.value if isinstance(result.reason, FailureReason) else None,
        "http_status": result.http_status,
        "error": result.error,
    }


def _transition(row: PollTransition) -> TransitionRecord:
    return TransitionRecord(
        started_at=as_utc(row.started_at),
        ok=row.outcome == "success",
        reason=FailureReason(row.reason) if row.reason else None,
        http_status=row.http_status,
        error=row.error,
    )


CHUNK = 500  # rows or ids per statement: under SQLite's variable limit, small enough for any driver
FEW_CHUNKS = 4  # up to this many chunks of ids (a page of targets), queries per chunk beat reading every target


_TARGETS, _SNAPSHOTS = cast(Table, Target.__table__), cast(Table, Snapshot.__table__)
_SEEN_OK = (
    update(_TARGETS).where(_TARGETS.c.id == bindparam("tid"))
    .values(last_poll_at=bindparam("poll"), last_success_at=bindparam("success"))
)  # fmt: skip
_SEEN_FAILED = update(_TARGETS).where(_TARGETS.c.id == bindparam("tid")).values(last_poll_at=bindparam("poll"))
_SEEN_SNAPSHOT = update(_SNAPSHOTS).where(_SNAPSHOTS.c.id == bindparam("sid")).values(last_seen=bindparam("seen"))
_VALIDATORS = (
    update(_SNAPSHOTS).where(_SNAPSHOTS.c.id == bindparam("sid"))
    .values(etag=bindparam("etag"), last_modified=bindparam("modified"))
)  # fmt: skip


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _states(session: Session, target_ids: Sequence[int], *, every: bool = False) -> dict[int, TargetState]:
    """The state of each of ``target_ids`` in five queries: for at most :data:`CHUNK` ids, or — ``every`` —
    over all targets of the database, keeping those asked for."""

    def among(column: Any) -> Any:
        return true() if every else among_ids(session, column, target_ids)

    latest = select(func.max(Snapshot.id)).where(among(Snapshot.target_id)).group_by(Snapshot.target_id)
    # columns, not ORM entities: a restore or GET /api/targets reads 10,000 of each
    snapshot_columns = select(Snapshot.id, Snapshot.target_id, Snapshot.document_sha256, Snapshot.last_seen,
                              Snapshot.etag, Snapshot.last_modified)  # fmt: skip
    snapshots = {row.target_id: row for row in session.execute(snapshot_columns.where(Snapshot.id.in_(latest)))}
    shas = {snapshot.document_sha256 for snapshot in snapshots.values()}
    documents = {row.sha256: _stored(row) for row in session.scalars(select(Document).where(Document.sha256.in_(shas)))}
    last_transition = (
        select(func.max(PollTransition.id)).where(among(PollTransition.target_id)).group_by(PollTransition.target_id)
    )
    transition_columns = select(
        PollTransition.target_id, PollTransition.started_at, PollTransition.outcome, PollTransition.reason
    )
    outcomes = {
        row.target_id: row for row in session.execute(transition_columns.where(PollTransition.id.in_(last_transition)))
    }
    last_changes = session.execute(
        select(ChangeRow.target_id, func.max(ChangeRow.detected_at))
        .where(among(ChangeRow.target_id))
        .group_by(ChangeRow.target_id)
    )
    changes: dict[int, datetime] = {tid: at for tid, at in last_changes}
    polls = {
        row.id: row
        for row in session.execute(
            select(Target.id, Target.last_poll_at, Target.last_success_at).where(among(Target.id))
        )
    }
    return {
        tid: _state(tid, snapshots.get(tid), documents, outcomes.get(tid), changes.get(tid), polls.get(tid))
        for tid in target_ids
    }


def _state(
    target_id: int,
    snapshot: Row[int, int, str, datetime, str | None, str | None] | None,
    documents: dict[str, StoredDocument],
    outcome: Row[int, datetime, str, str | None] | None,
    last_change: datetime | None,
    polls: Any,
) -> TargetState:
    last_poll = polls.last_poll_at if polls is not None else None
    last_success = polls.last_success_at if polls is not None else None
    if snapshot is not None and last_success is None:
        last_success = snapshot.last_seen  # written before the last poll times were (or a flush was lost)
    if outcome is not None and (last_poll is None or as_utc(outcome.started_at) > as_utc(last_poll)):
        last_poll = outcome.started_at  # the transition committed, the batched time not yet
    return TargetState(
        target_id=target_id,
        snapshot_id=snapshot.id if snapshot else None,
        document=documents.get(snapshot.document_sha256) if snapshot else None,
        last_poll_at=opt_aware(last_poll),
        last_poll_ok=(outcome.outcome == "success") if outcome else None,
        last_reason=FailureReason(outcome.reason) if outcome and outcome.reason else None,
        last_success_at=opt_aware(last_success),
        last_change_at=opt_aware(last_change),
        validators=_validators(snapshot.etag, snapshot.last_modified) if snapshot else None,
    )


def _validators(etag: str | None, last_modified: str | None) -> Validators | None:
    return Validators(etag, last_modified) if etag is not None or last_modified is not None else None


def _change_row(
    target_id: int, snapshot_id: int, from_sha: str, to_sha: str, change: Change, result: PollResult
) -> ChangeRow:
    return ChangeRow(
        target_id=target_id,
        snapshot_id=snapshot_id,
        from_sha256=from_sha,
        to_sha256=to_sha,
        path=change.path,
        rule=change.rule,
        severity=change.severity.value,
        old_value=_json_or_null(change.old),
        new_value=_json_or_null(change.new),
        detected_at=result.started_at,
        fingerprint=fingerprint(result.target, change),
        ignored=change.ignored,
        expected=change.expected,
        breaks=_breaks_json(change.breaks),
    )


def _breaks_json(breaks: Sequence[ConsumerBreak]) -> str | None:
    return json.dumps([mark.as_json() for mark in breaks], ensure_ascii=False) if breaks else None


def _breaks(text: str | None) -> tuple[ConsumerBreak, ...]:
    return tuple(ConsumerBreak(**mark) for mark in json.loads(text)) if text else ()


def change_record(row: ChangeRow, target: Target) -> ChangeRecord:
    return ChangeRecord(
        id=row.id,
        target=TargetKey(target.cloud, target.region, target.schema),
        snapshot_id=row.snapshot_id,
        detected_at=as_utc(row.detected_at),
        path=row.path,
        rule=row.rule,
        severity=Severity(row.severity),
        old=_from_json(row.old_value),
        new=_from_json(row.new_value),
        from_sha256=row.from_sha256,
        to_sha256=row.to_sha256,
        fingerprint=row.fingerprint,
        ignored=row.ignored,
        expected=row.expected,
        target_id=row.target_id,
        breaks=_breaks(row.breaks),
    )
