"""Stored versions documents take today's canonical form: the effective range, without the served microversion.

Until now a versions document kept under ``headers`` the microversion its response was served at
(``OpenStack-API-Version``, ``X-OpenStack-<service>-API-Version``) and the minimum/maximum headers even where
they restated the body. Today's ``normalise`` drops both (docs/change-rules.md, kind ``versions``), so an
unchanged target would read a document of another hash than the one stored, and record a change: ironic's
``GET /v1/`` would look like a lowered minimum on the first poll after the upgrade.

``monitor.judge.kinds.reconciled`` turns each stored versions document into what ``normalise`` gives now for the
same response. Its hash changes, so the new document is stored (once, where several old ones become one: the
same document served at two microversions) and every reference moves to it (snapshots, the changes' from/to,
the rollouts' from/to) before the old row goes. Only documents whose canonical JSON starts with a non-empty
``headers`` object are read; any of them that ``reconciled`` does not recognise as a versions document (a
``json`` document with a top-level ``headers`` member, say) is left alone, as are all other documents.
History keeps its rows: a ``served-microversion-changed`` change recorded before stays, between two snapshots
that now show the same document.

Downgrade leaves the documents in today's form (the served microversion is not kept anywhere to restore it):
code of revision 0006 would then record the served microversion as a change once per target.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from monitor.judge.canonical import canonical_json, count_properties, document_sha256
from monitor.judge.kinds import reconciled

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CANDIDATES = sa.text("SELECT sha256, body, size, created_at FROM documents WHERE body LIKE :prefix ORDER BY sha256")
PREFIX = '{"headers":{"%'  # canonical JSON sorts keys: a versions document with a header starts so
REFERENCES = (("snapshots", "document_sha256"), ("changes", "from_sha256"), ("changes", "to_sha256"),
              ("rollouts", "from_sha256"), ("rollouts", "to_sha256"))  # fmt: skip


def _today(body: str) -> str | None:
    """The canonical JSON of the document in today's form; None for a document that is no versions one."""
    try:
        return canonical_json(reconciled(json.loads(body)))
    except ValueError:  # no JSON object of the versions kind (json.JSONDecodeError is a ValueError too)
        return None


def _move(conn: sa.Connection, row: Any, body: str) -> None:
    """Store ``body`` (unless stored already), point every reference of ``row`` at it, delete ``row``."""
    sha = document_sha256(body)
    if conn.execute(sa.text("SELECT 1 FROM documents WHERE sha256 = :sha"), {"sha": sha}).first() is None:
        conn.execute(
            sa.text("INSERT INTO documents (sha256, body, size, properties, created_at) "
                    "VALUES (:sha, :body, :size, :properties, :created_at)"),
            {"sha": sha, "body": body, "size": row.size, "properties": count_properties(json.loads(body)),
             "created_at": row.created_at},
        )  # fmt: skip
    for table, column in REFERENCES:
        conn.execute(
            sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"), {"new": sha, "old": row.sha256}
        )
    conn.execute(sa.text("DELETE FROM documents WHERE sha256 = :old"), {"old": row.sha256})


def upgrade() -> None:
    conn = op.get_bind()
    for row in conn.execute(CANDIDATES, {"prefix": PREFIX}).all():
        body = _today(row.body)
        if body is not None and body != row.body:
            _move(conn, row, body)


def downgrade() -> None:
    pass  # see the module: the documents stay in today's form
