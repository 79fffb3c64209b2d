"""What drift is judged against, and what operators said about it: the drift state of every target.

* baselines — each target's approved document (``targets.baseline_snapshot_id``, else its first snapshot);
* acknowledgements — changes from the baseline that operators accepted (``ack``), by fingerprint, some expiring;
* expected-change windows — periods in which a cloud's changes are recorded but do not page (``expect``);
* rollouts — a new document spreading through a cloud's regions, from its first region to the last.

:class:`monitor.fleet.live.Intelligence` (the live state behind the metrics) reads and writes it; the read
model, ``ack``/``expect`` and the API read and write it too. Snapshots and changes themselves are the
repository's (:mod:`monitor.store.repository`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, or_, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from monitor.domain import TargetKey
from monitor.store.base import Transactions, among_ids, as_utc, dialect_insert, opt_aware
from monitor.store.records import Baseline, RolloutRecord, StoreError, Window
from monitor.store.repository import change_times, load_document
from monitor.store.tables import Acknowledgement, ExpectedWindow, Rollout, Snapshot, Target


def _rollout(row: Rollout) -> RolloutRecord:
    return RolloutRecord(
        row.id, row.cloud, row.schema, row.from_sha256, row.to_sha256, as_utc(row.started_at),
        opt_aware(row.completed_at), row.outcome, row.expected,
    )  # fmt: skip


def _latest(snapshot: type[Snapshot]) -> Any:
    """The condition that a row of ``snapshot`` is its target's latest (no later snapshot of the same target):
    an anti-join both databases run as one pass over the snapshots' index."""
    later = aliased(Snapshot)
    return ~exists().where(later.target_id == snapshot.target_id, later.id > snapshot.id)


class DriftStore(Transactions):
    """Every method is one transaction; raises StoreError."""

    def baselines(self, target_ids: Collection[int] | None = None) -> dict[int, Baseline]:
        """Each target's approved document: its baseline snapshot, or its first snapshot; of ``target_ids`` only
        when given (a page of targets: the database reads theirs, not every target's)."""

        def work(session: Session) -> dict[int, Baseline]:
            first = select(Snapshot.target_id, func.min(Snapshot.id).label("id")).group_by(Snapshot.target_id)
            if target_ids is not None:
                first = first.where(among_ids(session, Snapshot.target_id, target_ids))
            firsts = first.subquery()
            wanted = func.coalesce(Target.baseline_snapshot_id, firsts.c.id)
            query = (
                select(Target.id, Snapshot.id, Snapshot.document_sha256)
                .join(firsts, firsts.c.target_id == Target.id)
                .join(Snapshot, Snapshot.id == wanted)
            )  # one query, no parameter list, whatever the number of targets (unless asked for some)
            if target_ids is not None:
                query = query.where(among_ids(session, Target.id, target_ids))
            return {tid: Baseline(sid, sha) for tid, sid, sha in session.execute(query)}

        return self._run("read", work)

    def change_times(self, since: datetime, target_ids: Collection[int] | None = None) -> dict[int, list[datetime]]:
        """When each target (of ``target_ids``, when given) changed its document since ``since`` (see
        :func:`monitor.store.repository.change_times`)."""
        return self._run("restore", lambda session: change_times(session, since, target_ids))

    # --- the documents each (cloud, schema) serves now ---------------------------------------------

    def document_tallies(self) -> dict[tuple[str, str], dict[str, tuple[int, str]]]:
        """For each (cloud, schema): each document its targets polled now (not retired) serve, with how many
        regions serve it and the first of them (``sha256 -> (regions, first region)``), what the majority needs
        (:func:`monitor.judge.regions.tallied_majority`); one aggregate over the targets' latest snapshots, a pass
        over the fleet: cache it (see :meth:`documents_stamp`)."""

        def work(session: Session) -> dict[tuple[str, str], dict[str, tuple[int, str]]]:
            # plain code point order, as the majority's tie-break: PostgreSQL's collation might be another
            region = Target.region.collate("C") if session.get_bind().dialect.name == "postgresql" else Target.region
            query = (
                select(Target.cloud, Target.schema, Snapshot.document_sha256, func.count(), func.min(region))
                .join(Target, Target.id == Snapshot.target_id)
                .where(Target.retired_at.is_(None), _latest(Snapshot))
                .group_by(Target.cloud, Target.schema, Snapshot.document_sha256)
            )
            tallies: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
            for cloud, schema, sha, regions, first in session.execute(query):
                tallies.setdefault((cloud, schema), {})[sha] = (int(regions), first)
            return tallies

        return self._run("read", work)

    def region_documents(self, regions: Collection[tuple[str, str]]) -> dict[TargetKey, str]:
        """The current document (sha256) of every target polled now in each of ``regions`` (cloud, region)."""

        def work(session: Session) -> dict[TargetKey, str]:
            query = (
                select(Target.cloud, Target.region, Target.schema, Snapshot.document_sha256)
                .join(Target, Target.id == Snapshot.target_id)
                .where(Target.retired_at.is_(None), _latest(Snapshot),
                       tuple_(Target.cloud, Target.region).in_(list(regions)))
            )  # fmt: skip
            return {TargetKey(c, r, s): sha for c, r, s, sha in session.execute(query)}

        return self._run("read", work) if regions else {}

    def documents_stamp(self) -> tuple[Any, ...]:
        """A value that changes whenever a target's current document or the set of targets polled now may have:
        the number of snapshots and the newest one's id (snapshots are only ever added, so the count moves with
        every committed one, whatever order PostgreSQL's ids commit in), the number of targets and of retired
        ones, the latest retirement. Cheap (two index counts), so a cache of :meth:`document_tallies` can ask it
        before every answer."""

        def work(session: Session) -> tuple[Any, ...]:
            count = select(func.count()).select_from(Snapshot).scalar_subquery()
            newest = select(func.max(Snapshot.id)).scalar_subquery()
            targets = select(func.count(), func.count(Target.retired_at), func.max(Target.retired_at))
            row = session.execute(targets.add_columns(count, newest).select_from(Target)).one()
            return tuple(row)

        return self._run("read", work)

    def document_body(self, sha256: str) -> str:
        def work(session: Session) -> str:
            document = load_document(session, sha256)
            if document is None:
                raise StoreError("read", f"no document {sha256[:12]}")
            return document.body

        return self._run("read", work)

    def active_acks(self, now: datetime, target_ids: Collection[int] | None = None) -> dict[int, set[str]]:
        """Fingerprints acknowledged per target id (of ``target_ids``, when given), expired ones left out."""

        def work(session: Session) -> dict[int, set[str]]:
            query = select(Acknowledgement.target_id, Acknowledgement.fingerprint).where(
                Acknowledgement.fingerprint.is_not(None),
                or_(Acknowledgement.expires_at.is_(None), Acknowledgement.expires_at > now),
            )
            if target_ids is not None:
                query = query.where(among_ids(session, Acknowledgement.target_id, target_ids))
            rows = session.execute(query)
            acks: dict[int, set[str]] = {}
            for target_id, fp in rows:
                if fp is not None:
                    acks.setdefault(target_id, set()).add(fp)
            return acks

        return self._run("read", work)

    def acknowledge(
        self, target_id: int, fingerprints: Iterable[str], *, comment: str, actor: str, now: datetime,
        expires_at: datetime | None = None,
    ) -> int:  # fmt: skip
        """Store one acknowledgement per fingerprint; returns how many."""
        rows = [
            Acknowledgement(target_id=target_id, fingerprint=fp, comment=comment, actor=actor, created_at=now,
                            expires_at=expires_at)
            for fp in fingerprints
        ]  # fmt: skip
        self._run("ack", lambda session: session.add_all(rows))
        return len(rows)

    def approve_current(self, target_id: int, *, comment: str, actor: str, now: datetime) -> int:
        """Make the target's current snapshot its baseline; returns that snapshot's id."""

        def work(session: Session) -> int:
            current = session.scalar(select(func.max(Snapshot.id)).where(Snapshot.target_id == target_id))
            if current is None:
                raise StoreError("ack", "the target has no snapshot yet")
            session.execute(update(Target).where(Target.id == target_id).values(baseline_snapshot_id=current))
            session.add(Acknowledgement(target_id=target_id, snapshot_id=current, comment=comment, actor=actor,
                                        created_at=now))  # fmt: skip
            return int(current)

        return self._run("ack", work)

    def add_window(self, window: Window, actor: str, now: datetime) -> None:
        row = ExpectedWindow(cloud=window.cloud, schema=window.schema, starts_at=window.starts_at,
                             ends_at=window.ends_at, comment=window.comment, actor=actor, created_at=now)  # fmt: skip
        self._run("ack", lambda session: session.add(row))

    def windows(self, now: datetime) -> list[Window]:
        """Expected-change windows that have not ended."""

        def work(session: Session) -> list[Window]:
            rows = session.scalars(select(ExpectedWindow).where(ExpectedWindow.ends_at >= now))
            return [Window(r.cloud, r.schema, as_utc(r.starts_at), as_utc(r.ends_at), r.comment) for r in rows]

        return self._run("read", work)

    # --- rollouts ----------------------------------------------------------------------------

    def open_rollouts(self) -> list[RolloutRecord]:
        def work(session: Session) -> list[RolloutRecord]:
            return [_rollout(r) for r in session.scalars(select(Rollout).where(Rollout.completed_at.is_(None)))]

        return self._run("restore", work)

    def last_completed_rollouts(self) -> list[RolloutRecord]:
        """The most recent completed rollout of each (cloud, schema)."""

        def work(session: Session) -> list[RolloutRecord]:
            rows = session.scalars(select(Rollout).where(Rollout.completed_at.is_not(None)).order_by(Rollout.id))
            latest = {(r.cloud, r.schema): r for r in rows}
            return [_rollout(r) for r in latest.values()]

        return self._run("restore", work)

    def rollouts(self, cloud: str, schema: str, limit: int = 20) -> list[RolloutRecord]:
        def work(session: Session) -> list[RolloutRecord]:
            query = select(Rollout).where(Rollout.cloud == cloud, Rollout.schema == schema)
            return [_rollout(r) for r in session.scalars(query.order_by(Rollout.id.desc()).limit(limit))]

        return self._run("read", work)

    def start_rollout(
        self, cloud: str, schema: str, from_sha: str | None, to_sha: str, at: datetime, expected: bool
    ) -> RolloutRecord:
        """Open a rollout of (cloud, schema) — or return the one already open: the database keeps one open
        rollout per group (``uq_rollouts_open``), so replicas that see the same move record it once."""

        def work(session: Session) -> RolloutRecord:
            insert = dialect_insert(session)(Rollout).values(
                cloud=cloud, schema=schema, from_sha256=from_sha, to_sha256=to_sha, started_at=at, expected=expected
            )
            insert = insert.on_conflict_do_nothing(
                index_elements=["cloud", "schema"], index_where=Rollout.completed_at.is_(None)
            )
            session.execute(insert)
            query = select(Rollout).where(
                Rollout.cloud == cloud, Rollout.schema == schema, Rollout.completed_at.is_(None)
            )
            return _rollout(session.scalars(query).one())

        return self._run("rollout", work)

    def finish_rollout(self, rollout_id: int, at: datetime, outcome: str) -> bool:
        """Complete an open rollout; False when it was completed already (by another replica)."""
        statement = (
            update(Rollout)
            .where(Rollout.id == rollout_id, Rollout.completed_at.is_(None))
            .values(completed_at=at, outcome=outcome)
        )
        return self._run("rollout", lambda session: bool(getattr(session.execute(statement), "rowcount", 0)))

    def current_documents(self) -> dict[TargetKey, str]:
        """The sha256 of every target's latest snapshot (the fleet other replicas poll)."""

        def work(session: Session) -> dict[TargetKey, str]:
            latest = select(func.max(Snapshot.id)).group_by(Snapshot.target_id)
            query = (
                select(Target.cloud, Target.region, Target.schema, Snapshot.document_sha256)
                .join(Target, Target.id == Snapshot.target_id)
                .where(Snapshot.id.in_(latest))
            )
            return {TargetKey(c, r, s): sha for c, r, s, sha in session.execute(query)}

        return self._run("read", work)
