"""The poll pipeline driven one tick at a time, for the tests of the poll service and what hangs off it.

:func:`start` builds the real pipeline (``app.build``) from a config and gives it its own event loop (httpx
clients and locks bind to one loop); :func:`run` runs a coroutine to its end on that loop, :func:`poll` polls
one target there (default :data:`IMAGES`, r1's ``images`` of cloud ``sim``) and :func:`stop` closes the
pipeline and its loop. :func:`sample` reads a metric of a target from the pipeline's registry; :func:`rows` and
:func:`every_row` count the rows of one table or of every table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy import func, select

from monitor.app import Components, build
from monitor.domain import PollResult, TargetKey
from monitor.store.tables import Base

T = TypeVar("T")
IMAGES = TargetKey("sim", "r1", "images")


_LOOPS: dict[int, asyncio.AbstractEventLoop] = {}


def start(config: Any) -> Components:
    """Build the pipeline with its own event loop (httpx clients and locks bind to one loop)."""
    components = build(config)
    _LOOPS[id(components)] = asyncio.new_event_loop()
    return components


def stop(components: Components) -> None:
    loop = _LOOPS.pop(id(components))
    loop.run_until_complete(components.aclose())
    loop.close()


def run(parts: Components, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on the event loop :func:`start` gave ``parts``; returns its result."""
    return _LOOPS[id(parts)].run_until_complete(coroutine)


def poll(parts: Components, key: TargetKey = IMAGES) -> PollResult:
    spec = next(s for s in parts.specs if s.key == key)
    return run(parts, parts.service.poll(spec))


def rows(parts: Components, table: Any) -> int:
    with parts.database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def every_row(parts: Components) -> dict[str, int]:
    return {table.name: rows(parts, table) for table in Base.metadata.sorted_tables}


def sample(parts: Components, name: str, key: TargetKey = IMAGES, **extra: str) -> float | None:
    labels = {"cloud": key.cloud, "region": key.region, "schema": key.schema, **extra}
    return parts.metrics.registry.get_sample_value(name, labels)
