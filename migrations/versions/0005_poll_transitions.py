"""Storage grows with changes, not polls: ``poll_transitions`` replaces ``poll_outcomes``.

A row is written only when a target's outcome changes (its first poll, ok → failing, failing → ok, or
another failure reason); the time of the last poll and of the last success move to ``targets``
(``last_poll_at``, ``last_success_at``), flushed in batches. The existing poll rows are reduced to their
transitions, and the targets' times are taken from them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
COLUMNS = "target_id, started_at, duration, outcome, reason, http_status, error"

# every row whose outcome or reason differs from the target's previous row (and each target's first row)
TRANSITIONS = f"""
INSERT INTO {{target}} ({COLUMNS})
SELECT {COLUMNS} FROM (
    SELECT {COLUMNS}, id,
           LAG(outcome) OVER (PARTITION BY target_id ORDER BY started_at, id) AS previous_outcome,
           LAG(reason) OVER (PARTITION BY target_id ORDER BY started_at, id) AS previous_reason,
           ROW_NUMBER() OVER (PARTITION BY target_id ORDER BY started_at, id) AS n
    FROM {{source}}
) ordered
WHERE n = 1 OR outcome <> previous_outcome OR COALESCE(reason, '') <> COALESCE(previous_reason, '')
ORDER BY started_at, id
"""


def _poll_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("target_id", Id, sa.ForeignKey("targets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("started_at", When, nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index(f"ix_{name}_target_started", name, ["target_id", "started_at"])
    op.create_index(f"ix_{name}_started", name, ["started_at"])


def upgrade() -> None:
    _poll_table("poll_transitions")
    op.execute(TRANSITIONS.format(target="poll_transitions", source="poll_outcomes"))
    with op.batch_alter_table("targets") as batch:
        batch.add_column(sa.Column("last_poll_at", When, nullable=True))
        batch.add_column(sa.Column("last_success_at", When, nullable=True))
    op.execute(
        "UPDATE targets SET "
        "last_poll_at = (SELECT max(p.started_at) FROM poll_outcomes p WHERE p.target_id = targets.id), "
        "last_success_at = (SELECT max(p.started_at) FROM poll_outcomes p "
        "WHERE p.target_id = targets.id AND p.outcome = 'success')"
    )
    op.drop_table("poll_outcomes")


def downgrade() -> None:
    _poll_table("poll_outcomes")
    op.execute(f"INSERT INTO poll_outcomes ({COLUMNS}) SELECT {COLUMNS} FROM poll_transitions ORDER BY id")
    op.drop_table("poll_transitions")
    with op.batch_alter_table("targets") as batch:
        batch.drop_column("last_success_at")
        batch.drop_column("last_poll_at")
