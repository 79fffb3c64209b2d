"""APScheduler wiring: one job per target with explicit options; job exceptions are counted, not lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from unittest import mock

import pytest

from monitor.app import Components, build
from monitor.poll.scheduler import PollScheduler
from tests.conftest import make_config
from tests.support.regions import Simulator


@pytest.fixture
def parts(simulator: Simulator, tmp_path: object) -> Iterator[Components]:
    components = build(make_config(simulator, f"sqlite:///{tmp_path}/s.db", interval="1s", jitter="0s"))
    yield components
    components.service.close()
    components.database.dispose()


def test_each_target_gets_one_job_with_max_instances_1_and_coalescing(parts: Components) -> None:
    async def go() -> None:
        scheduler = PollScheduler(parts.service, parts.specs, 3600)
        scheduler.start()
        try:
            jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
            assert set(jobs) == {str(spec.key) for spec in parts.specs} | {"prune", "refresh", "flush"}
            for spec in parts.specs:
                job = jobs[str(spec.key)]
                assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time >= 1
        finally:
            await scheduler.shutdown(1)
            await parts.fetcher.aclose()

    asyncio.run(go())


def test_an_exception_in_a_poll_job_is_counted_as_internal(parts: Components) -> None:
    spec = parts.specs[0]
    labels = {"cloud": spec.key.cloud, "region": spec.key.region, "schema": spec.key.schema}

    async def go() -> None:
        scheduler = PollScheduler(parts.service, parts.specs, 3600)
        with mock.patch.object(parts.service, "poll", autospec=True, side_effect=RuntimeError("bug")):
            await scheduler._poll_job(spec)

    asyncio.run(go())
    get = parts.metrics.registry.get_sample_value
    assert get("schemadrift_poll_failures_total", {**labels, "reason": "internal"}) == 1
    assert get("schemadrift_poll_success", labels) == 0


@pytest.mark.slow
def test_the_scheduler_polls_every_target_on_its_interval(parts: Components) -> None:
    async def go() -> None:
        scheduler = PollScheduler(parts.service, parts.specs, 3600)
        scheduler.start()
        await asyncio.sleep(2.5)
        await scheduler.shutdown(2)
        await parts.fetcher.aclose()

    asyncio.run(go())
    for spec in parts.specs:
        labels = {"cloud": spec.key.cloud, "region": spec.key.region, "schema": spec.key.schema}
        assert (parts.metrics.registry.get_sample_value("schemadrift_polls_total", labels) or 0) >= 2
