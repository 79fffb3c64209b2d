"""The store's administration door: the one ``monitor.store`` module the command line imports.

Everything an operator does to a database that is neither a read nor a command of ``monitor.read`` comes
through here: bringing its schema up to date (``db upgrade``), reading every stored snapshot for an
export (``export git``), and saying whether a SQLite database's directory is writable (``config check``).
Reads and acknowledgements go through ``monitor.read``; ``web/`` needs nothing here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from monitor.store.database import Database, upgrade_database
from monitor.store.engine import safe_url
from monitor.store.records import DatabaseUnavailableError, ExportCursor, ExportedSnapshot, ExportScope
from monitor.store.sqlite_path import not_writable

__all__ = ["DatabaseUnavailableError", "ExportScope", "Upgraded", "export_source", "not_writable", "upgrade"]


@dataclass(frozen=True, slots=True)
class Upgraded:
    """A schema upgrade: the database (password masked) and its revision before (None: empty) and after."""

    url: str
    before: str | None
    after: str

    def as_json(self) -> dict[str, Any]:
        return {"database": self.url, "revision_before": self.before, "revision": self.after}


def upgrade(url: str) -> Upgraded:
    """Apply every pending migration to ``url``; raises DatabaseUnavailableError (its message names the database,
    password masked)."""
    before, after = upgrade_database(url)
    return Upgraded(safe_url(url), before, after)


SnapshotFeed = Callable[[ExportCursor | None], Iterator[ExportedSnapshot]]


def export_source(database: Database, scope: ExportScope) -> SnapshotFeed:
    """The snapshots of ``scope`` after a cursor, in export order (what ``signals.gitexport`` reads)."""
    return partial(database.export.snapshots, scope)
