"""Coordination of replicas: ``replicas``, ``target_leases``, ``singleton_leases``; one open rollout per group.

The partial unique index ``uq_rollouts_open`` allows at most one rollout with ``completed_at IS NULL`` per
(cloud, schema). Existing data may have several (two replicas, or a lost ``finish``): all but the newest
(latest ``started_at``, then highest id) are closed first as ``superseded``, completed when the newest one
started.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
OPEN = sa.text("completed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("started_at", When, nullable=False),
        sa.Column("heartbeat_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.Column("info", sa.Text(), nullable=False),
    )
    op.create_table(
        "target_leases",
        sa.Column("target_id", Id, sa.ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", When, nullable=False),
    )
    op.create_index("ix_target_leases_owner", "target_leases", ["owner"])
    op.create_table(
        "singleton_leases",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", When, nullable=False),
    )
    _close_duplicate_open_rollouts()
    op.create_index(
        "uq_rollouts_open",
        "rollouts",
        ["cloud", "schema"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def _close_duplicate_open_rollouts() -> None:
    """Mark every open rollout but the newest of its (cloud, schema) ``superseded``."""
    rollouts = sa.table(
        "rollouts",
        sa.column("id", Id),
        sa.column("cloud", sa.String),
        sa.column("schema", sa.String),
        sa.column("started_at", When),
        sa.column("completed_at", When),
        sa.column("outcome", sa.String),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(rollouts.c.id, rollouts.c.cloud, rollouts.c.schema, rollouts.c.started_at)
        .where(rollouts.c.completed_at.is_(None))
        .order_by(rollouts.c.started_at.desc(), rollouts.c.id.desc())
    ).all()
    newest: dict[tuple[str, str], object] = {}
    for row in rows:
        group = (row.cloud, row.schema)
        if group not in newest:
            newest[group] = row.started_at
            continue
        closing = sa.update(rollouts).where(rollouts.c.id == row.id)
        bind.execute(closing.values(completed_at=newest[group], outcome="superseded"))


def downgrade() -> None:
    op.drop_index("uq_rollouts_open", "rollouts")
    op.drop_table("singleton_leases")
    op.drop_table("target_leases")
    op.drop_table("replicas")
