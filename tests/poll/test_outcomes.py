"""The poll log tells a target's changes of state — failing (with its reason), another reason, recovered — and
each change found, not every repeat."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from monitor.domain import FailureReason, PollResult, TargetKey
from monitor.poll.outcomes import PollLog

KEY = TargetKey("sim", "r1", "images")
OTHER = TargetKey("sim", "r2", "images")
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def result(at: int, reason: FailureReason | None = None, key: TargetKey = KEY) -> PollResult:
    """A poll of ``key`` ``at`` minutes after T0: failed with ``reason``, or succeeded (unchanged)."""
    if reason is None:
        return PollResult(key, T0 + timedelta(minutes=at), 0.1, ok=True, http_status=200, document_sha="a" * 64)
    return PollResult(key, T0 + timedelta(minutes=at), 0.1, ok=False, reason=reason, error=f"it said {reason}")


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="monitor.poll.outcomes")


def test_a_target_failing_for_one_reason_logs_once_then_its_recovery(caplog: pytest.LogCaptureFixture) -> None:
    log = PollLog()
    for minute in range(5):
        log.record(result(minute, FailureReason.TIMEOUT))
    log.record(result(5))
    log.record(result(6))

    assert lines(caplog) == [
        ("WARNING", "sim/r1/images: poll failed (timeout): it said timeout"),
        ("INFO", "sim/r1/images: recovered: polls succeed again after 5 failed poll(s) since "
                 "2026-01-01T12:00:00+00:00 (last reason timeout)"),
    ]  # fmt: skip
    repeats = [r for r in caplog.records if r.levelno == logging.DEBUG and "failed again" in r.getMessage()]
    assert len(repeats) == 4  # --log-level DEBUG still shows every one


def test_another_failure_reason_is_a_change_of_state(caplog: pytest.LogCaptureFixture) -> None:
    log = PollLog()
    log.record(result(0, FailureReason.HTTP_503))
    log.record(result(1, FailureReason.HTTP_503))
    log.record(result(2, FailureReason.HTTP_404))
    log.record(result(3, FailureReason.HTTP_404))
    log.record(result(4))

    assert [level for level, _ in lines(caplog)] == ["WARNING", "WARNING", "INFO"]
    assert lines(caplog)[1][1] == "sim/r1/images: poll failed (http_404, was http_503): it said http_404"
    assert "after 4 failed poll(s) since 2026-01-01T12:00:00+00:00 (last reason http_404)" in lines(caplog)[2][1]


def test_targets_are_told_apart_and_carry_their_labels(caplog: pytest.LogCaptureFixture) -> None:
    log = PollLog()
    log.record(result(0, FailureReason.CONNECT))
    log.record(result(0, FailureReason.CONNECT, OTHER))
    log.record(result(1, FailureReason.CONNECT, OTHER))

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.cloud, r.region, r.schema) for r in warnings] == [  # type: ignore[attr-defined]
        ("sim", "r1", "images"), ("sim", "r2", "images"),
    ]  # fmt: skip


def test_a_target_failing_when_the_monitor_started_logs_its_recovery(caplog: pytest.LogCaptureFixture) -> None:
    log = PollLog()
    log.restore(KEY, failing=True)
    log.restore(OTHER, failing=False)
    log.record(result(0))
    log.record(result(0, key=OTHER))

    assert lines(caplog) == [
        ("INFO", "sim/r1/images: recovered: polls succeed again (they were failing when the monitor started)")
    ]


def test_a_target_still_failing_after_a_restart_is_logged_once_by_the_new_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = PollLog()
    log.restore(KEY, failing=True)
    log.record(result(0, FailureReason.HTTP_503))
    log.record(result(1, FailureReason.HTTP_503))

    assert lines(caplog) == [("WARNING", "sim/r1/images: poll failed (http_503): it said http_503")]


def test_a_forgotten_target_starts_afresh(caplog: pytest.LogCaptureFixture) -> None:
    log = PollLog()
    log.record(result(0, FailureReason.TIMEOUT))
    log.forget([KEY])  # handed to another replica
    log.record(result(9))  # back, and fine: nothing to recover from here

    assert [level for level, _ in lines(caplog)] == ["WARNING"]


def test_changes_and_first_snapshots_are_logged_each_time(caplog: pytest.LogCaptureFixture) -> None:
    log = PollLog()
    first = PollResult(KEY, T0, 0.1, ok=True, document_sha="b" * 64, first_snapshot=True)
    unconfirmed = PollResult(KEY, T0, 0.1, ok=True, document_sha="b" * 64, unconfirmed=True)
    for poll in (first, unconfirmed, unconfirmed):
        log.record(poll)

    assert [message.split(": ", 1)[1] for _, message in lines(caplog)] == [
        "first snapshot bbbbbbbbbbbb",
        "a different document was read but not confirmed: nothing recorded",
        "a different document was read but not confirmed: nothing recorded",
    ]
