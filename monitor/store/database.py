"""One database and the stores over it: what the rest of the monitor sees of SQLAlchemy.

``Database.open(url)`` returns a database whose schema is current (SQLite is migrated on the spot;
PostgreSQL must already be at the current revision) or raises
:class:`~monitor.store.records.DatabaseUnavailableError` (unreachable, unreadable) or
:class:`~monitor.store.records.SchemaOutdatedError` (behind). The engine stays inside this package: callers
get the stores (``repository``, ``drift``, ``outbox``, ``export``, ``coordination``, ``consumers``) and ``dispose()`` it
when done. What the stores take and return is in :mod:`monitor.store.records`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.store.consumers import ConsumerStore
from monitor.store.coordination import CoordinationStore
from monitor.store.drift import DriftStore
from monitor.store.engine import current_revision, ensure_schema, head_revision, make_engine, safe_url, upgrade
from monitor.store.export import ExportStore
from monitor.store.outbox import OutboxStore
from monitor.store.records import DatabaseUnavailableError
from monitor.store.repository import Repository
from monitor.store.sqlite_path import not_writable


@dataclass(frozen=True)
class Database:
    """An open database; its stores share one connection pool."""

    engine: Engine
    url: str  # masked: safe to log

    @classmethod
    def open(cls, url: str) -> Database:
        """Connect and check (or, on SQLite, apply) the schema revision.

        Raises SchemaOutdatedError when a PostgreSQL database is behind, DatabaseUnavailableError otherwise
        (for a SQLite file in a directory this process cannot write, a sentence naming the directory).
        """
        _check_writable(url)
        engine = make_engine(url)
        try:
            ensure_schema(engine, url)
        except (SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise DatabaseUnavailableError(f"cannot open database {safe_url(url)}: {_cause(exc)}") from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, safe_url(url))

    @property
    def repository(self) -> Repository:
        return Repository(self.engine)

    @property
    def drift(self) -> DriftStore:
        return DriftStore(self.engine)

    @property
    def outbox(self) -> OutboxStore:
        return OutboxStore(self.engine)

    @property
    def consumers(self) -> ConsumerStore:
        return ConsumerStore(self.engine)

    @property
    def export(self) -> ExportStore:
        return ExportStore(self.engine)

    @property
    def coordination(self) -> CoordinationStore:
        return CoordinationStore(self.engine)

    @property
    def is_sqlite(self) -> bool:
        """One process per database file: no replicas to coordinate with."""
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def upgrade_database(url: str) -> tuple[str | None, str]:
    """Apply every pending migration; returns (revision before, revision now). Raises DatabaseUnavailableError."""
    _check_writable(url)
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        upgrade(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailableError(f"cannot upgrade {safe_url(url)}: {_cause(exc)}") from None
    finally:
        engine.dispose()
    return before, head_revision()


def _check_writable(url: str) -> None:
    """Raises DatabaseUnavailableError when ``url`` is a SQLite file this process cannot write (SQLite itself
    would only say "unable to open database file")."""
    problem = not_writable(url)
    if problem is not None:
        raise DatabaseUnavailableError(problem)


def _cause(exc: BaseException) -> str:
    """The exception's class and the first line of the driver's message (no SQL parameters, no password)."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0] if detail else ''}"
