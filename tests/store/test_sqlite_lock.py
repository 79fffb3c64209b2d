"""One process per SQLite database: a real second process is refused, a dead holder's lock is gone."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.store.records import DatabaseInUseError
from monitor.store.sqlite_lock import SqliteLock, sqlite_lock_for

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys
from pathlib import Path
from monitor.store.sqlite_lock import DatabaseInUseError, SqliteLock
lock = SqliteLock(Path(sys.argv[1]))
try:
    lock.acquire()
except DatabaseInUseError as exc:
    print(exc, flush=True)
    sys.exit(3)
print("locked", flush=True)
sys.stdin.readline()
"""


def start_holder(database: Path) -> subprocess.Popen[str]:
    """Another process taking the lock; it keeps it until its stdin closes (or it dies)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = start_holder(tmp_path / "data" / "x.db")
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    yield process
    process.kill()
    process.wait()


def test_a_second_process_is_refused_with_the_holders_pid_host_and_start(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    database = tmp_path / "data" / "x.db"
    with pytest.raises(DatabaseInUseError) as info:
        SqliteLock(database).acquire()
    message = str(info.value)
    assert message.startswith(f"database {database} is in use by schema-drift-monitor pid {holder.pid} ")
    assert f"on host {socket.gethostname()} since 20" in message
    assert message.endswith("; stop it or use PostgreSQL for several replicas")
    other = start_holder(database)  # a third process fares no better
    out, _ = other.communicate(timeout=30)
    assert other.returncode == 3 and f"pid {holder.pid}" in out


def test_the_lock_goes_with_a_killed_holder(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = SqliteLock(tmp_path / "data" / "x.db")
    lock.acquire()  # no stale lock: the kernel dropped the dead process's flock
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    lock.release()


def test_release_empties_the_file_and_lets_the_next_process_in(tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    with SqliteLock(database) as lock:
        assert lock.held and json.loads(lock.path.read_text())["program"] == "schema-drift-monitor"
        with pytest.raises(DatabaseInUseError):
            SqliteLock(database).acquire()  # another open file: refused even in the same process
    assert lock.path.read_text() == "" and not lock.held
    process = start_holder(database)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    process.kill()
    process.wait()


def test_a_holder_that_has_not_written_its_details_yet_is_still_refused_clearly(tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    with open(f"{database}.lock", "w") as raw:
        fcntl.flock(raw, fcntl.LOCK_EX)
        with pytest.raises(DatabaseInUseError, match="in use by another process"):
            SqliteLock(database).acquire()


def test_only_sqlite_files_get_a_lock(tmp_path: Path) -> None:
    lock = sqlite_lock_for(f"sqlite:///{tmp_path}/m.db")
    assert lock is not None and lock.path == tmp_path / "m.db.lock"
    assert sqlite_lock_for("sqlite://") is None
    assert sqlite_lock_for("sqlite:///:memory:") is None
    assert sqlite_lock_for("postgresql+psycopg://postgres@127.0.0.1/x") is None
