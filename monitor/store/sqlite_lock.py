"""One process per SQLite database: an exclusive ``flock`` on ``<database file>.lock``.

SQLite has no server to coordinate replicas (no clock, no row locks, one writer), so only one monitor may
use a database file. The first process takes an exclusive, non-blocking ``fcntl.flock`` on
``<file>.lock`` and writes its pid, host and start time into it; a second one fails at once with a
:class:`DatabaseInUseError` naming the first. The kernel drops a flock when its holder exits or dies
(even by SIGKILL), so a stale lock file never blocks a restart — its old content is just overwritten.

The lock file is never deleted: unlinking it while another process is opening it would let both "hold" a
lock on different inodes. The descriptor is not inherited across ``exec`` (Python's default), but a
``fork`` without exec shares the lock with the child. ``flock`` on NFS is emulated with POSIX locks by
Linux; a database file on a network share is a bad idea anyway.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import make_url

from monitor.store.records import DatabaseInUseError

PROGRAM = "schema-drift-monitor"

__all__ = ["SqliteLock", "sqlite_lock_for"]


class SqliteLock:
    """The exclusive lock of one SQLite database file; ``acquire`` / ``release`` or a ``with`` block."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and record this process in the lock file.

        Raises DatabaseInUseError when another process holds it, OSError when the file cannot be opened.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DatabaseInUseError(
                f"database {self.database} is in use by {holder}; stop it or use PostgreSQL for several replicas"
            ) from None
        _write_holder(fd)
        self._fd = fd

    def release(self) -> None:
        """Empty the lock file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = None

    def __enter__(self) -> SqliteLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def sqlite_lock_for(url: str) -> SqliteLock | None:
    """The lock for a SQLite file URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return SqliteLock(Path(parsed.database).expanduser())


def _write_holder(fd: int) -> None:
    record = {
        "program": PROGRAM,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _read_holder(fd: int) -> str:
    """Who holds the lock, as the holder wrote it; vague if it has not written yet (or wrote garbage)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"{record['program']} pid {record['pid']} on host {record['host']} since {record['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its details are not readable yet)"
