"""The first-snapshot batch writer alone (a fake ``record``): group commit, one result per poll, errors to each."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from monitor.domain import PollResult, TargetKey
from monitor.poll.digest import Read
from monitor.poll.firsts import FIRSTS_BATCH, First, FirstsWriter

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def first(index: int) -> First:
    return First(TargetKey("c", f"r{index}", "images"), Read(b"raw", f"{index:064x}"), T0, 0.0)


class FakeRecord:
    """Stores nothing; remembers each batch, and can hold the first one until released."""

    def __init__(self) -> None:
        self.batches: list[list[TargetKey]] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, batch: Sequence[First]) -> list[PollResult]:
        self.release.wait(10)
        self.batches.append([f.key for f in batch])
        return [PollResult(f.key, f.started, 0.0, ok=True, document_sha=f.read.sha256, first_snapshot=True)
                for f in batch]  # fmt: skip


def test_what_queues_while_a_batch_is_written_goes_into_the_next_one_and_each_poll_gets_its_result() -> None:
    record, finished = FakeRecord(), list[PollResult]()
    record.release.clear()

    def finish(result: PollResult) -> PollResult:
        finished.append(result)
        return result

    async def go() -> list[PollResult]:
        with ThreadPoolExecutor(1) as executor:
            writer = FirstsWriter(executor, record, finish)
            opening = asyncio.ensure_future(writer.write(first(0)))
            await asyncio.sleep(0.05)  # the first batch (one) is being written
            rest = [asyncio.ensure_future(writer.write(first(i))) for i in range(1, FIRSTS_BATCH + 3)]
            record.release.set()
            return await asyncio.gather(opening, *rest)

    results = asyncio.run(go())

    assert [len(batch) for batch in record.batches] == [1, FIRSTS_BATCH, 2]
    assert [r.target.region for r in results] == [f"r{i}" for i in range(FIRSTS_BATCH + 3)]
    assert len(finished) == FIRSTS_BATCH + 3  # every result counted once


def test_an_unexpected_error_of_a_batch_reaches_each_of_its_polls() -> None:
    def broken(batch: Sequence[First]) -> list[PollResult]:
        raise RuntimeError("bug")

    async def go() -> list[BaseException | PollResult]:
        with ThreadPoolExecutor(1) as executor:
            writer = FirstsWriter(executor, broken, lambda result: result)
            return await asyncio.gather(*(writer.write(first(i)) for i in range(3)), return_exceptions=True)

    outcomes = asyncio.run(go())
    assert [str(o) for o in outcomes] == ["bug"] * 3


@pytest.mark.parametrize("cancelled", [0, 2])
def test_a_cancelled_poll_waits_for_its_batch_to_land(cancelled: int) -> None:
    record = FakeRecord()
    record.release.clear()

    async def go() -> list[BaseException | PollResult]:
        with ThreadPoolExecutor(1) as executor:
            writer = FirstsWriter(executor, record, lambda result: result)
            polls = [asyncio.ensure_future(writer.write(first(i))) for i in range(3)]
            await asyncio.sleep(0.05)
            polls[cancelled].cancel()
            await asyncio.sleep(0.05)
            assert not polls[cancelled].done()  # its write is in hand: it waits for it
            record.release.set()
            return await asyncio.gather(*polls, return_exceptions=True)

    outcomes = asyncio.run(go())
    assert isinstance(outcomes[cancelled], asyncio.CancelledError)
    assert record.batches == [[TargetKey("c", f"r{i}", "images") for i in range(3)]]  # the cancelled one's too
