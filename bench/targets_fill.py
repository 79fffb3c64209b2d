"""A database that looks as if the benchmark's fleet had been polled: N targets with their current state rows.

``fill(url, targets)`` migrates an empty database to head and bulk-inserts, for the fleet of
:mod:`bench.fleet` (one cloud, N/4 regions x the four Glance schemas):

* ``documents`` — the four real-shaped documents, plus a variant of ``images`` with one more property;
* ``targets`` — one row per target, with its last poll and last success times;
* ``snapshots`` — one per target (its first document); every :data:`DEVIATING_EVERY`-th region's ``images``
  has a second one, the variant: it deviates from the majority and has drift against its baseline;
* ``changes`` — the one change of each such second snapshot;
* ``poll_transitions`` — one per target: its first poll, a success.

SQLite through ``sqlite3`` ``executemany`` in one transaction; PostgreSQL through ``COPY``. About a second per
10,000 targets on either. The rows are what the monitor's own writes would leave (the same columns, the same
canonical documents), so the read model answers from them as from a real fleet.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.fleet import CLOUD, SCHEMAS, documents_dir, regions_for
from monitor.judge.canonical import canonical_json, count_properties, document_sha256
from monitor.store.engine import make_engine, upgrade

DEVIATING_EVERY = 50  # one region in 50 serves the variant of ``images``


@dataclass(frozen=True)
class Doc:
    sha256: str
    body: str
    properties: int


def _document(parsed: Any) -> Doc:
    body = canonical_json(parsed)
    return Doc(document_sha256(body), body, count_properties(parsed))


def documents() -> tuple[dict[str, Doc], Doc]:
    """The document of each schema, and the variant of ``images``."""
    parsed = {schema: json.loads((documents_dir() / f"{schema}.json").read_text()) for schema in SCHEMAS}
    images = parsed["images"]
    variant = {**images, "properties": {**images["properties"], "bench_added": {"type": "string"}}}
    return {schema: _document(doc) for schema, doc in parsed.items()}, _document(variant)


@dataclass(frozen=True)
class Rows:
    """Every row to insert, as tuples in the column order of :data:`COLUMNS`."""

    documents: list[tuple[Any, ...]]
    targets: list[tuple[Any, ...]]
    snapshots: list[tuple[Any, ...]]
    changes: list[tuple[Any, ...]]
    transitions: list[tuple[Any, ...]]


COLUMNS = {
    "documents": ("sha256", "body", "size", "properties", "created_at"),
    "targets": ("id", "cloud", "region", "schema", "url", "created_at", "last_poll_at", "last_success_at"),
    "snapshots": ("id", "target_id", "document_sha256", "first_seen", "last_seen"),
    "changes": ("id", "target_id", "snapshot_id", "from_sha256", "to_sha256", "path", "rule", "severity",
                "old_value", "new_value", "detected_at", "fingerprint", "ignored", "expected"),
    "poll_transitions": ("id", "target_id", "started_at", "duration", "outcome"),
}  # fmt: skip


def rows(targets: int, now: datetime) -> Rows:
    """The rows of a fleet of ``targets`` (rounded up to whole regions) polled until ``now``."""
    docs, variant = documents()
    start = now - timedelta(days=1)
    out = Rows([(d.sha256, d.body, len(d.body.encode()), d.properties, start) for d in [*docs.values(), variant]],
               [], [], [], [])  # fmt: skip
    keys = list(_keys(regions_for(targets)))
    for index, (region, schema) in enumerate(keys, start=1):
        url = f"http://127.0.0.1:1/{region}/v2/schemas/{schema}"
        out.targets.append((index, CLOUD, region, schema, url, start, now, now))
        out.snapshots.append((index, index, docs[schema].sha256, start, now))
        out.transitions.append((index, index, start, 0.01, "success"))
        if schema == "images" and int(region[1:]) % DEVIATING_EVERY == 0:
            changed = len(keys) + len(out.changes) + 1  # snapshot ids above the first snapshots' own
            out.snapshots.append((changed, index, variant.sha256, now - timedelta(hours=1), now))
            out.changes.append((len(out.changes) + 1, index, changed, docs[schema].sha256, variant.sha256,
                                "/properties/bench_added", "property_added", "info", None, '{"type": "string"}',
                                now - timedelta(hours=1), f"{index:064x}", False, False))  # fmt: skip
    return out


def _keys(regions: Sequence[str]) -> Iterator[tuple[str, str]]:
    for region in regions:
        for schema in SCHEMAS:
            yield region, schema


def fill(url: str, targets: int) -> int:
    """Migrate the empty database at ``url`` and fill it with a polled fleet of ``targets``; returns the count."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    data = rows(targets, datetime.now(UTC))
    tables = {"documents": data.documents, "targets": data.targets, "snapshots": data.snapshots,
              "changes": data.changes, "poll_transitions": data.transitions}  # fmt: skip
    if url.startswith("sqlite"):
        _fill_sqlite(str(make_url(url).database), tables)
    else:
        _fill_postgresql(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False), tables)
    return len(data.targets)


def _fill_sqlite(path: str, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    lite = sqlite3.connect(path)
    try:
        with lite:
            for table, values in tables.items():
                columns = COLUMNS[table]
                marks = ", ".join("?" for _ in columns)
                lite.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)
        lite.execute("ANALYZE")
    finally:
        lite.close()


def _fill_postgresql(dsn: str, tables: dict[str, list[tuple[Any, ...]]]) -> None:
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cursor:
            for table, values in tables.items():
                with cursor.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
            for table in ("targets", "snapshots", "changes", "poll_transitions"):  # ids went in by hand
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
