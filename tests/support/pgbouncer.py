"""A real PgBouncer (Debian's ``pgbouncer``) in transaction pooling mode in front of the test PostgreSQL.

Import the fixtures into a test module (``from tests.support.pgbouncer import pgbouncer, pgbouncer_url``):

* ``pgbouncer`` — a :class:`PgBouncer` listening on a free 127.0.0.1 port, in front of 127.0.0.1:5432,
  stopped at teardown;
* ``pgbouncer_url`` — a fresh database (dropped afterwards) reached through it;
* :func:`start_pgbouncer` for tests that need other pool settings.

Fault helpers: :meth:`PgBouncer.kill` (admin console ``KILL``: drops the database's client and server
connections at once), :meth:`PgBouncer.reconnect` (``RECONNECT``: replaces server connections as they are
released), :meth:`PgBouncer.restart` (the process itself) and :func:`terminate_backends` (PostgreSQL's
``pg_terminate_backend`` on every backend of a database, as a PostgreSQL restart would).

PgBouncer refuses to run as root, so as root it is started with ``-u postgres`` from a directory that user
owns. A missing binary skips the tests, or fails them when ``SDM_REQUIRE_PGBOUNCER=1`` (CI).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PG_ADMIN_DSN, create_pg_database, drop_pg_database, require_tool
from tests.support.process import free_port

UPSTREAM_HOST = "127.0.0.1"
UPSTREAM_PORT = 5432
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
RUN_AS = "postgres"  # when the tests run as root

DEFAULTS = {
    "pool_mode": "transaction",
    "default_pool_size": "8",
    "max_client_conn": "200",
    "server_check_delay": "1",
}


def pgbouncer_binary() -> str:
    """The pgbouncer executable (Debian installs it in /usr/sbin, which a user's PATH may lack)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/sbin")
    return found or require_tool("pgbouncer", "SDM_REQUIRE_PGBOUNCER", "pgbouncer")


def terminate_backends(database: str) -> int:
    """Terminate every PostgreSQL backend connected to ``database``; returns how many."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


class PgBouncer:
    """One pgbouncer process with its own config directory; ``start`` / ``stop`` / ``restart``."""

    def __init__(self, binary: str, settings: dict[str, str]) -> None:
        self.binary = binary
        self.settings = {**DEFAULTS, **settings}
        self.directory = Path(tempfile.mkdtemp(prefix="sdm-pgbouncer-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    # --- addresses -----------------------------------------------------------------------------

    def url(self, database: str) -> str:
        """A SQLAlchemy URL for ``database`` through this PgBouncer."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database} connect_timeout=3"

    # --- process -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start pgbouncer and wait until its admin console answers; raises RuntimeError if it cannot."""
        self._write_config()
        command = [self.binary, *(["-u", RUN_AS] if os.geteuid() == 0 else []), str(self.directory / "pgb.ini")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                self.admin("SHOW VERSION")
                return
            except psycopg.Error:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not start within {START_TIMEOUT_S}s: {self.log()[-2000:]}")

    def stop(self) -> None:
        """Immediate shutdown (SIGTERM in PgBouncer 1.18), SIGKILL if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port (client connections are dropped)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- admin console -------------------------------------------------------------------------

    def admin(self, command: str) -> list[tuple[Any, ...]]:
        """Run one admin console command (simple query protocol); returns its rows."""
        with psycopg.connect(self.dsn("pgbouncer"), autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(command.encode(), prepare=False)  # bytes: sent as is, no parameters
            return cursor.fetchall() if cursor.description else []

    def kill(self, database: str) -> None:
        """Drop every client and server connection of ``database`` now, then accept new ones."""
        self.admin(f"KILL {database}")
        self.admin(f"RESUME {database}")

    def reconnect(self, database: str) -> None:
        """Close each server connection of ``database`` when it is next released (a graceful fail-over)."""
        self.admin(f"RECONNECT {database}")

    # --- config --------------------------------------------------------------------------------

    def _write_config(self) -> None:
        lines = [
            "[databases]",
            f"* = host={UPSTREAM_HOST} port={UPSTREAM_PORT}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {self.directory / 'userlist.txt'}",
            "admin_users = postgres",
            f"logfile = {self.directory / 'pgbouncer.log'}",
            f"pidfile = {self.directory / 'pgbouncer.pid'}",
            *(f"{key} = {value}" for key, value in self.settings.items()),
        ]
        (self.directory / "pgb.ini").write_text("\n".join(lines) + "\n")
        (self.directory / "userlist.txt").write_text('"postgres" ""\n')
        if os.geteuid() == 0:  # pgbouncer drops to RUN_AS before it writes its log and pid file
            user = pwd.getpwnam(RUN_AS)
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)


@pytest.fixture
def start_pgbouncer(pg_server: str) -> Iterator[Callable[..., PgBouncer]]:
    """A factory: ``start_pgbouncer(default_pool_size="1")`` starts one more PgBouncer; all stop at teardown."""
    binary = pgbouncer_binary()
    started: list[PgBouncer] = []

    def start(**settings: str) -> PgBouncer:
        bouncer = PgBouncer(binary, settings)
        started.append(bouncer)
        bouncer.start()
        return bouncer

    yield start
    for bouncer in started:
        bouncer.cleanup()


@pytest.fixture
def pgbouncer(start_pgbouncer: Callable[..., PgBouncer]) -> PgBouncer:
    """A PgBouncer in transaction pooling mode on a free loopback port."""
    return start_pgbouncer()


@pytest.fixture
def pgbouncer_url(pgbouncer: PgBouncer) -> Iterator[str]:
    """A fresh, empty database reached through ``pgbouncer``; dropped afterwards."""
    name = create_pg_database()
    try:
        yield pgbouncer.url(name)
    finally:
        pgbouncer.stop()  # DROP ... WITH (FORCE) would do, but pgbouncer would log reconnect noise
        drop_pg_database(name)
