"""The first-snapshot batch writer: group commit of first snapshots, without waiting and without a timer.

A first document (a new target; typically the whole fleet at the first start) has no changes to judge, so
many can be written in one transaction. A poll hands its :class:`First` to :meth:`FirstsWriter.write` and
waits for its result; the first one starts a writer task, and whatever arrives while a batch is being
written goes into the next one (at most :data:`FIRSTS_BATCH` per transaction). What a batch does in the
database is the caller's ``record`` function (it runs in a worker thread); the writer only queues, batches,
and hands each poll its result.

Cancellation: a cancelled poll lets its write land (and be counted by ``finish``) before the cancellation
goes on; a cancelled writer lets the batch in hand land and cancels the polls still queued (nothing of
theirs was written).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime

from monitor.domain import PollResult, TargetKey, in_thread
from monitor.poll.digest import Read

FIRSTS_BATCH = 500
"""First snapshots written per transaction at most."""


@dataclass(slots=True)
class First:
    """A first snapshot waiting for the batch writer, and the poll's future for its result."""

    key: TargetKey
    read: Read
    started: datetime
    t0: float
    done: asyncio.Future[PollResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


Record = Callable[[Sequence[First]], list[PollResult]]
"""Stores a batch (blocking, in a worker thread); returns each poll's result, in order. May raise only for a bug."""


class FirstsWriter:
    """Writes queued first snapshots in batches on ``executor``; ``finish`` counts and logs each result."""

    def __init__(self, executor: Executor, record: Record, finish: Callable[[PollResult], PollResult]) -> None:
        self._executor = executor
        self._record = record
        self._finish = finish
        self._queue: list[First] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, first: First) -> PollResult:
        """Queue ``first`` and wait for its result (an unexpected error of its batch is raised here)."""
        self._queue.append(first)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        try:
            return await asyncio.shield(first.done)
        except asyncio.CancelledError:
            await asyncio.wait([first.done])
            raise

    async def _drain(self) -> None:
        """Write the queue, a batch per transaction, until it is empty; resolve each poll's future."""
        while self._queue:
            batch, self._queue = self._queue[:FIRSTS_BATCH], self._queue[FIRSTS_BATCH:]
            work = asyncio.ensure_future(in_thread(self._executor, self._record, batch))
            try:
                await asyncio.wait([work])
            except asyncio.CancelledError:
                await asyncio.wait([work])
                self._resolve(batch, work)
                for queued in self._queue:
                    queued.done.cancel()
                self._queue = []
                raise
            self._resolve(batch, work)

    def _resolve(self, batch: Sequence[First], work: asyncio.Future[list[PollResult]]) -> None:
        error = work.exception()
        for index, first in enumerate(batch):
            if error is not None:
                first.done.set_exception(error)
            else:
                first.done.set_result(self._finish(work.result()[index]))
