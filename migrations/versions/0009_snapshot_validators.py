"""The HTTP validators of a snapshot's document: ``snapshots.etag`` and ``snapshots.last_modified`` (text, NULL).

A server that sends ``ETag`` / ``Last-Modified`` can answer a conditional request with ``304 Not Modified``
and no body (``monitor.poll.conditional``). The validators proven for a target's current document are kept
on its latest snapshot, so the first poll after a restart revalidates instead of fetching the body again.
They are written with the batched poll times, only when they change. Rows written before this revision
have none (the next full response brings them).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("etag", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_modified", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("last_modified")
        batch.drop_column("etag")
