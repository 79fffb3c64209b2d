"""Engine construction and schema migrations (Alembic).

SQLite runs in WAL mode with a busy timeout and foreign keys on; PostgreSQL connections are checked
before use so a restarted server is reconnected transparently. ``ensure_schema`` applies migrations
(SQLite) or refuses to start when the database is behind (PostgreSQL, where a shared database should be
upgraded deliberately with ``schema-drift-monitor db upgrade``).

PostgreSQL may be reached through PgBouncer in transaction pooling mode (several replicas, see
docs/high-availability.md), so PostgreSQL connections keep no session state. In particular psycopg 3's
automatic server-side prepared statements are off (``prepare_threshold=None``): by default psycopg
prepares a statement it has run five times, under a name like ``_pg3_0`` that lives in one server
connection; through PgBouncer older than 1.21 (Debian 12 ships 1.18, which has no
``max_prepared_statements``) the next transaction may run on another server connection, where the name is
missing ("prepared statement does not exist") or taken by another client ("already exists"). The
monitor's statements are short and few, so preparing them saves little.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.store.records import SchemaOutdatedError

SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 5


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def safe_url(url: str) -> str:
    """The URL with any password masked, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the parent folder of a SQLite file if needed."""
    if is_sqlite(url):
        return _sqlite_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=10,
        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S, "prepare_threshold": None},
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("monitor.migrations")))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://"))).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Apply every pending migration."""
    command.upgrade(_alembic_config(engine), "head")


def ensure_schema(engine: Engine, url: str) -> None:
    """Bring SQLite up to date; on PostgreSQL raise SchemaOutdatedError when behind.

    Raises SQLAlchemyError when the database cannot be reached.
    """
    if is_sqlite(url):
        upgrade(engine)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutdatedError(
            f"database {safe_url(url)} is at schema revision {current or '(empty)'}, this version needs {head}; "
            "run `schema-drift-monitor db upgrade --config <file>` first"
        )


__all__ = [
    "SQLAlchemyError",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "is_sqlite",
    "make_engine",
    "safe_url",
    "upgrade",
]
