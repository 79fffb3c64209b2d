"""The read side of ``export git``: every stored snapshot in time order, with its document and changes.

Set-based and paged: each page of ``PAGE_SIZE`` snapshots is two queries in one short transaction (the
snapshots joined with their targets and documents, then the changes of those snapshots), so an export of
any length makes two queries per page and holds one page of document bodies in memory at a time.

Pages are keyed on ``(first_seen, id)``, the export's order; a snapshot stored while an export runs joins a
later page when it sorts after the current one. ``after`` (an :class:`ExportCursor`) resumes an earlier
export: it selects what sorts after the last exported snapshot, and also any snapshot whose id is above
every exported id (one whose poll started earlier but whose transaction committed after that export read
the table). Documents are immutable and a snapshot's changes commit with it, so no page can see a
snapshot without its body or with half of its changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Final

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from monitor.domain import Severity, TargetKey
from monitor.store.base import Transactions, as_utc
from monitor.store.records import ExportCursor, ExportedChange, ExportedSnapshot, ExportScope
from monitor.store.tables import ChangeRow, Document, Snapshot, Target

PAGE_SIZE: Final = 500


class ExportStore(Transactions):
    """Read-only queries for exports; each page is one transaction, raising StoreError."""

    def snapshots(
        self, scope: ExportScope | None = None, after: ExportCursor | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[ExportedSnapshot]:
        """The snapshots of the targets in ``scope``, ordered by ``(first_seen, id)``, resuming ``after``.

        A generator: the next page is read only when the previous one has been consumed.
        """
        scope = scope or ExportScope()
        position: tuple[datetime, int] | None = None
        while True:
            page = self._run("read", partial(_page, scope=scope, after=after, position=position, limit=page_size))
            yield from page
            if len(page) < page_size:
                return
            position = (page[-1].first_seen, page[-1].id)


def _page(
    session: Session, *, scope: ExportScope, after: ExportCursor | None, position: tuple[datetime, int] | None,
    limit: int,
) -> list[ExportedSnapshot]:  # fmt: skip
    query = (
        select(Snapshot.id, Snapshot.first_seen, Snapshot.document_sha256, Document.body,
               Target.cloud, Target.region, Target.schema)
        .join(Target, Snapshot.target_id == Target.id)
        .join(Document, Document.sha256 == Snapshot.document_sha256)
        .where(*_scope_conditions(scope), *_after_conditions(after, position))
        .order_by(Snapshot.first_seen, Snapshot.id)
        .limit(limit)
    )  # fmt: skip
    rows = session.execute(query).all()
    changes = _changes(session, [row.id for row in rows])
    return [
        ExportedSnapshot(
            id=row.id,
            target=TargetKey(row.cloud, row.region, row.schema),
            first_seen=as_utc(row.first_seen),
            sha256=row.document_sha256,
            body=row.body,
            changes=tuple(changes.get(row.id, ())),
        )
        for row in rows
    ]


def _changes(session: Session, snapshot_ids: Sequence[int]) -> dict[int, list[ExportedChange]]:
    """The changes recorded with each of ``snapshot_ids``, in the order they were stored."""
    found: dict[int, list[ExportedChange]] = {}
    if not snapshot_ids:
        return found
    query = (
        select(ChangeRow.snapshot_id, ChangeRow.rule, ChangeRow.severity, ChangeRow.path, ChangeRow.ignored,
               ChangeRow.expected)
        .where(ChangeRow.snapshot_id.in_(snapshot_ids))
        .order_by(ChangeRow.id)
    )  # fmt: skip
    for row in session.execute(query):
        change = ExportedChange(row.rule, Severity(row.severity), row.path, bool(row.ignored), bool(row.expected))
        found.setdefault(row.snapshot_id, []).append(change)
    return found


def _scope_conditions(scope: ExportScope) -> list[Any]:
    columns = ((Target.cloud, scope.cloud), (Target.region, scope.region), (Target.schema, scope.schema))
    return [column == value for column, value in columns if value is not None]


def _sorts_after(first_seen: datetime, snapshot_id: int) -> Any:
    """``(first_seen, id) > (first_seen, snapshot_id)``, spelled out for both backends."""
    return or_(Snapshot.first_seen > first_seen, and_(Snapshot.first_seen == first_seen, Snapshot.id > snapshot_id))


def _after_conditions(after: ExportCursor | None, position: tuple[datetime, int] | None) -> list[Any]:
    conditions: list[Any] = []
    if after is not None:
        conditions.append(or_(_sorts_after(after.first_seen, after.snapshot_id), Snapshot.id > after.max_id))
    if position is not None:
        conditions.append(_sorts_after(*position))
    return conditions
