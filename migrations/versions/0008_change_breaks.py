"""The consumers a change breaks: ``changes.breaks`` (JSON text; NULL when it breaks none).

A change that turns a consumer requirement from met to not met (docs/consumers.md) is stored with the marks
``[{"consumer", "requirement", "description", "reason"}]``, in the transaction that stores the change: the
notification built from it later, ``history``, the API and the UI read the mark as it was when the change was
seen, whatever the configuration says by then. Rows written before this revision have none.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("breaks", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("breaks")
