"""The repository through a real PgBouncer in transaction pooling mode.

Every scenario of tests/store/test_repository.py that runs on a ``repo`` runs here again, with ``db_url`` pointing
through PgBouncer (migrations included, and the check that they create exactly the models). Plus the
trap that made ``make_engine`` turn off psycopg's automatic prepared statements.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import text

from monitor.store.engine import make_engine
from tests.conftest import create_pg_database, drop_pg_database
from tests.store import test_repository as test_store
from tests.support import pgbouncer as bouncers
from tests.support.pgbouncer import PgBouncer

pytestmark = pytest.mark.slow  # a real PgBouncer process

# fixtures used here: PgBouncer's, and tests/store/conftest.py's ``repo`` (here on the PgBouncer ``db_url``)
pgbouncer, pgbouncer_url, start_pgbouncer = bouncers.pgbouncer, bouncers.pgbouncer_url, bouncers.start_pgbouncer

# test_store's scenarios, collected again in this module (so with this module's db_url)
SCENARIOS = {
    name: function
    for name, function in vars(test_store).items()
    if name.startswith("test_") and "repo" in inspect.signature(function).parameters
}
globals().update(SCENARIOS)


@pytest.fixture
def db_url(pgbouncer_url: str) -> str:
    return pgbouncer_url


def test_the_scenarios_are_collected_here() -> None:
    assert len(SCENARIOS) >= 10
    assert "test_migrations_create_exactly_the_models" in SCENARIOS


@pytest.fixture
def one_server_connection(start_pgbouncer: Callable[..., PgBouncer]) -> Iterator[tuple[PgBouncer, str]]:
    """A PgBouncer with a pool of one server connection, which every client transaction shares."""
    bouncer = start_pgbouncer(default_pool_size="1")
    name = create_pg_database()
    try:
        yield bouncer, name
    finally:
        bouncer.stop()
        drop_pg_database(name)


def test_the_engine_does_not_prepare_statements_on_shared_server_connections(
    one_server_connection: tuple[PgBouncer, str],
) -> None:
    bouncer, name = one_server_connection
    engine = make_engine(bouncer.url(name))
    try:
        with engine.connect() as first, engine.connect() as second:
            for i in range(10):  # psycopg would prepare from the 5th execution on
                for conn in (first, second):
                    assert conn.execute(text("SELECT CAST(:i AS integer) + 1"), {"i": i}).scalar_one() == i + 1
                    conn.commit()  # ends the transaction: the server connection goes to the other client
            assert first.connection.dbapi_connection.prepare_threshold is None  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_psycopg_default_preparation_breaks_through_this_pgbouncer(
    one_server_connection: tuple[PgBouncer, str],
) -> None:
    """Why make_engine sets ``prepare_threshold=None``: PgBouncer < 1.21 does not track prepared statements."""
    bouncer, name = one_server_connection
    version = re.search(r"(\d+)\.(\d+)", bouncer.admin("SHOW VERSION")[0][0])
    assert version is not None
    if (int(version[1]), int(version[2])) >= (1, 21):
        pytest.skip("PgBouncer 1.21+ can track protocol-level prepared statements (max_prepared_statements)")
    first = psycopg.connect(bouncer.dsn(name), autocommit=True)
    second = psycopg.connect(bouncer.dsn(name), autocommit=True)
    try:
        with pytest.raises((psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName)):
            for i in range(10):
                for conn in (first, second):
                    conn.execute("SELECT %s::integer + 1", (i,)).fetchone()
    finally:
        first.close()
        second.close()
