"""SQLAlchemy 2 tables. The Alembic migrations in ``migrations/`` create exactly these.

* ``documents`` — every distinct canonical document once, keyed by the SHA-256 of its canonical JSON.
* ``targets`` — one row per (cloud, region, schema) ever configured, with the time of its last poll and last
  successful poll (written in batches, every few seconds).
* ``snapshots`` — a target's history: one row per run of identical documents (first/last seen);
  an unchanged poll only moves ``last_seen``. ``etag`` / ``last_modified``: the HTTP validators proven for the
  document (``monitor.poll.conditional``), written with the batched poll times only when they change.
* ``poll_transitions`` — a row each time a target's poll outcome changes (first poll, ok → failing, failing
  → ok, another reason); unchanged polls write nothing there. Pruned after ``database.poll_retention``,
  except each target's latest row (its current state).
* ``changes`` — every classified change between two consecutive snapshots of a target (with the consumer
  requirements it broke, docs/consumers.md).
* ``replicas``, ``target_leases``, ``singleton_leases`` — coordination of several monitor replicas on one
  PostgreSQL (heartbeats, per-target leases with a fencing epoch, leader leases); see
  ``docs/high-availability.md`` and :mod:`monitor.store.coordination`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT on PostgreSQL, INTEGER (rowid alias, autoincrement) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "documents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON
    size: Mapped[int] = mapped_column(Integer)
    properties: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Target(Base):
    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("cloud", "region", "schema", name="uq_targets_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    cloud: Mapped[str] = mapped_column(String(63))
    region: Mapped[str] = mapped_column(String(63))
    schema: Mapped[str] = mapped_column(String(63))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the approved document; NULL means the target's first snapshot
    baseline_snapshot_id: Mapped[int | None] = mapped_column(Id)
    # when region discovery dropped the target (its history stays); NULL while it is polled
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Snapshot(Base):
    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_target_first_seen", "target_id", "first_seen"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    document_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the validators a conditional request for this document sends (NULL: none known, or none worth sending)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)


class PollTransition(Base):
    """A target's poll outcome from ``started_at`` on, until its next transition."""

    __tablename__ = "poll_transitions"
    __table_args__ = (
        Index("ix_poll_transitions_target_started", "target_id", "started_at"),
        Index("ix_poll_transitions_started", "started_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure
    reason: Mapped[str | None] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class ChangeRow(Base):
    __tablename__ = "changes"
    __table_args__ = (
        Index("ix_changes_target_detected", "target_id", "detected_at"),
        Index("ix_changes_detected", "detected_at"),
        Index("ix_changes_fingerprint", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id", ondelete="CASCADE"))
    from_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"))
    to_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"))
    path: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    old_value: Mapped[str | None] = mapped_column(Text)  # JSON text; NULL when the side is absent
    new_value: Mapped[str | None] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fingerprint: Mapped[str] = mapped_column(String(64), server_default="")
    ignored: Mapped[bool] = mapped_column(Boolean, server_default=false())  # matched an ignore rule
    expected: Mapped[bool] = mapped_column(Boolean, server_default=false())  # inside an expected-change window
    breaks: Mapped[str | None] = mapped_column(Text)  # JSON list of the consumer requirements it broke; NULL: none


class NotificationCursor(Base):
    """Per channel: the last change id already turned into a notification."""

    __tablename__ = "notification_cursors"

    channel: Mapped[str] = mapped_column(String(63), primary_key=True)
    last_change_id: Mapped[int] = mapped_column(Id)


class OutboxEntry(Base):
    """A notification to deliver (or, for Alertmanager, to keep re-sending until ``ends_at``)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(63))
    payload: Mapped[str] = mapped_column(Text)  # the grouped change report (JSON), no secrets
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | failed
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Acknowledgement(Base):
    """A human approval: of one change (``fingerprint``) or of a whole document (``snapshot_id``)."""

    __tablename__ = "acknowledgements"
    __table_args__ = (Index("ix_acknowledgements_target", "target_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    snapshot_id: Mapped[int | None] = mapped_column(Id)
    comment: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Rollout(Base):
    """A change spreading across the regions of one (cloud, schema)."""

    __tablename__ = "rollouts"
    __table_args__ = (
        Index("ix_rollouts_cloud_schema", "cloud", "schema", "started_at"),
        # at most one open rollout per (cloud, schema), whichever replica writes it
        Index(
            "uq_rollouts_open",
            "cloud",
            "schema",
            unique=True,
            postgresql_where=text("completed_at IS NULL"),
            sqlite_where=text("completed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    cloud: Mapped[str] = mapped_column(String(63))
    schema: Mapped[str] = mapped_column(String(63))
    from_sha256: Mapped[str | None] = mapped_column(String(64))
    to_sha256: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))  # converged | reverted | superseded
    expected: Mapped[bool] = mapped_column(Boolean, server_default=false())


class ExpectedWindow(Base):
    """An operator's announcement: changes to this cloud (and schema) in this window are expected."""

    __tablename__ = "expected_windows"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    cloud: Mapped[str] = mapped_column(String(63))
    schema: Mapped[str | None] = mapped_column(String(63))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Replica(Base):
    """A running monitor replica: its heartbeat and when the database stops counting it as live."""

    __tablename__ = "replicas"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # of this run (reset after expiry)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    info: Mapped[str] = mapped_column(Text)  # JSON object: version, host, pid (no secrets)


class TargetLease(Base):
    """Who may poll and write a target until when; ``epoch`` grows by one at every change of holder.

    A released or expired lease keeps its last owner and epoch (``expires_at`` in the past) so the next
    holder continues the epoch sequence.
    """

    __tablename__ = "target_leases"
    __table_args__ = (Index("ix_target_leases_owner", "owner"),)

    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SingletonLease(Base):
    """A leader lease for work only one replica may do (pruning, discovery, rollout settlement, dispatch)."""

    __tablename__ = "singleton_leases"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
