"""Where a SQLite database lives, and whether this process can write there — said in words before SQLite does.

SQLite writes beside its file, even to read a database in WAL mode: the write-ahead log (``x.db-wal``) and
its shared-memory index (``x.db-shm``); ``run`` adds its lock file (``x.db.lock``, see
:mod:`monitor.store.sqlite_lock`). In a directory this process cannot write (a read-only mount, a directory
owned by another user) SQLite only says ``unable to open database file`` and the lock ``[Errno 30]
Read-only file system``, so every command that opens the database asks :func:`not_writable` first, and
``config check`` warns with the same sentence.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["not_writable", "sqlite_file"]


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (absolute); None for other databases, in-memory SQLite or a bad URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser().absolute()


def not_writable(url: str) -> str | None:
    """Why this process cannot write the SQLite database of ``url`` — a sentence naming the directory (or file)
    and the fix — or None when it can (or the database is not a SQLite file)."""
    path = sqlite_file(url)
    if path is None:
        return None
    directory = path.parent
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        return f"database directory {directory} cannot be made: {existing} is a file; set database.url to another place"
    if existing != directory:  # created at the first start, if its nearest existing parent allows
        if _writable(existing):
            return None
        return (f"database directory {directory} does not exist and cannot be created: {existing} is not writable"
                f"{_why(existing)}; create it, or set database.url to a writable place")  # fmt: skip
    if not _writable(directory):
        return (f"database directory {directory} is not writable{_why(directory)}: SQLite keeps {path.name}-wal and "
                f"{path.name}-shm beside the database (and `run` its {path.name}.lock); make the directory "
                f"writable for {_user()}, or set database.url to a writable place")  # fmt: skip
    if path.exists() and not os.access(path, os.W_OK, effective_ids=_effective()):
        return f"database file {path} is not writable{_why(path)}: make it writable for {_user()}"
    return None


def _nearest_existing(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def _writable(directory: Path) -> bool:
    """Whether this process may create files in ``directory`` (``access(2)`` also says no on a read-only mount)."""
    return os.access(directory, os.W_OK | os.X_OK, effective_ids=_effective())


def _effective() -> bool:
    return os.access in os.supports_effective_ids


def _why(path: Path) -> str:
    """`` (a read-only file system)`` when ``path`` is on one; empty otherwise (its permissions are the cause)."""
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return ""
    return " (a read-only file system)" if read_only else ""


def _user() -> str:
    """The user this process runs as, by name when it has one."""
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
