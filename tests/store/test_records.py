"""The store's port: every record and error crossing it lives in ``monitor.store.records``, which is plain data."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import typing
from collections.abc import Iterator

from monitor.store import records
from monitor.store.coordination import CoordinationStore
from monitor.store.drift import DriftStore
from monitor.store.export import ExportStore
from monitor.store.outbox import OutboxStore
from monitor.store.repository import Repository

STORES = (Repository, DriftStore, OutboxStore, ExportStore, CoordinationStore)


def _classes(hint: object) -> Iterator[type]:
    """Every class named in a type hint, through unions, generics and collections."""
    if isinstance(hint, type):
        yield hint
    for arg in typing.get_args(hint):
        yield from _classes(arg)


def test_importing_the_records_loads_no_sqlalchemy() -> None:
    code = "import sys, monitor.store.records; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('sqlalchemy', 'alembic')))"  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_store_data_class_a_store_takes_or_returns_is_a_frozen_record() -> None:
    seen: set[type] = set()
    for store in STORES:
        for name, method in inspect.getmembers(store, inspect.isfunction):
            if name.startswith("_"):
                continue
            for hint in typing.get_type_hints(method).values():
                seen.update(cls for cls in _classes(hint) if dataclasses.is_dataclass(cls))
    stored = {cls for cls in seen if cls.__module__.startswith("monitor.store")}  # the rest: domain types
    assert {records.ChangeRecord, records.Fence, records.Membership, records.Baseline} <= stored
    for cls in stored:
        assert cls.__module__ == "monitor.store.records", f"{cls.__name__} is defined in {cls.__module__}"
        assert cls.__dataclass_params__.frozen, f"{cls.__name__} is not frozen"  # type: ignore[attr-defined]


def test_store_errors_are_defined_once_in_the_records() -> None:
    from monitor.store import base, coordination, database, engine, repository, sqlite_lock

    for module in (base, coordination, database, engine, repository, sqlite_lock):
        classes = [obj for obj in vars(module).values() if isinstance(obj, type)]
        own = [cls.__name__ for cls in classes if issubclass(cls, Exception) and cls.__module__ == module.__name__]
        assert own == [], f"{module.__name__} defines {own}"
    assert issubclass(records.FencedError, records.StoreError)
    assert issubclass(records.SnapshotConflictError, records.StoreError)
