"""Upgrading a running monitor across migration 0007 (versions documents in their effective-range form), on
SQLite and on the real PostgreSQL: the database written by the code before it (tests/data/stored_0006) is
migrated, and today's code polling the same responses records no change."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, func, insert, select, text

from monitor.app import build
from monitor.config import parse_config
from monitor.judge.canonical import canonical_json, document_sha256
from monitor.judge.kinds import get_kind
from monitor.store.engine import _alembic_config, make_engine, upgrade
from monitor.store.tables import Base, ChangeRow, Document, Rollout, Snapshot, Target
from tests.support.served_versions import REGION, SERVED, config_data, serve
from tests.support.surface import SurfaceSimulator

STORED = json.loads((Path(__file__).parent.parent / "data" / "stored_0006" / "database.json").read_text())
T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERSIONS = get_kind("versions")


def _row(values: dict[str, Any]) -> dict[str, Any]:
    """A dumped row with its times read back (stored as UTC)."""
    return {k: datetime.fromisoformat(v).replace(tzinfo=UTC) if k.endswith(("_at", "_seen")) and v else v
            for k, v in values.items()}  # fmt: skip


def at_0006(url: str) -> Engine:
    """``url`` migrated to revision 0006, the one the stored database was written at."""
    engine = make_engine(url)
    command.upgrade(_alembic_config(engine), "0006")
    return engine


def load_stored(engine: Engine) -> None:
    """The rows written by the code of revision 0006, ids included (PostgreSQL's sequences moved past them)."""
    with engine.begin() as conn:
        for name in ("targets", "documents", "snapshots", "poll_transitions"):
            conn.execute(Base.metadata.tables[name].insert(), [_row(values) for values in STORED[name]])
            if engine.dialect.name == "postgresql" and name != "documents":
                sequence = f"pg_get_serial_sequence('{name}', 'id')"
                conn.execute(text(f"SELECT setval({sequence}, (SELECT max(id) FROM {name}))"))


def bodies(engine: Engine) -> dict[str, str]:
    """Target name → the canonical JSON of its latest snapshot."""
    query = (select(Target.schema, Document.body).join(Snapshot, Snapshot.target_id == Target.id)
             .join(Document, Document.sha256 == Snapshot.document_sha256))  # fmt: skip
    with engine.connect() as conn:
        return {schema: body for schema, body in conn.execute(query)}


def count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def normalised_now(name: str) -> str:
    """What today's code makes of the response target ``name`` is served."""
    document = next(served for served in SERVED if served.name == name).document()
    headers = {key.lower(): value for key, value in document.headers.items()}
    return canonical_json(VERSIONS.normalise(json.dumps(document.body).encode(), headers))


@pytest.fixture
def surface() -> Iterator[SurfaceSimulator]:
    with SurfaceSimulator([REGION], services=()) as simulator:
        serve(simulator)
        yield simulator


def test_the_stored_database_holds_the_earlier_form_that_would_read_as_changes() -> None:
    """The precondition of the upgrade test: without the migration, today's code would see other documents."""
    stored = {t["schema"]: next(d["body"] for d in STORED["documents"] if d["sha256"] == s["document_sha256"])
              for t in STORED["targets"] for s in STORED["snapshots"] if s["target_id"] == t["id"]}  # fmt: skip
    differ = sorted(name for name, body in stored.items() if body != normalised_now(name))

    assert differ == ["baremetal-bare", "baremetal-root-restated", "baremetal-v1", "baremetal-v1-disagreeing",
                      "baremetal-v1-latest", "block-storage-root", "compute-v2.1", "compute-v2.1-latest",
                      "placement-root", "placement-root-latest"]  # fmt: skip
    old = json.loads(stored["baremetal-v1"])
    assert [(c.path, c.rule) for c in VERSIONS.classify(old, json.loads(normalised_now("baremetal-v1")))] == [
        ("/headers/x-openstack-ironic-api-version", "value-changed")  # the served microversion, gone
    ]


def test_an_upgraded_monitor_records_no_change_for_targets_serving_what_they_served(
    db_url: str, surface: SurfaceSimulator
) -> None:
    engine = at_0006(db_url)
    load_stored(engine)
    upgrade(engine)
    migrated = bodies(engine)
    snapshots = count(engine, Snapshot)

    parts = build(parse_config(config_data(surface, db_url), "test"))
    loop = asyncio.new_event_loop()
    try:
        results = [loop.run_until_complete(parts.service.poll(spec)) for spec in parts.specs]
        loop.run_until_complete(parts.service.flush())
    finally:
        loop.run_until_complete(parts.aclose())
        loop.close()

    assert len(results) == len(SERVED) == len(STORED["targets"])
    assert [(r.target.schema, r.ok, r.first_snapshot, r.changes) for r in results] == [
        (served.name, True, False, ()) for served in SERVED
    ]  # fmt: skip
    assert migrated == {served.name: normalised_now(served.name) for served in SERVED}
    assert count(engine, Snapshot) == snapshots == len(SERVED) and count(engine, ChangeRow) == 0
    assert json.loads(migrated["baremetal-v1-disagreeing"])["headers"] == {
        "x-openstack-ironic-api-maximum-version": "1.80"
    }  # the header that disagrees with the body's 1.82 stays a difference
    engine.dispose()


def test_the_migration_moves_every_reference_and_leaves_other_documents_alone(db_url: str) -> None:
    engine = at_0006(db_url)
    load_stored(engine)
    v1 = next(d for d in STORED["documents"] if '"x-openstack-ironic-api-version":"1.1"' in d["body"]
              and '"chassis"' in d["body"] and '"1.80"' not in d["body"])  # fmt: skip
    lookalike = canonical_json({"headers": {"x-openstack-ironic-api-version": "1.1"}, "versions": "none"})
    schema = canonical_json({"properties": {"headers": {"type": "object"}}, "type": "object"})
    with engine.begin() as conn:
        for body in (lookalike, schema):
            conn.execute(insert(Document), {"sha256": document_sha256(body), "body": body, "size": 1,
                                            "properties": 0, "created_at": T0})  # fmt: skip
        conn.execute(insert(ChangeRow), {"target_id": 1, "snapshot_id": 1, "from_sha256": v1["sha256"],
                                         "to_sha256": document_sha256(schema), "path": "/x", "rule": "value-changed",
                                         "severity": "info", "detected_at": T0, "fingerprint": "f"})  # fmt: skip
        conn.execute(insert(Rollout), {"cloud": "os", "schema": "baremetal-v1", "from_sha256": None,
                                       "to_sha256": v1["sha256"], "started_at": T0})  # fmt: skip

    upgrade(engine)
    upgrade(engine)  # at head: nothing more to do

    today = document_sha256(normalised_now("baremetal-v1"))
    with engine.connect() as conn:
        shas = set(conn.execute(select(Document.sha256)).scalars())
        change = conn.execute(select(ChangeRow.from_sha256, ChangeRow.to_sha256)).one()
        rollout = conn.execute(select(Rollout.to_sha256)).scalar_one()
        referenced = set(conn.execute(select(Snapshot.document_sha256)).scalars())
    assert v1["sha256"] not in shas and today in shas
    assert tuple(change) == (today, document_sha256(schema)) and rollout == today
    assert {document_sha256(lookalike), document_sha256(schema)} <= shas  # no versions documents: untouched
    # one body served at two microversions (nova, placement), or with and without restating headers (ironic's
    # root): one document now. Ironic's /v1/ at latest lists more resources, so it stays another.
    assert referenced <= shas and len(referenced) == len(SERVED) - 3
    engine.dispose()
