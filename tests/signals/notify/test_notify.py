"""Built-in notifications through the outbox, against a real receiver on loopback, on both backends."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.config import NotificationsConfig
from monitor.domain import ABSENT, Change, ConsumerBreak, PollResult, Severity, TargetKey
from monitor.judge.canonical import canonical_json, count_properties, document_sha256
from monitor.signals.metrics import Metrics
from monitor.signals.notify.alertmanager import ALERTNAME, alerts_for
from monitor.signals.notify.base import report_group_request
from monitor.signals.notify.dispatcher import Dispatcher, build_channels
from monitor.signals.notify.report import build_report
from monitor.signals.notify.slack import slack_message
from monitor.signals.notify.webhook import SIGNATURE_HEADER, sign
from monitor.store.engine import make_engine
from monitor.store.outbox import OutboxStore
from monitor.store.records import ChangeRecord, StoredDocument
from monitor.store.repository import Repository
from tests.support.receiver import Receiver

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOOK_SECRET = "hook-path-secret-7f3a"
HMAC_KEY = "hmac-key-1b2c"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def settings(url: str, kind: str = "webhook", **channel: Any) -> NotificationsConfig:
    spec: dict[str, Any] = {"name": "ops", "type": kind, "url": url, **channel}
    return NotificationsConfig.model_validate(
        {"grouping_window": "30s", "retry_backoff": "10s", "max_attempts": 4, "channels": [spec]}
    )


class Harness:
    """Repository + outbox + dispatcher on one database; ``tick`` runs one dispatcher round at a time."""

    def __init__(self, db_url: str, config: NotificationsConfig) -> None:
        self.engine = make_engine(db_url)
        self.repository = Repository(self.engine)
        self.store = OutboxStore(self.engine)
        self.metrics = Metrics(CollectorRegistry(), "t")
        self.dispatcher = Dispatcher(config, self.store, self.metrics, build_channels(config))
        self.loop = asyncio.new_event_loop()

    def tick(self, now: datetime) -> None:
        self.loop.run_until_complete(self.dispatcher.tick(now))

    def change(self, region: str, at: datetime, severity: Severity = Severity.BREAKING) -> None:
        """Record a first snapshot and then one change for sim/<region>/images."""
        key = TargetKey("sim", region, "images")
        tid = self.repository.ensure_targets([(key, f"https://{region}")])[key]
        first = self.repository.record_snapshot(tid, None, _doc({"a": 1}), [], _ok(key, at - timedelta(hours=1)))
        change = Change("/properties/b", "property-removed", severity, {"type": "string"}, ABSENT)
        self.repository.record_snapshot(tid, first, _doc({"a": 2}), [change], _ok(key, at))

    def count(self, outcome: str) -> float:
        return (
            self.metrics.registry.get_sample_value(
                "schemadrift_notifications_total", {"channel": "ops", "outcome": outcome}
            )
            or 0
        )

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.run_until_complete(self.dispatcher.aclose())
        self.loop.close()
        self.engine.dispose()


def _doc(props: dict[str, Any]) -> StoredDocument:
    doc = {"type": "object", "properties": {k: {"type": "integer", "default": v} for k, v in props.items()}}
    canonical = canonical_json(doc)
    return StoredDocument(document_sha256(canonical), canonical, len(canonical), count_properties(doc))


def _ok(key: TargetKey, at: datetime) -> PollResult:
    return PollResult(key, at, 0.1, ok=True, http_status=200)


@pytest.fixture
def harness_factory(migrated_db_url: str) -> Iterator[Any]:
    made: list[Harness] = []

    def make(config: NotificationsConfig) -> Harness:
        made.append(Harness(migrated_db_url, config))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


def test_changes_in_30_regions_within_the_window_are_one_notification(harness_factory: Any, receiver: Receiver) -> None:
    h = harness_factory(settings(receiver.url + "/hook", secret=HMAC_KEY))
    h.tick(T0)  # the cursor starts here: older history is never replayed
    for i in range(30):
        h.change(f"r{i:02d}", T0 + timedelta(seconds=i % 20))
    h.tick(T0 + timedelta(seconds=25))
    assert receiver.requests == []  # the window is still open
    h.tick(T0 + timedelta(seconds=31))
    h.tick(T0 + timedelta(seconds=40))
    [(path, headers, body, _)] = receiver.requests
    report = json.loads(body)
    assert path == "/hook" and len(report["targets"]) == 30
    assert report["counts"]["breaking"] == 30 and report["worst_severity"] == "breaking"
    assert report["targets"][0]["changes"][0]["rule"] == "property-removed"
    assert headers[SIGNATURE_HEADER] == sign(HMAC_KEY, body)
    assert h.count("sent") == 1


def test_a_receiver_failing_twice_then_succeeding_gets_it_exactly_once(
    harness_factory: Any, receiver: Receiver
) -> None:
    h = harness_factory(settings(receiver.url))
    h.tick(T0)
    h.change("r1", T0)
    receiver.script = [500, 503]
    for seconds in (31, 35, 42, 55, 80, 120):  # backoff 10 s, then 20 s
        h.tick(T0 + timedelta(seconds=seconds))
    assert [status for *_, status in receiver.requests] == [500, 503, 200]
    assert len(receiver.delivered()) == 1
    assert (h.count("retried"), h.count("sent"), h.count("failed")) == (2, 1, 0)
    assert [row[2] for row in h.store.entries()] == ["sent"]


def test_a_restart_between_failure_and_retry_loses_nothing(harness_factory: Any, receiver: Receiver) -> None:
    first = harness_factory(settings(receiver.url))
    first.tick(T0)
    first.change("r1", T0)
    receiver.script = [502]
    first.tick(T0 + timedelta(seconds=31))
    first.close()

    second = harness_factory(settings(receiver.url))  # a new process on the same database
    second.tick(T0 + timedelta(seconds=60))
    second.tick(T0 + timedelta(seconds=90))
    assert [status for *_, status in receiver.requests] == [502, 200]
    assert len(receiver.delivered()) == 1


def test_a_4xx_is_permanent_and_not_retried(harness_factory: Any, receiver: Receiver) -> None:
    h = harness_factory(settings(receiver.url))
    h.tick(T0)
    h.change("r1", T0)
    receiver.script = [400]
    for seconds in (31, 60, 600):
        h.tick(T0 + timedelta(seconds=seconds))
    assert len(receiver.requests) == 1
    assert h.count("failed") == 1 and h.count("retried") == 0
    [(_, _, status, attempts, error)] = h.store.entries()
    assert (status, attempts, error) == ("failed", 1, "HTTP 400")


def test_retries_stop_after_max_attempts(harness_factory: Any, receiver: Receiver) -> None:
    h = harness_factory(settings(receiver.url))
    h.tick(T0)
    h.change("r1", T0)
    receiver.script = [503] * 10
    for minutes in range(1, 30):
        h.tick(T0 + timedelta(minutes=minutes))
    assert len(receiver.requests) == 4  # max_attempts
    assert h.count("retried") == 3 and h.count("failed") == 1


def test_changes_below_the_channel_minimum_are_not_sent(harness_factory: Any, receiver: Receiver) -> None:
    h = harness_factory(settings(receiver.url, min_severity="breaking"))
    h.tick(T0)
    h.change("r1", T0, Severity.WARNING)
    h.tick(T0 + timedelta(minutes=1))
    h.change("r2", T0 + timedelta(minutes=2), Severity.BREAKING)
    h.tick(T0 + timedelta(minutes=3))
    [report] = receiver.delivered()
    assert [t["region"] for t in report["targets"]] == ["r2"]


def test_an_unreachable_receiver_is_retried_and_its_url_never_logged(
    harness_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = harness_factory(settings(f"http://127.0.0.1:9/hooks/{HOOK_SECRET}"))
    h.tick(T0)
    h.change("r1", T0)
    h.tick(T0 + timedelta(minutes=1))
    assert h.count("retried") == 1
    assert HOOK_SECRET not in caplog.text
    assert HOOK_SECRET not in generate_latest(h.metrics.registry).decode()
    assert all(HOOK_SECRET not in repr(row) for row in h.store.entries())


def test_alertmanager_alerts_are_resent_while_active_then_resolved(harness_factory: Any, receiver: Receiver) -> None:
    h = harness_factory(settings(receiver.url, kind="alertmanager", active_for="10m", resend_interval="2m"))
    h.tick(T0)
    h.change("r1", T0)
    for minutes in range(1, 20):
        h.tick(T0 + timedelta(minutes=minutes))
    posts = [json.loads(body) for path, _, body, _ in receiver.requests]
    assert all(path == "/api/v2/alerts" for path, *_ in receiver.requests)
    assert len(posts) == 6  # at 1, 3, 5, 7, 9 minutes, then the resolving send at 11
    for alerts in posts:
        [alert] = alerts
        assert alert["labels"]["alertname"] == ALERTNAME and alert["labels"]["severity"] == "critical"
        assert alert["labels"]["region"] == "r1"
    ends = datetime.fromisoformat(posts[-1][0]["endsAt"])
    assert ends == T0 + timedelta(minutes=11)  # grouped at minute 1, active for 10 minutes
    assert h.count("sent") == 6


def test_slack_message_lists_targets_and_changes() -> None:
    report = {
        "summary": "schema changes in 1 target(s): 1 breaking",
        "worst_severity": "breaking",
        "targets": [
            {"cloud": "c", "region": "r", "schema": "images", "worst_severity": "breaking", "link": "https://x/1",
             "changes": [{"severity": "breaking", "rule": "property-removed", "path": "/properties/a"}]}
        ],
    }  # fmt: skip
    text = slack_message(report)["text"]
    assert "<https://x/1|c/r/images>" in text and "breaking: property-removed /properties/a" in text


def test_a_change_breaking_a_consumer_says_so_in_every_channel() -> None:
    mark = ConsumerBreak("tf", "815d30ea", "compute-versions: v2.1 serves microversion 2.96",
                         "max microversion 2.95 < required 2.96")  # fmt: skip
    key = TargetKey("os", "r3", "compute-versions")
    records = [
        ChangeRecord(7, key, 3, T0, "/versions/v2.1/max_version", "max-microversion-lowered", Severity.BREAKING,
                     "2.96", "2.95", "a" * 64, "b" * 64, breaks=(mark,)),
        ChangeRecord(8, key, 3, T0, "/versions/v2.1/updated", "updated-changed", Severity.COSMETIC, "x", "y",
                     "a" * 64, "b" * 64),
    ]  # fmt: skip
    report = build_report(records, T0)
    assert report["summary"] == "schema changes in 1 target(s): 1 breaking, 1 cosmetic; breaks tf in r3"
    [target] = report["targets"]
    assert target["breaks"] == ["tf"]
    assert [c["breaks"] for c in target["changes"]] == [[mark.as_json()], []]
    assert (
        "breaking: max-microversion-lowered /versions/v2.1/max_version (breaks tf in r3)"
        in (slack_message(report)["text"])
    )
    [alert] = alerts_for({**report, "targets": [{**target, "detected_at": T0.isoformat()}]}, T0)
    assert "(breaks tf in r3)" in alert["annotations"]["description"]
    keep = report_group_request("hook", "breaking", NotificationsConfig()).keep
    cosmetic = replace(records[1], breaks=(mark,))
    assert keep(records[0]) and not keep(records[1]) and keep(cosmetic)
    assert not keep(replace(cosmetic, ignored=True)) and not keep(replace(cosmetic, expected=True))


def test_alertmanager_alerts_always_carry_an_alertname() -> None:
    report = {"targets": [{"cloud": "c", "region": "r", "schema": "s", "worst_severity": "cosmetic", "snapshot_id": 7,
                           "detected_at": T0.isoformat(), "changes": []}]}  # fmt: skip
    [alert] = alerts_for(report, T0)
    assert alert["labels"]["alertname"] == ALERTNAME and alert["labels"]["severity"] == "info"
    assert alert["labels"]["snapshot_id"] == "7"  # one alert per change event


def test_ignored_and_expected_changes_are_not_notified(harness_factory: Any, receiver: Receiver) -> None:
    h = harness_factory(settings(receiver.url))
    h.tick(T0)
    key = TargetKey("sim", "r9", "images")
    tid = h.repository.ensure_targets([(key, "https://r9")])[key]
    first = h.repository.record_snapshot(tid, None, _doc({"a": 1}), [], _ok(key, T0 - timedelta(hours=1)))
    quiet = [
        Change("/properties/a/default", "default-changed", Severity.WARNING, 1, 2, ignored=True),
        Change("/properties/b", "property-removed", Severity.BREAKING, {"type": "string"}, ABSENT, expected=True),
    ]
    h.repository.record_snapshot(tid, first, _doc({"a": 2}), quiet, _ok(key, T0))
    h.tick(T0 + timedelta(minutes=1))
    assert receiver.requests == []


def test_a_flapping_target_is_marked_in_the_report(harness_factory: Any, receiver: Receiver) -> None:
    h = harness_factory(settings(receiver.url))
    h.tick(T0)
    key = TargetKey("sim", "r1", "images")
    tid = h.repository.ensure_targets([(key, "https://r1")])[key]
    previous = h.repository.record_snapshot(tid, None, _doc({"a": 0}), [], _ok(key, T0 - timedelta(minutes=30)))
    for i in range(1, 4):  # three flips within the hour
        change = Change("/properties/a/default", "default-changed", Severity.WARNING, i - 1, i)
        at = T0 + timedelta(seconds=i)
        previous = h.repository.record_snapshot(tid, previous, _doc({"a": i % 2}), [change], _ok(key, at))
    h.tick(T0 + timedelta(minutes=1))
    [report] = receiver.delivered()
    assert len(report["targets"]) == 3  # one entry per flip, each marked
    assert all(target["flapping"] is True for target in report["targets"])


def test_two_monitor_processes_deliver_each_notification_once(harness_factory: Any, receiver: Receiver) -> None:
    first = harness_factory(settings(receiver.url))
    second = harness_factory(settings(receiver.url))  # another replica on the same database
    first.tick(T0)
    second.tick(T0)
    first.change("r1", T0)
    first.change("r2", T0 + timedelta(seconds=5))
    for seconds in (31, 32, 40, 60):
        first.tick(T0 + timedelta(seconds=seconds))
        second.tick(T0 + timedelta(seconds=seconds))
    [report] = receiver.delivered()
    assert len(receiver.requests) == 1
    assert {t["region"] for t in report["targets"]} == {"r1", "r2"}


def test_a_claimed_entry_is_not_handed_out_again_until_its_lease_runs_out(
    harness_factory: Any, receiver: Receiver
) -> None:
    h = harness_factory(settings(receiver.url))
    h.tick(T0)
    h.change("r1", T0)
    h.store.group_pending(h.dispatcher._channels["ops"].group_request(), T0 + timedelta(seconds=31))
    now = T0 + timedelta(seconds=32)
    assert len(h.store.due(now, lease=60)) == 1
    assert h.store.due(now + timedelta(seconds=1), lease=60) == []  # claimed by the first caller
    assert len(h.store.due(now + timedelta(seconds=61), lease=60)) == 1  # the claimer died: retried
