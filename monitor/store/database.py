"""One database and the stores over it: what the rest of the monitor sees of SQLAlchemy.

``Database.open(url)`` returns a database whose schema is current (SQLite is migrated on the spot;
PostgreSQL must already be at the current revision) or raises :class:`DatabaseUnavailableError`
(unreachable, unreadable) or :class:`~monitor.store.engine.SchemaOutdatedError` (behind). The engine stays
inside this package: callers get the repositories (``repository``, ``intelligence``, ``outbox``, ``consumers``) and
``dispose()`` it when done.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.store.consumers import ConsumerStore
from monitor.store.coordination import CoordinationStore
from monitor.store.engine import current_revision, ensure_schema, head_revision, make_engine, safe_url, upgrade
from monitor.store.export import ExportStore
from monitor.store.intelligence import IntelligenceStore
from monitor.store.outbox import OutboxStore
from monitor.store.repository import Repository


class DatabaseUnavailableError(Exception):
    """The database cannot be opened or migrated; the message names it (password masked) and the cause."""


@dataclass(frozen=True)
class Database:
    """An open database; its stores share one connection pool."""

    engine: Engine
    url: str  # masked: safe to log

    @classmethod
    def open(cls, url: str) -> Database:
        """Connect and check (or, on SQLite, apply) the schema revision.

        Raises SchemaOutdatedError when a PostgreSQL database is behind, DatabaseUnavailableError otherwise.
        """
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
    def intelligence(self) -> IntelligenceStore:
        return IntelligenceStore(self.engine)

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
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        upgrade(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailableError(f"cannot upgrade {safe_url(url)}: {_cause(exc)}") from None
    finally:
        engine.dispose()
    return before, head_revision()


def _cause(exc: BaseException) -> str:
    """The exception's class and the first line of the driver's message (no SQL parameters, no password)."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0] if detail else ''}"
