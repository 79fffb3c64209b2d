"""Shared fixtures: a database URL per backend, the simulator, and config builders.

Storage tests run on SQLite and on the real PostgreSQL. Without a reachable PostgreSQL the PostgreSQL
cases skip with the reason — unless ``SDM_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns that skip
into a failure so CI always runs them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from monitor.config import Config, MetricsConfig, parse_config
from monitor.store.engine import make_engine, upgrade
from tests.support.regions import Simulator

PG_ADMIN_DSN = os.environ.get("SDM_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL_BASE = os.environ.get("SDM_PG_URL_BASE", "postgresql+psycopg://postgres@127.0.0.1:5432/")
REGIONS = ("r1", "r2", "r3")
TOKEN = "s3cr3t-token-for-tests-9f8e7d"


def _require(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {type(exc).__name__}"


def require_tool(name: str, env: str, package: str) -> str:
    """The path of a command-line tool; skips when it is missing, fails instead when ``env`` is set (CI)."""
    path = shutil.which(name)
    if path is None:
        if _require(env):
            pytest.fail(f"{name} not found and {env} is set (apt-get install {package})")
        pytest.skip(f"{name} not installed (Debian package {package})")
    return path


def promtool() -> str:
    return require_tool("promtool", "SDM_REQUIRE_PROMTOOL", "prometheus")


@pytest.fixture(scope="session")
def pg_server() -> str:
    """Skips (or fails under SDM_REQUIRE_POSTGRES=1) when PostgreSQL cannot be reached."""
    problem = _pg_available()
    if problem is not None:
        if _require("SDM_REQUIRE_POSTGRES"):
            pytest.fail(f"{problem} and SDM_REQUIRE_POSTGRES is set")
        pytest.skip(problem)
    return PG_URL_BASE


def create_pg_database() -> str:
    name = f"sdm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> Iterator[str]:
    """A fresh, empty database on ``backend`` (SQLite: a file in ``directory``); PostgreSQL's is dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'monitor.db'}"
        return
    base = request.getfixturevalue("pg_server")
    name = create_pg_database()
    try:
        yield base + name
    finally:
        drop_pg_database(name)


def migrate(url: str) -> str:
    """``url`` with the schema migrated to head (as ``db upgrade`` would)."""
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend; the PostgreSQL one is dropped afterwards."""
    with fresh_database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture
def migrated_db_url(db_url: str) -> str:
    """``db_url`` with the schema migrated to head (as ``db upgrade`` would)."""
    return migrate(db_url)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(REGIONS, token=TOKEN) as sim:
        yield sim


def fail_inserts(engine: Engine, table: str) -> None:
    """Make every INSERT into ``table`` fail, as a full disk or a broken database would."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'full'); END")
            )
            return
        body = "BEGIN RAISE EXCEPTION 'full'; END"
        conn.execute(text(f"CREATE FUNCTION fail_{table}() RETURNS trigger AS $$ {body} $$ LANGUAGE plpgsql"))
        conn.execute(
            text(f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION fail_{table}()")
        )


def allow_inserts(engine: Engine, table: str) -> None:
    """Undo :func:`fail_inserts`."""
    suffix = "" if engine.dialect.name == "sqlite" else f" ON {table}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP TRIGGER fail_{table}{suffix}"))


def config_data(sim: Simulator, db_url: str, **defaults: Any) -> dict[str, Any]:
    """Config data for the simulator's regions; ``defaults`` override the poll defaults."""
    return {
        "database": {"url": db_url},
        "http": {"listen": "127.0.0.1:0"},
        "defaults": {"interval": "60s", "timeout": "3s", "jitter": "0s", "retries": 0, **defaults},
        "clouds": [
            {
                "name": "sim",
                "endpoint": sim.endpoint_template(),
                "regions": list(REGIONS),
                "schemas": ["images", "image", "members", "member"],
                "auth": {"type": "token", "token": TOKEN},
                "allow_http": True,
            }
        ],
    }


def make_config(sim: Simulator, db_url: str, **defaults: Any) -> Config:
    return parse_config(config_data(sim, db_url, **defaults), "test")


def full_metrics(config: Config) -> Config:
    """``config`` with ``metrics.detail: full``, for tests that read a detail series (polls, document size)."""
    return config.model_copy(update={"metrics": MetricsConfig(detail="full")})
