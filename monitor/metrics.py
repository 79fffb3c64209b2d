"""Every Prometheus metric the monitor exports, on an injected registry.

Label values come only from the config (``cloud``, ``region``, ``schema``) or from fixed lists
(``reason``, ``severity``, ``operation``), so no response can grow the number of series. Every known
label set is created at zero when the targets are registered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from monitor.domain import FailureReason, PollResult, Severity, TargetKey

TARGET_LABELS = ("cloud", "region", "schema")
DB_OPERATIONS = (
    "ensure_targets", "restore", "record_poll", "record_snapshot", "prune", "read", "notify", "ack", "rollout",
)  # fmt: skip
NOTIFICATION_OUTCOMES = ("sent", "retried", "failed")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The _created series double the exposition for no alerting value.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The monitor's metrics; one instance per registry."""

    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        self.registry = registry
        self.poll_success = Gauge(
            "schemadrift_poll_success", "1 if the last poll of the target succeeded, else 0.", TARGET_LABELS,
            registry=registry,
        )  # fmt: skip
        self.polls = Counter("schemadrift_polls", "Polls attempted.", TARGET_LABELS, registry=registry)
        self.poll_failures = Counter(
            "schemadrift_poll_failures", "Failed polls by reason.", (*TARGET_LABELS, "reason"), registry=registry
        )
        self.poll_duration = Histogram(
            "schemadrift_poll_duration_seconds", "Wall time of a poll, retries included.", TARGET_LABELS,
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.last_poll = Gauge(
            "schemadrift_last_poll_timestamp_seconds", "Unix time the last poll started.", TARGET_LABELS,
            registry=registry,
        )  # fmt: skip
        self.last_success = Gauge(
            "schemadrift_last_success_timestamp_seconds", "Unix time of the last successful poll.", TARGET_LABELS,
            registry=registry,
        )  # fmt: skip
        self.last_change = Gauge(
            "schemadrift_last_change_timestamp_seconds", "Unix time the last change was detected (0: never).",
            TARGET_LABELS, registry=registry,
        )  # fmt: skip
        self.changes = Counter(
            "schemadrift_changes", "Changes detected, by severity.", (*TARGET_LABELS, "severity"), registry=registry
        )
        self.schema_properties = Gauge(
            "schemadrift_schema_properties", "Named properties, at any depth, in the current document.",
            TARGET_LABELS, registry=registry,
        )  # fmt: skip
        self.response_size = Gauge(
            "schemadrift_response_size_bytes", "Decoded size of the last successful response body.", TARGET_LABELS,
            registry=registry,
        )  # fmt: skip
        self.poll_interval = Gauge(
            "schemadrift_poll_interval_seconds",
            "Configured poll interval of the target (for staleness alerts).",
            TARGET_LABELS,
            registry=registry,
        )
        self.notifications = Counter(
            "schemadrift_notifications",
            "Notification delivery attempts by channel and outcome (sent, retried, failed).",
            ("channel", "outcome"),
            registry=registry,
        )
        group = ("cloud", "schema")
        self.region_variants = Gauge(
            "schemadrift_region_variants", "Distinct documents the regions of a cloud serve now.", group,
            registry=registry,
        )  # fmt: skip
        self.region_deviates = Gauge(
            "schemadrift_region_deviates", "1 when the region serves another document than the reference.",
            TARGET_LABELS, registry=registry,
        )  # fmt: skip
        self.rollout_in_progress = Gauge(
            "schemadrift_rollout_in_progress", "1 while a change is spreading across the regions.", group,
            registry=registry,
        )  # fmt: skip
        self.rollout_last_completed = Gauge(
            "schemadrift_rollout_last_completed_timestamp_seconds", "When the last rollout completed (0: never).",
            group, registry=registry,
        )  # fmt: skip
        self.rollout_last_duration = Gauge(
            "schemadrift_rollout_last_duration_seconds", "How long the last completed rollout took.", group,
            registry=registry,
        )  # fmt: skip
        self.flapping = Gauge(
            "schemadrift_flapping", "1 while the target's document changes too often (see changes.flapping_*).",
            TARGET_LABELS, registry=registry,
        )  # fmt: skip
        self.drift_unacknowledged = Gauge(
            "schemadrift_drift_unacknowledged", "Changes between baseline and current document nobody acknowledged.",
            (*TARGET_LABELS, "severity"), registry=registry,
        )  # fmt: skip
        identity = ("cloud", "region")
        self.auth_requests = Counter(
            "schemadrift_auth_requests", "Token requests to the identity service (Keystone v3 / IAM).", identity,
            registry=registry,
        )  # fmt: skip
        self.auth_failures = Counter(
            "schemadrift_auth_failures", "Token requests that failed (refused, unreachable, timed out).", identity,
            registry=registry,
        )  # fmt: skip
        self.auth_token_expiry = Gauge(
            "schemadrift_auth_token_expiry_timestamp_seconds", "When the cached token expires (Unix time; 0: none).",
            identity, registry=registry,
        )  # fmt: skip
        self.db_up = Gauge("schemadrift_db_up", "1 if the last database operation succeeded.", registry=registry)
        self.db_errors = Counter(
            "schemadrift_db_errors", "Failed database operations.", ("operation",), registry=registry
        )
        self.build_info = Info("schemadrift_build", "Version of schema-drift-monitor.", registry=registry)
        self.build_info.info({"version": version})
        self.db_up.set(0)
        self.db_ok = False
        for operation in DB_OPERATIONS:
            self.db_errors.labels(operation)

    def register_targets(self, keys: Iterable[TargetKey]) -> None:
        """Create every label set of the given targets at zero."""
        for key in keys:
            for metric, labels in self._target_series(key):
                metric.labels(*labels)

    def remove_targets(self, keys: Iterable[TargetKey]) -> None:
        """Drop every series of targets no longer polled (a region that left the catalog)."""
        for key in keys:
            labels = (key.cloud, key.region, key.schema)
            set_later = [(self.poll_interval, labels), (self.region_deviates, labels)]  # not created at registration
            for metric, series in [*self._target_series(key), *set_later]:
                _remove(metric, series)

    def _target_series(self, key: TargetKey) -> Iterator[tuple[Counter | Gauge | Histogram, tuple[str, ...]]]:
        """Every (metric, label values) of a target that :meth:`register_targets` creates."""
        labels = (key.cloud, key.region, key.schema)
        per_target = (
            self.poll_success, self.polls, self.poll_duration, self.last_poll, self.last_success,
            self.last_change, self.schema_properties, self.response_size, self.flapping,
        )  # fmt: skip
        for metric in per_target:
            yield metric, labels
        for reason in FailureReason:
            yield self.poll_failures, (*labels, reason.value)
        for severity in Severity:
            yield self.changes, (*labels, severity.value)
            yield self.drift_unacknowledged, (*labels, severity.value)

    def remove_groups(self, groups: Iterable[tuple[str, str]]) -> None:
        """Drop the (cloud, schema) series of groups no region is left in."""
        for group in groups:
            for metric in (self.region_variants, self.rollout_in_progress, self.rollout_last_completed):
                _remove(metric, group)
            _remove(self.rollout_last_duration, group)

    def register_identity(self, cloud: str, region: str) -> None:
        """Create the auth series of a (cloud, region) that authenticates, at zero."""
        for metric in (self.auth_requests, self.auth_failures, self.auth_token_expiry):
            metric.labels(cloud, region)

    def remove_identity(self, cloud: str, region: str) -> None:
        """Drop the auth series of a region no longer polled."""
        for metric in (self.auth_requests, self.auth_failures, self.auth_token_expiry):
            _remove(metric, (cloud, region))

    def auth_attempt(self, cloud: str, region: str, ok: bool, expires_at: float) -> None:
        """Count one token request and export the cached token's expiry (0: no token)."""
        self.auth_requests.labels(cloud, region).inc()
        if not ok:
            self.auth_failures.labels(cloud, region).inc()
        self.auth_token_expiry.labels(cloud, region).set(expires_at)

    def set_interval(self, key: TargetKey, seconds: float) -> None:
        """Export the target's configured poll interval."""
        self.poll_interval.labels(key.cloud, key.region, key.schema).set(seconds)

    def register_channels(self, names: Iterable[str]) -> None:
        """Create every notification label set at zero."""
        for name in names:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(name, outcome)

    def observe_poll(self, result: PollResult) -> None:
        """Count one poll and set the target's last-poll gauges from its result."""
        key = result.target
        labels = (key.cloud, key.region, key.schema)
        self.polls.labels(*labels).inc()
        self.poll_duration.labels(*labels).observe(result.duration)
        self.last_poll.labels(*labels).set(result.started_at.timestamp())
        self.poll_success.labels(*labels).set(1 if result.ok else 0)
        if result.ok:
            self.last_success.labels(*labels).set(result.started_at.timestamp())
        elif result.reason is not None:
            self.poll_failures.labels(*labels, result.reason.value).inc()
        for change in result.counted_changes:  # ignored and expected changes are stored, not counted
            self.changes.labels(*labels, change.severity.value).inc()
        if result.changes:
            self.last_change.labels(*labels).set(result.started_at.timestamp())

    def set_document(self, key: TargetKey, size: int, properties: int) -> None:
        """Describe the target's current document."""
        self.response_size.labels(key.cloud, key.region, key.schema).set(size)
        self.schema_properties.labels(key.cloud, key.region, key.schema).set(properties)

    def restore(
        self,
        key: TargetKey,
        *,
        last_poll_at: datetime | None,
        last_poll_ok: bool | None,
        last_success_at: datetime | None,
        last_change_at: datetime | None,
    ) -> None:
        """Set the gauges from stored state after a restart, before the first poll."""
        labels = (key.cloud, key.region, key.schema)
        if last_poll_at is not None:
            self.last_poll.labels(*labels).set(last_poll_at.timestamp())
        if last_poll_ok is not None:
            self.poll_success.labels(*labels).set(1 if last_poll_ok else 0)
        if last_success_at is not None:
            self.last_success.labels(*labels).set(last_success_at.timestamp())
        if last_change_at is not None:
            self.last_change.labels(*labels).set(last_change_at.timestamp())

    def db_result(self, ok: bool, operation: str | None = None) -> None:
        """Record the outcome of a database operation."""
        self.db_ok = ok
        self.db_up.set(1 if ok else 0)
        if not ok and operation is not None:
            self.db_errors.labels(operation if operation in DB_OPERATIONS else "read").inc()


def _remove(metric: Counter | Gauge | Histogram, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never created
        metric.remove(*labels)
