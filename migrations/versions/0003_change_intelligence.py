"""Change intelligence: baselines, change fingerprints and flags, acknowledgements, rollouts, expected windows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("targets") as batch:
        batch.add_column(sa.Column("baseline_snapshot_id", Id, nullable=True))
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("ignored", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("expected", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_changes_fingerprint", "changes", ["fingerprint"])
    op.create_table(
        "acknowledgements",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("target_id", Id, sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("snapshot_id", Id, nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=True),
    )
    op.create_index("ix_acknowledgements_target", "acknowledgements", ["target_id"])
    op.create_table(
        "rollouts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("cloud", sa.String(63), nullable=False),
        sa.Column("schema", sa.String(63), nullable=False),
        sa.Column("from_sha256", sa.String(64), nullable=True),
        sa.Column("to_sha256", sa.String(64), nullable=False),
        sa.Column("started_at", When, nullable=False),
        sa.Column("completed_at", When, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("expected", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_rollouts_cloud_schema", "rollouts", ["cloud", "schema", "started_at"])
    op.create_table(
        "expected_windows",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("cloud", sa.String(63), nullable=False),
        sa.Column("schema", sa.String(63), nullable=True),
        sa.Column("starts_at", When, nullable=False),
        sa.Column("ends_at", When, nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", When, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("expected_windows")
    op.drop_table("rollouts")
    op.drop_table("acknowledgements")
    op.drop_index("ix_changes_fingerprint", "changes")
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("expected")
        batch.drop_column("ignored")
        batch.drop_column("fingerprint")
    with op.batch_alter_table("targets") as batch:
        batch.drop_column("baseline_snapshot_id")
