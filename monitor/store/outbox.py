"""The notification outbox: durable grouping of changes into notifications, and their delivery state.

Changes are already durable (the ``changes`` table). Each channel has a cursor: the id of the last change
it has turned into a notification. ``group_pending`` turns every newer change into ONE outbox entry and
moves the cursor in the same transaction, so a crash can neither lose a group nor create it twice. The
dispatcher then delivers entries and records each attempt; an entry stays ``pending`` until delivered,
so a restart between a failed attempt and its retry loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from monitor.domain import TargetKey
from monitor.store.base import Transactions, dialect_insert, opt_aware
from monitor.store.records import ChangeRecord, GroupRequest, OutboxItem
from monitor.store.repository import change_record, change_times, hold_changes_lock
from monitor.store.tables import ChangeRow, NotificationCursor, OutboxEntry, Target

PENDING, SENT, FAILED = "pending", "sent", "failed"


def _flapping(
    session: Session, records: Sequence[ChangeRecord], request: GroupRequest, now: datetime
) -> set[TargetKey]:
    """Targets among ``records`` whose document changed ``flapping_threshold`` times inside the flapping window."""
    since = now - timedelta(seconds=request.flapping_window)
    times = change_times(session, since, {r.target_id for r in records})
    return {r.target for r in records if len(times.get(r.target_id, ())) >= request.flapping_threshold}


class OutboxStore(Transactions):
    """Cursors and outbox entries; every method is one transaction (raises StoreError)."""

    def ensure_cursors(self, channels: Sequence[str]) -> None:
        """Give each new channel a cursor at the newest change: history is not replayed to it."""

        def work(session: Session) -> None:
            newest = session.scalar(select(func.max(ChangeRow.id))) or 0
            for channel in channels:
                session.execute(
                    dialect_insert(session)(NotificationCursor)
                    .values(channel=channel, last_change_id=newest)
                    .on_conflict_do_nothing(index_elements=["channel"])
                )

        self._run("notify", work)

    def group_pending(self, request: GroupRequest, now: datetime) -> int | None:
        """Turn the channel's new changes into one outbox entry once the oldest is ``window`` old.

        Returns the new entry's id, or None when there is nothing (yet) to send.
        """

        def work(session: Session) -> int | None:
            hold_changes_lock(session, shared=False)  # no change transaction is open past this point
            cursor = session.scalars(
                select(NotificationCursor).where(NotificationCursor.channel == request.channel).with_for_update()
            ).one()
            rows = session.execute(
                select(ChangeRow, Target)
                .join(Target, ChangeRow.target_id == Target.id)
                .where(ChangeRow.id > cursor.last_change_id)
                .order_by(ChangeRow.id)
            ).all()
            if not rows:
                return None
            records = [change_record(change, target) for change, target in rows]
            if records[0].detected_at > now - timedelta(seconds=request.window):
                return None  # the grouping window is still open
            cursor.last_change_id = rows[-1][0].id
            kept = [r for r in records if request.keep(r)]
            if not kept:
                return None
            entry = OutboxEntry(
                channel=request.channel,
                payload=request.build(kept, now, _flapping(session, kept, request, now)),
                created_at=now,
                next_attempt_at=now,
                ends_at=now + timedelta(seconds=request.active_for) if request.active_for else None,
                attempts=0,
                status=PENDING,
            )
            session.add(entry)
            session.flush()
            return entry.id

        return self._run("notify", work)

    def due(self, now: datetime, lease: float = 60.0, limit: int = 100) -> list[OutboxItem]:
        """Claim pending entries whose next attempt is due, oldest first.

        Claiming pushes their next attempt ``lease`` seconds ahead in the same transaction (rows locked
        with SKIP LOCKED on PostgreSQL), so two monitor processes never deliver the same entry at once;
        an entry whose claimer died is retried when the lease runs out.
        """

        def work(session: Session) -> list[OutboxItem]:
            rows = list(
                session.scalars(
                    select(OutboxEntry)
                    .where(OutboxEntry.status == PENDING, OutboxEntry.next_attempt_at <= now)
                    .order_by(OutboxEntry.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.next_attempt_at = now + timedelta(seconds=lease)
            return [
                OutboxItem(r.id, r.channel, r.payload, opt_aware(r.created_at) or now, opt_aware(r.ends_at), r.attempts)
                for r in rows
            ]

        return self._run("notify", work)

    def mark_sent(self, entry_id: int, now: datetime, resend_at: datetime | None = None) -> None:
        """Record a delivery; with ``resend_at`` the entry stays pending to be sent again then."""
        values: dict[str, object] = {"sent_at": now, "last_error": None, "attempts": 0}
        if resend_at is None:
            values["status"] = SENT
        else:
            values["next_attempt_at"] = resend_at
        self._update(entry_id, values)

    def mark_retry(self, entry_id: int, attempts: int, retry_at: datetime, error: str) -> None:
        """Record a transient failure; the entry is tried again at ``retry_at``."""
        self._update(entry_id, {"attempts": attempts, "next_attempt_at": retry_at, "last_error": error[:500]})

    def mark_failed(self, entry_id: int, attempts: int, error: str) -> None:
        """Record a permanent failure (or retries exhausted); the entry is not tried again."""
        self._update(entry_id, {"attempts": attempts, "status": FAILED, "last_error": error[:500]})

    def _update(self, entry_id: int, values: dict[str, object]) -> None:
        self._run(
            "notify",
            lambda session: session.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id).values(**values)),
        )

    def entries(self) -> list[tuple[int, str, str, int, str | None]]:
        """(id, channel, status, attempts, last_error) of every entry, for tests and diagnostics."""

        def work(session: Session) -> list[tuple[int, str, str, int, str | None]]:
            rows = session.scalars(select(OutboxEntry).order_by(OutboxEntry.id))
            return [(r.id, r.channel, r.status, r.attempts, r.last_error) for r in rows]

        return self._run("notify", work)
