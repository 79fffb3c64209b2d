"""Measurements shared by the fleet benchmark and its soak: memory, CPU, database size, scratch databases.

Every function reads the operating system or the database directly (``/proc``, SQLite pragmas,
PostgreSQL's size functions), never the monitor's own metrics, so the numbers do not depend on the code
under test being right.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

PG_ADMIN_DSN = os.environ.get("SDM_PG_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL_BASE = os.environ.get("SDM_PG_URL_BASE", "postgresql+psycopg://postgres@127.0.0.1:5432/")
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _status_kib(field: str, pid: int | str = "self") -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmRSS, VmHWM); 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def rss_mib(pid: int | str = "self") -> float:
    """Current resident set size (VmRSS) in MiB."""
    return _status_kib("VmRSS", pid) / 1024


def peak_rss_mib(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) in MiB."""
    return _status_kib("VmHWM", pid) / 1024


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from ``/proc/<pid>/stat`` (every thread), in seconds; raises OSError if gone."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces; it ends at the last ')'
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def database_bytes(url: str) -> int:
    """Bytes the database occupies now.

    SQLite: ``page_count * page_size`` read through a new connection, which sees the pages still in the
    WAL; that is the file size after a checkpoint, without forcing one on the monitor. PostgreSQL: the
    sum of ``pg_total_relation_size`` (heap, indexes, TOAST) over the tables of schema ``public``.
    """
    if url.startswith("sqlite"):
        path = make_url(url).database
        lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            pages = lite.execute("PRAGMA page_count").fetchone()[0]
            size = lite.execute("PRAGMA page_size").fetchone()[0]
        finally:
            lite.close()
        return int(pages) * int(size)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()
    return int(row[0]) if row else 0


def count_rows(url: str, table: str) -> int:
    """Rows in ``table`` now, through a new read-only connection (0 while the table does not exist yet)."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        try:
            lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return 0
        try:
            return int(lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.Error:
            return 0
        finally:
            lite.close()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def postgres_problem() -> str | None:
    """None when the PostgreSQL admin DSN answers, else why not (for a 'skipped' line)."""
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {type(exc).__name__}"


def create_pg_database() -> tuple[str, str]:
    """A new, uniquely named PostgreSQL database; returns (name, SQLAlchemy URL). Raises psycopg.Error."""
    name = f"sdm_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG_URL_BASE + name


def drop_pg_database(name: str) -> None:
    """Drop the database ``name``, disconnecting any session still in it."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
