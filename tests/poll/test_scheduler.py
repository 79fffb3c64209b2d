"""The scheduler: every target on the tick's timetable, housekeeping as APScheduler jobs with explicit options; job
exceptions are counted, not lost; a stop gives every job the grace period and cancels the rest quietly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from functools import partial
from unittest import mock

import pytest

from monitor.app import Components, build
from monitor.domain import TargetSpec, utcnow
from monitor.poll.scheduler import PollScheduler
from tests.conftest import full_metrics, make_config
from tests.support.regions import Simulator


@pytest.fixture
def parts(simulator: Simulator, tmp_path: object) -> Iterator[Components]:
    # full: the tests count polls (schemadrift_polls_total, a detail series)
    components = build(full_metrics(make_config(simulator, f"sqlite:///{tmp_path}/s.db", interval="1s", jitter="0s")))
    yield components
    components.service.close()
    components.database.dispose()


def test_each_target_is_scheduled_once_and_housekeeping_jobs_run_once_at_a_time_and_coalesce(
    parts: Components,
) -> None:
    async def go() -> None:
        scheduler = PollScheduler(parts.service, parts.specs, 3600)
        scheduler.start()
        try:
            assert sorted(map(str, (s.key for s in scheduler.specs))) == sorted(str(s.key) for s in parts.specs)
            for spec in parts.specs:
                due = scheduler.due_in(spec.key)
                assert due is not None and due <= spec.jitter
            jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
            assert set(jobs) == {"prune", "refresh", "flush"}  # no APScheduler job per target
            for job in jobs.values():
                assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time >= 1
            assert scheduler.running
        finally:
            await scheduler.shutdown(1)
            await parts.fetcher.aclose()
        assert not scheduler.running

    asyncio.run(go())


def test_a_synced_target_polled_before_is_due_one_interval_after_that_poll(parts: Components) -> None:
    first, second = parts.specs[0], replace(parts.specs[1], interval=600)

    async def go() -> None:
        scheduler = PollScheduler(parts.service, [first], 3600)
        before = {second.key: utcnow() - timedelta(seconds=200)}
        scheduler.sync([first, second], last_poll=before.get)
        due = scheduler.due_in(second.key)
        assert due is not None and 399 <= due <= 400
        scheduler.sync([second])
        assert [s.key for s in scheduler.specs] == [second.key] and scheduler.due_in(first.key) is None

    asyncio.run(go())


def test_at_most_started_polls_are_tasks_at_once_and_every_due_target_is_polled(parts: Components) -> None:
    specs = [replace(spec, interval=3600) for spec in parts.specs]  # each due once, all at the first tick
    running: set[str] = set()
    most, polled = 0, []

    async def poll(spec: TargetSpec) -> None:
        nonlocal most
        running.add(str(spec.key))
        most = max(most, len(running))
        await asyncio.sleep(0.05)
        running.discard(str(spec.key))
        polled.append(spec.key)

    async def go() -> None:
        scheduler = PollScheduler(parts.service, specs, 3600, tick=0.05, started=2)
        with mock.patch.object(parts.service, "poll", side_effect=poll):
            scheduler.start()
            async with asyncio.timeout(30):
                while len(polled) < len(specs):
                    await asyncio.sleep(0.01)
            await scheduler.shutdown(1)
        await parts.fetcher.aclose()

    assert len(specs) > 2
    asyncio.run(go())
    assert most == 2 and sorted(map(str, polled)) == sorted(str(spec.key) for spec in specs)


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


JOB_KINDS = {"poll", "flush", "refresh", "prune", "coordination", "discovery"}


def run_every_job_kind(
    parts: Components, simulator: Simulator, monkeypatch: pytest.MonkeyPatch, work: Callable[[str], Awaitable[None]],
    grace: float,
) -> None:  # fmt: skip
    """Start a scheduler whose housekeeping jobs run ``work(kind)`` (the service's through its own seams),
    run a job of every kind once (a poll of sim/r1/images: whatever fault r1 has), then stop it with ``grace``."""
    started: set[str] = set()

    async def tracked(kind: str) -> None:
        started.add(kind)
        await work(kind)

    service = parts.service
    monkeypatch.setattr(service, "flush", partial(tracked, "flush"))
    monkeypatch.setattr(service, "refresh_intelligence", partial(tracked, "refresh"))
    monkeypatch.setattr(service, "prune", lambda _retention: tracked("prune"))
    before = simulator.requests("r1")
    hung = replace(next(spec for spec in parts.specs if spec.key.region == "r1"), interval=3600)

    async def go() -> None:
        scheduler = PollScheduler(
            parts.service, [hung], 3600, refresh_interval=3600,
            discovery=(3600, partial(tracked, "discovery")), coordination=(3600, partial(tracked, "coordination")),
        )  # fmt: skip
        scheduler.start()
        for job in scheduler._scheduler.get_jobs():  # the housekeeping jobs; the poll is due at once (no jitter)
            job.modify(next_run_time=utcnow())
        async with asyncio.timeout(30):
            while started != JOB_KINDS - {"poll"} or simulator.requests("r1") == before:
                await asyncio.sleep(0.01)
        await scheduler.shutdown(grace)
        await parts.fetcher.aclose()

    asyncio.run(go())


def test_a_stop_cancels_jobs_past_the_grace_with_one_info_line_and_no_error(
    parts: Components, simulator: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cancelled: set[str] = set()

    async def hang(kind: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.add(kind)
            raise

    simulator.set_fault("r1", "hang")  # the poll hangs past the grace (its timeout is 3 s)
    run_every_job_kind(parts, simulator, monkeypatch, hang, grace=0.2)

    assert cancelled == JOB_KINDS - {"poll"}  # and the poll, whose cancellation the service sees
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    [line] = [r for r in caplog.records if "still running after the" in r.getMessage()]
    assert line.levelno == logging.INFO and line.getMessage().startswith("cancelled 6 job(s)")
    assert "poll sim/r1/" in line.getMessage() and "writing the times of the last polls" in line.getMessage()


def test_a_stop_lets_every_kind_of_job_finish_within_the_grace(
    parts: Components, simulator: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    finished: set[str] = set()

    async def brief(kind: str) -> None:
        await asyncio.sleep(1.0)  # longer than the poll: each kind of job is waited for, not only polls
        finished.add(kind)

    simulator.set_fault("r1", "slow", delay=0.3)  # the poll finishes too, after 0.3 s
    run_every_job_kind(parts, simulator, monkeypatch, brief, grace=20)

    assert finished == JOB_KINDS - {"poll"}
    assert (
        parts.metrics.registry.get_sample_value(
            "schemadrift_polls_total", {"cloud": "sim", "region": "r1", "schema": "images"}
        )
        == 1
    )
    assert not any("cancelled" in r.getMessage() for r in caplog.records)
