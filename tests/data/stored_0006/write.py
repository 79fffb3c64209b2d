"""Kept for provenance, not run by the tests: how ``database.json`` was written, with the code of commit 0cbbf44
(schema revision 0006), before migration 0007 changed the canonical form of versions documents.

It serves :data:`tests.support.served_versions.SERVED`, lets that code's pipeline (``monitor.app.build`` and
``PollService.poll``) poll every target once into a fresh SQLite database, and dumps the rows of ``targets``,
``documents``, ``snapshots`` and ``poll_transitions``. Run with the code of a later commit it would write that
code's forms, which is not what the upgrade test needs.

    python -m tests.data.stored_0006.write > tests/data/stored_0006/database.json
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from monitor.app import build
from monitor.config import parse_config
from monitor.store.tables import Document, PollTransition, Snapshot, Target
from tests.support.served_versions import REGION, config_data, serve
from tests.support.surface import SurfaceSimulator


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, SurfaceSimulator([REGION], services=()) as simulator:
        serve(simulator)
        config = parse_config(config_data(simulator, f"sqlite:///{Path(directory) / 'm.db'}"), "write.py")
        parts = build(config)
        loop = asyncio.new_event_loop()
        for spec in parts.specs:
            result = loop.run_until_complete(parts.service.poll(spec))
            assert result.ok and result.first_snapshot, result
        loop.run_until_complete(parts.aclose())
        loop.close()
        tables = {"targets": Target, "documents": Document, "snapshots": Snapshot, "poll_transitions": PollTransition}
        dump: dict[str, Any] = {"written_by": "commit 0cbbf44, schema revision 0006"}
        with parts.database.engine.connect() as conn:
            for name, table in tables.items():
                rows = conn.execute(select(table.__table__)).mappings().all()
                dump[name] = [{key: _plain(value) for key, value in row.items()} for row in rows]
        parts.database.dispose()
    json.dump(dump, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
