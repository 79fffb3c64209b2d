"""What the log says about each poll: a target's outcome when it changes, not every repeat.

A target that keeps failing for one reason logs one WARNING when it starts failing (``poll failed (reason):
error``) and one more when the reason changes; its repeats are DEBUG. Its first success after that is one
INFO line (``recovered``), with how long and how many polls it failed. The metrics still count every poll and
every failure, and the database keeps every transition (:mod:`monitor.poll.service`): the log tells changes
of state, for a person to read. A target whose last recorded outcome was a failure when this process started
logs ``recovered`` at its first success too, and its first failure here is logged (this process's log has not
said it yet).

Changes, first snapshots and unconfirmed reads are events, logged each time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from monitor.domain import FailureReason, PollResult, Severity, TargetKey, worst_first

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Failing:
    """A target failing since ``since`` (its last reason: ``reason``), ``polls`` failed polls so far."""

    reason: FailureReason | None
    since: datetime
    polls: int = 1


class PollLog:
    """Logs poll results; call :meth:`record` with every result, on one thread (the event loop)."""

    def __init__(self) -> None:
        self._failing: dict[TargetKey, _Failing] = {}
        self._failing_at_start: set[TargetKey] = set()  # restored failing, nothing logged about it yet

    def restore(self, key: TargetKey, failing: bool) -> None:
        """What the database says of ``key`` at its (re)start: its last recorded outcome was a failure or not."""
        if key in self._failing:
            return  # this process knows better
        if failing:
            self._failing_at_start.add(key)
        else:
            self._failing_at_start.discard(key)

    def forget(self, keys: Iterable[TargetKey]) -> None:
        """``keys`` are no longer polled here."""
        for key in keys:
            self._failing.pop(key, None)
            self._failing_at_start.discard(key)

    def record(self, result: PollResult) -> None:
        """Log ``result``: a change of the target's outcome, or an event (change, first snapshot, unconfirmed)."""
        key = result.target
        if (result.ok and not result.changes and not result.first_snapshot and not result.unconfirmed
                and key not in self._failing and key not in self._failing_at_start):  # fmt: skip
            if log.isEnabledFor(logging.DEBUG):  # an unchanged poll of a healthy target: the usual case, no allocation
                log.debug("%s: unchanged", key, extra={"cloud": key.cloud, "region": key.region, "schema": key.schema})
            return
        labels = {"cloud": result.target.cloud, "region": result.target.region, "schema": result.target.schema}
        if not result.ok:
            self._failed(result, labels)
            return
        self._succeeded(result, labels)
        _log_event(result, labels)

    def _failed(self, result: PollResult, labels: dict[str, str]) -> None:
        key = result.target
        before = self._failing.get(key)
        self._failing_at_start.discard(key)
        if before is None:
            self._failing[key] = _Failing(result.reason, result.started_at)
            log.warning("%s: poll failed (%s): %s", key, result.reason, result.error, extra=labels)
            return
        before.polls += 1
        if before.reason == result.reason:
            log.debug("%s: poll failed again (%s): %s", key, result.reason, result.error, extra=labels)
            return
        log.warning("%s: poll failed (%s, was %s): %s", key, result.reason, before.reason, result.error, extra=labels)
        before.reason = result.reason

    def _succeeded(self, result: PollResult, labels: dict[str, str]) -> None:
        key = result.target
        before = self._failing.pop(key, None)
        if before is not None:
            log.info("%s: recovered: polls succeed again after %d failed poll(s) since %s (last reason %s)", key,
                     before.polls, _when(before.since), before.reason, extra=labels)  # fmt: skip
        elif key in self._failing_at_start:
            log.info("%s: recovered: polls succeed again (they were failing when the monitor started)", key,
                     extra=labels)  # fmt: skip
        self._failing_at_start.discard(key)


def _when(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _log_event(result: PollResult, labels: dict[str, str]) -> None:
    """A successful poll: what it found (only a change is a WARNING; an unchanged poll is DEBUG)."""
    target = result.target
    if result.unconfirmed:
        log.info("%s: a different document was read but not confirmed: nothing recorded", target, extra=labels)
    elif result.first_snapshot:
        log.info("%s: first snapshot %s", target, (result.document_sha or "")[:12], extra=labels)
    elif result.changes and not result.counted_changes:
        log.info("%s: schema changed: %d ignored or expected change(s)", target, len(result.changes), extra=labels)
    elif result.changes:
        worst = Severity.worst(*(c.severity for c in result.counted_changes))
        changed = "; ".join(f"{c.rule} {c.path}" for c in worst_first(result.changes)[:10])
        log.warning("%s: schema changed: %d change(s), worst %s: %s", target, len(result.changes), worst.value,
                    changed, extra=labels)  # fmt: skip
    else:
        log.debug("%s: unchanged", target, extra=labels)
