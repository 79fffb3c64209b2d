"""in_thread: blocking work off the event loop, with its result or its error."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from monitor.domain import in_thread


def test_the_work_runs_on_the_executor_with_its_arguments() -> None:
    def where(a: int, *, b: int) -> tuple[str, int]:
        return threading.current_thread().name, a + b

    with ThreadPoolExecutor(1, thread_name_prefix="store") as executor:
        name, total = asyncio.run(in_thread(executor, where, 2, b=3))
    assert name.startswith("store") and total == 5


def test_an_error_of_the_work_is_raised_to_the_caller() -> None:
    def fail() -> None:
        raise LookupError("nothing here")

    with pytest.raises(LookupError, match="nothing here"):
        asyncio.run(in_thread(None, fail))
