"""The fixture the store's tests share: ``repo``, the repository on a migrated database at ``db_url`` (SQLite
and the real PostgreSQL by tests/conftest.py's parametrized ``db_url``, or whatever a module's own ``db_url``
points at, as PgBouncer in test_pgbouncer.py)."""

from __future__ import annotations

import pytest

from monitor.store.engine import make_engine, upgrade
from monitor.store.repository import Repository


@pytest.fixture
def repo(db_url: str) -> Repository:
    engine = make_engine(db_url)
    upgrade(engine)
    return Repository(engine)
