"""What consumer contracts are judged on: each target's current document and whether its polls fail.

One query answers both the live side (the daemon re-reads it at every refresh, so a region polled by another
replica, or a target whose polls started failing, counts) and the read side (``consumers``, ``/api/consumers``):
the latest snapshot's document and the latest outcome transition of every polled (not retired) target of the
given (cloud, schema) pairs. Document bodies are read separately, once per distinct document.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from monitor.domain import TargetKey
from monitor.store.base import Transactions
from monitor.store.records import TargetNow
from monitor.store.tables import Document, PollTransition, Snapshot, Target


class ConsumerStore(Transactions):
    """Read-only queries for consumer contracts; each is one transaction, raising StoreError."""

    def current(self, groups: Collection[tuple[str, str]]) -> dict[TargetKey, TargetNow]:
        """Every polled target of the (cloud, schema) ``groups``: its current document and failure reason."""
        if not groups:
            return {}
        return self._run("read", lambda session: _current(session, groups))

    def bodies(self, shas: Collection[str]) -> dict[str, str]:
        """The canonical JSON of each stored document of ``shas`` (unknown ones left out)."""
        if not shas:
            return {}
        query = select(Document.sha256, Document.body).where(Document.sha256.in_(list(shas)))
        return self._run("read", lambda session: {sha: body for sha, body in session.execute(query)})


def _current(session: Session, groups: Collection[tuple[str, str]]) -> dict[TargetKey, TargetNow]:
    wanted = or_(*(and_(Target.cloud == cloud, Target.schema == schema) for cloud, schema in sorted(groups)))
    targets = select(Target.id).where(Target.retired_at.is_(None), wanted)
    rows = {
        row.id: TargetKey(row.cloud, row.region, row.schema)
        for row in session.execute(select(Target.id, Target.cloud, Target.region, Target.schema).where(
            Target.id.in_(targets)))
    }  # fmt: skip
    latest = select(func.max(Snapshot.id)).where(Snapshot.target_id.in_(targets)).group_by(Snapshot.target_id)
    shas = {
        tid: sha
        for tid, sha in session.execute(
            select(Snapshot.target_id, Snapshot.document_sha256).where(Snapshot.id.in_(latest))
        )
    }
    last = (
        select(func.max(PollTransition.id)).where(PollTransition.target_id.in_(targets))
        .group_by(PollTransition.target_id)
    )  # fmt: skip
    outcomes = {
        row.target_id: row.reason or "failure"
        for row in session.execute(
            select(PollTransition.target_id, PollTransition.reason).where(
                PollTransition.id.in_(last), PollTransition.outcome != "success")
        )
    }  # fmt: skip
    return {key: TargetNow(shas.get(tid), outcomes.get(tid)) for tid, key in rows.items()}
