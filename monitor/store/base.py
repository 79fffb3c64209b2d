"""What every store shares: the error, short transactions with retries, and a few SQL helpers.

Every public method of a store runs one unit of work in one transaction (:meth:`Transactions._run`): it
either commits or raises :class:`StoreError` after rolling back, so nothing is half-written. Transient
failures (SQLite ``database is locked`` past the busy timeout, a dropped PostgreSQL connection) are retried
a few times first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Engine, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.store.records import StoreError

T = TypeVar("T")
RETRIES = 3
RETRY_PAUSE = 0.2


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def opt_aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _is_transient(exc: SQLAlchemyError) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


def _describe(exc: SQLAlchemyError) -> str:
    """A short message without SQL parameters (which may carry document text)."""
    orig = getattr(exc, "orig", None)
    detail = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {detail[0][:200] if detail else ''}"


class Transactions:
    """Runs units of work in short transactions on one engine, with retries for transient failures."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _run(self, operation: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction, retrying transient failures; raises StoreError."""
        for attempt in range(RETRIES):
            try:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except StoreError:
                raise
            except SQLAlchemyError as exc:
                if attempt + 1 < RETRIES and _is_transient(exc):
                    time.sleep(RETRY_PAUSE * (attempt + 1))
                    continue
                raise StoreError(operation, _describe(exc)) from None
        raise AssertionError("unreachable")


def dialect_insert(session: Session) -> Callable[..., Any]:
    """The dialect's INSERT, which offers ``on_conflict_do_nothing`` on both backends."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def among_ids(session: Session, column: Any, ids: Collection[int]) -> Any:
    """The condition ``column IN ids``. On PostgreSQL one array parameter (``= ANY(:ids)``) rather than a
    placeholder per id: a page of 500 ids then costs microseconds to compile and send, not milliseconds."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(BigInteger)))
    return column.in_(list(ids))
