"""Initial schema: documents, targets, snapshots, poll_outcomes, changes.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("properties", sa.Integer(), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )
    op.create_table(
        "targets",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("cloud", sa.String(63), nullable=False),
        sa.Column("region", sa.String(63), nullable=False),
        sa.Column("schema", sa.String(63), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("cloud", "region", "schema", name="uq_targets_key"),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("target_id", Id, sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("document_sha256", sa.String(64), sa.ForeignKey("documents.sha256"), nullable=False),
        sa.Column("first_seen", When, nullable=False),
        sa.Column("last_seen", When, nullable=False),
    )
    op.create_index("ix_snapshots_target_first_seen", "snapshots", ["target_id", "first_seen"])
    op.create_table(
        "poll_outcomes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("target_id", Id, sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("started_at", When, nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_poll_outcomes_target_started", "poll_outcomes", ["target_id", "started_at"])
    op.create_index("ix_poll_outcomes_started", "poll_outcomes", ["started_at"])
    op.create_table(
        "changes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("target_id", Id, sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("snapshot_id", Id, sa.ForeignKey("snapshots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("from_sha256", sa.String(64), sa.ForeignKey("documents.sha256"), nullable=False),
        sa.Column("to_sha256", sa.String(64), sa.ForeignKey("documents.sha256"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("detected_at", When, nullable=False),
    )
    op.create_index("ix_changes_target_detected", "changes", ["target_id", "detected_at"])
    op.create_index("ix_changes_detected", "changes", ["detected_at"])


def downgrade() -> None:
    for table in ("changes", "poll_outcomes", "snapshots", "targets", "documents"):
        op.drop_table(table)
