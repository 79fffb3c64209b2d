"""Every Prometheus metric the monitor exports; the only module importing prometheus_client.

Label values come only from the config (``cloud``, ``region``, ``schema``) or from fixed lists
(``reason``, ``severity``, ``operation``), so no response can grow the number of series. Nothing reads a
metric back: each method here only writes; the state a metric describes lives in the component that sets it.

Two kinds of series:

* **Per target** (:data:`TARGET_FAMILIES`): held as plain numbers in one small object per registered target
  and exported by :class:`_TargetCollector`. :meth:`Metrics.exposition` renders these families itself — the
  same text ``generate_latest`` writes (a test compares them), about ten times faster, so a scrape of 10,000
  targets stays well under a second.
* **Everything else** (per cloud, per channel, per operation, the process): prometheus_client metrics,
  declared once as class attributes of :class:`Metrics` (one line each: type, name, help, labels). Poll
  durations are a histogram per cloud, not per target (13 series per target would dominate the scrape).

How many series a target costs is ``detail`` (config ``metrics.detail``, docs/metrics-and-alerts.md#series-per-target):

* ``basic`` (the default): what the shipped alerts and dashboard need — 9 series per target at registration.
  Of the severity families only ``schemadrift_changes_total{severity="breaking"|"warning"}`` exist at zero (the
  alerts take their ``increase()``); another severity's series appears when it first occurs (a change of that
  severity, unacknowledged drift of it) and stays. Failure reasons appear at a target's first failure with
  that reason in both modes (pre-creating 20 reasons for 10,000 targets would be 200,000 series of zeros).
  The detail families (:attr:`_Family.full`, :attr:`_Metric.full`) are not exported at all.
* ``full``: every family, every severity at zero from registration (20 series per target, plus the API surface
  of a versions document: each version's status and microversion minimum too).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, overload

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client import disable_created_metrics as _disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from monitor.domain import MetricsDetail, PollResult, Severity, TargetKey
from monitor.judge.kinds import VersionEntry as SurfaceVersion

TARGET_LABELS = ("cloud", "region", "schema")
GROUP_LABELS = ("cloud", "schema")
IDENTITY_LABELS = ("cloud", "region")
SURFACE_LABELS = (*TARGET_LABELS, "service", "version", "major")
CONSUMER_LABELS = ("consumer", "region")
DB_OPERATIONS = (
    "ensure_targets", "restore", "record_poll", "record_snapshot", "prune", "read", "notify", "ack", "rollout",
)  # fmt: skip
NOTIFICATION_OUTCOMES = ("sent", "retried", "failed")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of :meth:`Metrics.exposition` (Prometheus text format 0.0.4)."""

RARELY_CHANGED = frozenset({"target_kind", "api_version", "api_min", "api_max", "catalog_service", "catalog_missing"})
"""Families (:class:`Metrics` attributes) set when a target, its document or a catalog changes, not per poll."""

# The _created series double the exposition for no alerting value.
_disable_created_metrics()  # type: ignore[no-untyped-call]

_M = TypeVar("_M", Counter, Gauge, Histogram)


# --- per-target series ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _TargetSeries:
    """One target's values; ``pairs`` its rendered labels (``cloud="…"``, ``region="…"``, ``schema="…"``)."""

    pairs: tuple[str, ...]
    labels: str = ""  # the pairs joined, as a sample writes them
    values: dict[str, float] = field(default_factory=dict)  # family attribute → value
    by_label: dict[str, dict[str, float]] = field(default_factory=dict)  # family attribute → label value → value


@dataclass(frozen=True, slots=True)
class _Family:
    """A per-target metric family; ``label`` names the extra label of a family with one (severity, reason)."""

    attribute: str
    name: str
    kind: Literal["gauge", "counter"]
    documentation: str
    label: str | None = None
    preset: tuple[str, ...] = ()  # values of ``label`` created at zero at registration (detail "full")
    basic_preset: tuple[str, ...] = ()  # … under detail "basic"
    full: bool = False  # exported under detail "full" only

    def presets(self, detail: MetricsDetail) -> tuple[str, ...]:
        """The values of ``label`` created at zero when a target registers."""
        return self.preset if detail == "full" else self.basic_preset

    @property
    def sample(self) -> str:
        return f"{self.name}_total" if self.kind == "counter" else self.name

    @property
    def label_position(self) -> int:
        """Where ``label`` goes among the target labels: exposition sorts label names."""
        return sorted((*TARGET_LABELS, self.label or "")).index(self.label or "")


_SEVERITIES = tuple(s.value for s in Severity)
_ALERTED = (Severity.BREAKING.value, Severity.WARNING.value)  # the severities alerts take the increase() of
TARGET_FAMILIES: tuple[_Family, ...] = (
    _Family("success", "schemadrift_poll_success", "gauge", "1 if the last poll of the target succeeded, else 0."),
    _Family("polls", "schemadrift_polls", "counter", "Polls attempted.", full=True),
    _Family("failures", "schemadrift_poll_failures", "counter", "Failed polls by reason.", "reason"),
    _Family("last_poll", "schemadrift_last_poll_timestamp_seconds", "gauge", "Unix time the last poll started.",
            full=True),
    _Family("last_duration", "schemadrift_last_poll_duration_seconds", "gauge",
            "Wall time of the last poll, retries included.", full=True),
    _Family("last_success", "schemadrift_last_success_timestamp_seconds", "gauge",
            "Unix time of the last successful poll."),
    _Family("last_change", "schemadrift_last_change_timestamp_seconds", "gauge",
            "Unix time the last change was detected (0: never)."),
    _Family("changes", "schemadrift_changes", "counter", "Changes detected, by severity.", "severity", _SEVERITIES,
            _ALERTED),
    _Family("properties", "schemadrift_schema_properties", "gauge",
            "Named properties, at any depth, in the current document.", full=True),
    _Family("size", "schemadrift_response_size_bytes", "gauge", "Decoded size of the last successful response body.",
            full=True),
    _Family("interval", "schemadrift_poll_interval_seconds", "gauge",
            "Configured poll interval of the target (for staleness alerts)."),
    _Family("deviates", "schemadrift_region_deviates", "gauge",
            "1 when the region serves another document than the reference."),
    _Family("flapping", "schemadrift_flapping", "gauge",
            "1 while the target's document changes too often (see changes.flapping_*)."),
    _Family("drift", "schemadrift_drift_unacknowledged", "gauge",
            "Changes between baseline and current document nobody acknowledged.", "severity", _SEVERITIES),
)  # fmt: skip


class _TargetCollector(Collector):
    """Exports the per-target families of ``detail``: through ``collect()`` for the registry, and as text, faster."""

    def __init__(self, detail: MetricsDetail) -> None:
        self.targets: dict[TargetKey, _TargetSeries] = {}
        self.lock = threading.Lock()  # held while values change and while they are read out
        self.families = tuple(f for f in TARGET_FAMILIES if detail == "full" or not f.full)
        self.presets = {f.attribute: f.presets(detail) for f in TARGET_FAMILIES}

    def new_series(self, key: TargetKey) -> _TargetSeries:
        """A registered target's values: every label-less family and the preset label values at zero."""
        values = (key.cloud, key.region, key.schema)
        pairs = tuple(f'{name}="{_escape(value)}"' for name, value in zip(TARGET_LABELS, values, strict=True))
        series = _TargetSeries(pairs, ",".join(pairs))
        for family in TARGET_FAMILIES:  # the detail families too: polls count them whatever is exported
            if family.label is None:
                series.values[family.attribute] = 0.0
            elif preset := self.presets[family.attribute]:
                series.by_label[family.attribute] = dict.fromkeys(preset, 0.0)
        return series

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            series = [(key, _copy(target)) for key, target in self.targets.items()]
        for family in self.families:
            factory = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            labels = [*TARGET_LABELS, *([family.label] if family.label else [])]
            metric = factory(family.name, family.documentation, labels=labels)
            for key, target in series:
                for extra, value in _samples(family, target):
                    metric.add_metric([key.cloud, key.region, key.schema, *extra], value)
            yield metric

    def render(self) -> str:
        """The families in the text exposition format, as ``generate_latest`` would write them."""
        with self.lock:
            return self._render()

    def _render(self) -> str:
        series = list(self.targets.values())
        families: list[str] = []
        for family in self.families:
            help_text = _escape_help(family.documentation)
            parts = [f"# HELP {family.sample} {help_text}\n# TYPE {family.sample} {family.kind}\n"]
            if family.label is None:
                _render_plain(family, series, parts)
            else:
                _render_labelled(family, series, parts)
            # joined per family: a family's lines (a small string each) are freed before the next is written, so
            # a scrape of 100,000 targets does not hold two million of them at once (memory the process keeps)
            families.append("".join(parts))
        return "".join(families)


def _render_plain(family: _Family, series: Iterable[_TargetSeries], parts: list[str]) -> None:
    """The lines of a family without an extra label: one per target (a hundred thousand in a scrape, so: one
    f-string per line, the target's labels joined once, common values formatted once)."""
    sample, attribute, text = family.sample, family.attribute, _FloatText()
    for target in series:
        parts.append(f"{sample}{{{target.labels}}} {text[target.values.get(attribute, 0.0)]}\n")


def _render_labelled(family: _Family, series: Iterable[_TargetSeries], parts: list[str]) -> None:
    """The lines of a family with an extra label (severity, reason): one per target and label value, sorted."""
    sample, attribute, at, text = family.sample, family.attribute, family.label_position, _FloatText()
    for target in series:
        by_label = target.by_label.get(attribute)
        if not by_label:
            continue
        for label, value in sorted(by_label.items()):
            pairs = target.pairs
            pairs = (*pairs[:at], f'{family.label}="{_escape(label)}"', *pairs[at:])
            parts.append(f"{sample}{{{','.join(pairs)}}} {text[value]}\n")


class _FloatText(dict[float, str]):
    """Sample values as text, each distinct value formatted once per family (0, 1, intervals, sizes repeat)."""

    def __missing__(self, value: float) -> str:
        text = _go_float(value)
        if len(self) < 4096:  # timestamps rarely repeat: do not hold them all
            self[value] = text
        return text


def _samples(family: _Family, target: _TargetSeries) -> Iterator[tuple[tuple[str, ...], float]]:
    """(extra label values, value) of one family of one target."""
    if family.label is None:
        yield (), target.values.get(family.attribute, 0.0)
        return
    for label, value in sorted(target.by_label.get(family.attribute, {}).items()):
        yield (label,), value


def _go_float(value: float) -> str:
    """A sample value as prometheus_client writes it (``1.0``, ``+Inf``, ``1.764e+09``)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _copy(series: _TargetSeries) -> _TargetSeries:
    by_label = {k: dict(v) for k, v in series.by_label.items()}
    return _TargetSeries(series.pairs, series.labels, dict(series.values), by_label)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


class _KindCollector(Collector):
    """``schemadrift_target_kind``: 1 per target, its labels read from ``kinds`` (target → label values) at each
    collection — no prometheus_client child (a lock and a value object) per target."""

    def __init__(self, kinds: Mapping[TargetKey, tuple[str, ...]]) -> None:
        self._kinds = kinds

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "schemadrift_target_kind", "1 for each target: the kind of its document and the API.",
            labels=(*TARGET_LABELS, "kind", "service"),
        )  # fmt: skip
        for labels in list(self._kinds.values()):
            family.add_metric(labels, 1)
        yield family


# --- everything else ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Metric(Generic[_M]):
    """One prometheus_client metric's declaration; on a :class:`Metrics` instance the attribute is the metric."""

    factory: Callable[..., _M]
    name: str
    documentation: str
    labels: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    full: bool = False  # exported under detail "full" only
    attribute: str = ""

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "attribute", name)

    @overload
    def __get__(self, instance: None, owner: type) -> _Metric[_M]: ...
    @overload
    def __get__(self, instance: Metrics, owner: type) -> _M: ...
    def __get__(self, instance: Metrics | None, owner: type) -> _M | _Metric[_M]:
        return self if instance is None else instance.built[self.attribute]

    def build(self) -> _M:
        return self.factory(self.name, self.documentation, self.labels, registry=None, **self.options)


class Metrics:
    """The monitor's metrics; one instance per registry (a new one when none is given).

    Per-target methods act on registered targets only (:meth:`register_targets`); for any other target they
    do nothing, so a poll that outlived its target's removal cannot bring its series back. Methods may be
    called from any thread.
    """

    poll_duration = _Metric(Histogram, "schemadrift_poll_duration_seconds", "Wall time of polls, retries included.",
                            ("cloud",), {"buckets": DURATION_BUCKETS})  # fmt: skip
    notifications = _Metric(Counter, "schemadrift_notifications",
                            "Notification delivery attempts by channel and outcome (sent, retried, failed).",
                            ("channel", "outcome"))  # fmt: skip
    region_variants = _Metric(Gauge, "schemadrift_region_variants",
                              "Distinct documents the regions of a cloud serve now.", GROUP_LABELS)  # fmt: skip
    rollout_in_progress = _Metric(Gauge, "schemadrift_rollout_in_progress",
                                  "1 while a change is spreading across the regions.", GROUP_LABELS)  # fmt: skip
    rollout_last_completed = _Metric(Gauge, "schemadrift_rollout_last_completed_timestamp_seconds",
                                     "When the last rollout completed (0: never).", GROUP_LABELS)  # fmt: skip
    rollout_last_duration = _Metric(Gauge, "schemadrift_rollout_last_duration_seconds",
                                    "How long the last completed rollout took.", GROUP_LABELS)  # fmt: skip
    auth_requests = _Metric(Counter, "schemadrift_auth_requests",
                            "Token requests to the identity service (Keystone v3 / IAM).", IDENTITY_LABELS)  # fmt: skip
    auth_failures = _Metric(Counter, "schemadrift_auth_failures",
                            "Token requests that failed (refused, unreachable, timed out).",
                            IDENTITY_LABELS)  # fmt: skip
    auth_token_expiry = _Metric(Gauge, "schemadrift_auth_token_expiry_timestamp_seconds",
                                "When the cached token expires (Unix time; 0: none).", IDENTITY_LABELS)  # fmt: skip
    api_min = _Metric(Gauge, "schemadrift_api_min_microversion",
                      "Minimum microversion an API version advertises: the minor part (the major is a label).",
                      SURFACE_LABELS, full=True)  # fmt: skip
    api_max = _Metric(Gauge, "schemadrift_api_max_microversion",
                      "Maximum microversion an API version advertises: the minor part (the major is a label).",
                      SURFACE_LABELS)  # fmt: skip
    api_version = _Metric(Gauge, "schemadrift_api_version_info",
                          "1 for each API version a versions document lists, with its status.",
                          (*TARGET_LABELS, "service", "version", "status"), full=True)  # fmt: skip
    catalog_service = _Metric(Gauge, "schemadrift_catalog_service",
                              "1 for each service type of the region's catalog the config derives targets from.",
                              ("cloud", "region", "service"))  # fmt: skip
    catalog_missing = _Metric(Gauge, "schemadrift_catalog_service_missing",
                              "1 when other regions of the cloud have this service in their catalog, this one not.",
                              ("cloud", "region", "service"))  # fmt: skip
    consumer_compatible = _Metric(Gauge, "schemadrift_consumer_compatible",
                                  "1 while every requirement of the consumer is met in the region, 0 while one is "
                                  "not; absent while unknown (docs/consumers.md).", CONSUMER_LABELS)  # fmt: skip
    consumer_requirement_met = _Metric(Gauge, "schemadrift_consumer_requirement_met",
                                       "1 while the consumer's requirement is met in the region, 0 while it is not; "
                                       "absent while unknown.", (*CONSUMER_LABELS, "requirement"))  # fmt: skip
    replica_info = _Metric(Gauge, "schemadrift_replica_info", "Always 1: the name of this replica.", ("replica",))
    replica_owned = _Metric(Gauge, "schemadrift_replica_owned_targets", "Targets this replica holds the lease of.",
                            ("replica",))  # fmt: skip
    replica_leader = _Metric(Gauge, "schemadrift_replica_leader", "1 while this replica holds the leader lease.",
                             ("replica",))  # fmt: skip
    replicas_live = _Metric(Gauge, "schemadrift_replicas_live", "Live replicas this replica sees (heartbeats).")
    replicas_expected = _Metric(
        Gauge, "schemadrift_replicas_expected", "Replicas the config expects (ha.expected_replicas)."
    )
    targets_unowned = _Metric(Gauge, "schemadrift_targets_unowned",
                              "Targets without a live lease (counted by the leader; 0 on the others).")  # fmt: skip
    db_up = _Metric(Gauge, "schemadrift_db_up", "1 if the last database operation succeeded.")
    db_errors = _Metric(Counter, "schemadrift_db_errors", "Failed database operations.", ("operation",))

    def __init__(
        self, registry: CollectorRegistry | None = None, version: str = "", detail: MetricsDetail = "basic"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.detail: MetricsDetail = detail
        self._plain = CollectorRegistry(auto_describe=True)  # everything but the per-target families and _rare
        self._rare = CollectorRegistry(auto_describe=True)  # the families of :data:`RARELY_CHANGED`
        self._rare_text: tuple[int, bytes] = (-1, b"")  # their exposition as of a generation
        self._rare_generation = 0  # moved on after every change of them
        declared = [d for d in _declared(type(self)) if detail == "full" or not d.full]
        self.built: dict[str, Any] = {d.attribute: d.build() for d in declared}
        build_info = Info("schemadrift_build", "Version of schema-drift-monitor.", registry=None)
        build_info.info({"version": version})
        self._kinds: dict[TargetKey, tuple[str, ...]] = {}  # exported as schemadrift_target_kind (_KindCollector)
        kinds = _KindCollector(self._kinds)
        for attribute, collector in (*self.built.items(), ("build", build_info), ("target_kind", kinds)):
            (self._rare if attribute in RARELY_CHANGED else self._plain).register(collector)
            self.registry.register(collector)
        self._surface: dict[TargetKey, list[tuple[Gauge, tuple[str, ...]]]] = {}  # a target's API surface series
        self._catalog: dict[tuple[str, str], list[tuple[Gauge, str]]] = {}
        self._durations: dict[str, Any] = {}  # cloud → its child of poll_duration
        self._targets = _TargetCollector(detail)
        self.registry.register(self._targets)
        self.db_up.set(0)
        self.db_ok = False  # the last database operation's outcome, for /readyz (not read from the gauge)
        for operation in DB_OPERATIONS:
            self.db_errors.labels(operation)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (:data:`CONTENT_TYPE`), for ``/metrics``.

        The families of :data:`RARELY_CHANGED` (a series or more per target, set when a target or its document
        comes and goes) are rendered again only after they changed.
        """
        generation, rare = self._rare_text
        if generation != self._rare_generation:
            generation = self._rare_generation  # read before rendering: a change meanwhile renders again next time
            rare = generate_latest(self._rare)
            self._rare_text = (generation, rare)
        return generate_latest(self._plain) + rare + self._targets.render().encode()

    def _rare_changed(self) -> None:
        """A family of :data:`RARELY_CHANGED` changed (called after the change)."""
        self._rare_generation += 1

    # --- targets -------------------------------------------------------------------------------------

    def register_targets(self, keys: Iterable[TargetKey]) -> None:
        """Create every label set of the given targets at zero (targets already registered keep theirs)."""
        with self._targets.lock:
            for key in keys:
                if key not in self._targets.targets:
                    self._targets.targets[key] = self._targets.new_series(key)
                    if key.cloud not in self._durations:  # the cloud's histogram exists from its first target
                        self._durations[key.cloud] = self.poll_duration.labels(key.cloud)

    def remove_targets(self, keys: Iterable[TargetKey]) -> None:
        """Drop every series of targets no longer polled (a region that left the catalog, a target handed over)."""
        keys = list(keys)
        with self._targets.lock:
            for key in keys:
                self._targets.targets.pop(key, None)
        for key in keys:
            self.set_surface(key, None, ())
            self._kinds.pop(key, None)
        self._rare_changed()

    def set_kind(self, key: TargetKey, kind: str, service: str | None) -> None:
        """What a target watches: its document's kind and (for the API surface) the service it describes."""
        labels = (key.cloud, key.region, key.schema, kind, service or "")
        if self._kinds.get(key) != labels:  # a retarget sets every target's kind again
            self._kinds[key] = labels
            self._rare_changed()

    def set_surface(self, key: TargetKey, service: str | None, versions: Iterable[SurfaceVersion]) -> None:
        """The API versions a target's versions document advertises now (none: drop its surface series)."""
        for metric, labels in self._surface.pop(key, []):
            _remove(metric, labels)
        series: list[tuple[Gauge, tuple[str, ...]]] = []
        base = (key.cloud, key.region, key.schema, service or key.schema)
        full = self.detail == "full"
        for version in versions:
            if full:
                info = (*base, version.id, version.status)
                self.api_version.labels(*info).set(1)
                series.append((self.api_version, info))
            bounds = ((self.api_min, version.min_version),) if full else ()
            for metric, bound in (*bounds, (self.api_max, version.max_version)):
                if bound is not None:
                    labels = (*base, version.id, str(bound.major))
                    metric.labels(*labels).set(bound.minor)
                    series.append((metric, labels))
        if series:
            self._surface[key] = series
        self._rare_changed()

    def set_catalog(self, cloud: str, regions: Mapping[str, Iterable[str]]) -> None:
        """The service types each region's catalog offers (of those the config derives targets from), and the
        ones a region lacks that another region of the cloud has."""
        offered = {region: set(services) for region, services in regions.items()}
        anywhere = set().union(*offered.values()) if offered else set()
        for (known_cloud, region), series in list(self._catalog.items()):
            if known_cloud == cloud:
                for metric, service in series:
                    _remove(metric, (cloud, region, service))
                del self._catalog[(known_cloud, region)]
        for region, services in offered.items():
            series = [(self.catalog_service, s) for s in services] + [
                (self.catalog_missing, s) for s in anywhere - services
            ]
            for metric, service in series:
                metric.labels(cloud, region, service).set(1)
            self._catalog[(cloud, region)] = series
        self._rare_changed()

    def _update(self, key: TargetKey, **values: float) -> None:
        with self._targets.lock:
            if (series := self._targets.targets.get(key)) is not None:
                series.values.update(values)

    def set_interval(self, key: TargetKey, seconds: float) -> None:
        """Export the target's configured poll interval."""
        self._update(key, interval=seconds)

    def observe_poll(self, result: PollResult) -> None:
        """Count one poll and set the target's last-poll gauges from its result."""
        key = result.target
        with self._targets.lock:
            series = self._targets.targets.get(key)
            if series is None:
                return
            _count_poll(series, result)
        duration = self._durations.get(key.cloud)
        if duration is None:  # the labelled child, looked up once per cloud rather than per poll
            duration = self._durations[key.cloud] = self.poll_duration.labels(key.cloud)
        duration.observe(result.duration)

    def set_document(self, key: TargetKey, size: int, properties: int) -> None:
        """Describe the target's current document."""
        self._update(key, size=size, properties=properties)

    def restore(
        self,
        key: TargetKey,
        *,
        last_poll_at: datetime | None,
        last_poll_ok: bool | None,
        last_success_at: datetime | None,
        last_change_at: datetime | None,
    ) -> None:
        """Set the gauges from stored state after a restart (or a handover), before the first poll."""
        known = {
            "last_poll": last_poll_at.timestamp() if last_poll_at else None,
            "success": None if last_poll_ok is None else float(last_poll_ok),
            "last_success": last_success_at.timestamp() if last_success_at else None,
            "last_change": last_change_at.timestamp() if last_change_at else None,
        }
        self._update(key, **{name: value for name, value in known.items() if value is not None})

    # --- change intelligence -------------------------------------------------------------------------

    def set_deviates(self, key: TargetKey, deviates: bool) -> None:
        """Whether the region serves another document than its (cloud, schema)'s reference."""
        self._update(key, deviates=float(deviates))

    def set_flapping(self, key: TargetKey, flapping: bool) -> None:
        self._update(key, flapping=float(flapping))

    def set_drift(self, key: TargetKey, counts: Mapping[Severity, int]) -> None:
        """The target's unacknowledged drift, per severity (a missing severity is 0). Under detail "basic" a
        severity's series appears with its first drift and then stays (at 0 once acknowledged)."""
        preset = self._targets.presets["drift"]
        with self._targets.lock:
            if (series := self._targets.targets.get(key)) is not None:
                known = series.by_label.get("drift", {})
                series.by_label["drift"] = {
                    s.value: float(counts.get(s, 0))
                    for s in Severity
                    if counts.get(s) or s.value in known or s.value in preset
                }

    def register_groups(self, groups: Iterable[tuple[str, str]]) -> None:
        """Create the (cloud, schema) series at zero."""
        for group in groups:
            for metric in self._per_group():
                metric.labels(*group)

    def _per_group(self) -> tuple[Gauge, ...]:
        return (self.region_variants, self.rollout_in_progress, self.rollout_last_completed,
                self.rollout_last_duration)  # fmt: skip

    def remove_groups(self, groups: Iterable[tuple[str, str]]) -> None:
        """Drop the (cloud, schema) series of groups no region is left in."""
        for group in groups:
            for metric in self._per_group():
                _remove(metric, group)

    def set_group(self, cloud: str, schema: str, *, rollout: bool, variants: int | None = None) -> None:
        """Whether a rollout runs in (cloud, schema), and how many documents its regions serve (when known)."""
        self.rollout_in_progress.labels(cloud, schema).set(1 if rollout else 0)
        if variants is not None:
            self.region_variants.labels(cloud, schema).set(variants)

    def set_rollout_completed(self, cloud: str, schema: str, started: datetime, completed: datetime) -> None:
        self.rollout_last_completed.labels(cloud, schema).set(completed.timestamp())
        self.rollout_last_duration.labels(cloud, schema).set((completed - started).total_seconds())

    # --- consumers ------------------------------------------------------------------------------------------

    def set_consumer(self, consumer: str, region: str, compatible: bool | None,
                     met: Mapping[str, bool | None]) -> None:  # fmt: skip
        """A consumer's state in a region: compatible (None: unknown, no series) and each requirement by id."""
        _set_or_remove(self.consumer_compatible, (consumer, region), compatible)
        for requirement, value in met.items():
            _set_or_remove(self.consumer_requirement_met, (consumer, region, requirement), value)

    def remove_consumer(self, consumer: str, region: str, requirements: Iterable[str]) -> None:
        """Drop a (consumer, region)'s series (the region left, or another replica exports them now)."""
        self.set_consumer(consumer, region, None, dict.fromkeys(requirements))

    # --- identity, notifications, database ---------------------------------------------------------------

    def register_identity(self, cloud: str, region: str) -> None:
        """Create the auth series of a (cloud, region) that authenticates, at zero."""
        for metric in self._per_identity():
            metric.labels(cloud, region)

    def _per_identity(self) -> tuple[Counter | Gauge, ...]:
        return (self.auth_requests, self.auth_failures, self.auth_token_expiry)

    def remove_identity(self, cloud: str, region: str) -> None:
        """Drop the auth series of a region no longer polled."""
        for metric in self._per_identity():
            _remove(metric, (cloud, region))

    def auth_attempt(self, cloud: str, region: str, ok: bool, expires_at: float) -> None:
        """Count one token request and export the cached token's expiry (0: no token)."""
        self.auth_requests.labels(cloud, region).inc()
        if not ok:
            self.auth_failures.labels(cloud, region).inc()
        self.auth_token_expiry.labels(cloud, region).set(expires_at)

    def register_channels(self, names: Iterable[str]) -> None:
        """Create every notification label set at zero."""
        for name in names:
            for outcome in NOTIFICATION_OUTCOMES:
                self.notifications.labels(name, outcome)

    def notification(self, channel: str, outcome: str) -> None:
        """Count one delivery attempt: ``sent``, ``retried`` or ``failed``."""
        self.notifications.labels(channel, outcome).inc()

    def set_replica(self, name: str, *, owned: int, live: int, leader: bool, expected: int, unowned: int) -> None:
        """This replica's view of the coordination (one process alone: itself, leading, owning everything)."""
        self.replica_info.labels(name).set(1)
        self.replica_owned.labels(name).set(owned)
        self.replica_leader.labels(name).set(1 if leader else 0)
        self.replicas_live.set(live)
        self.replicas_expected.set(expected)
        self.targets_unowned.set(unowned)

    def db_result(self, ok: bool, operation: str | None = None) -> None:
        """Record the outcome of a database operation."""
        self.db_ok = ok
        self.db_up.set(1 if ok else 0)
        if not ok and operation is not None:
            self.db_errors.labels(operation if operation in DB_OPERATIONS else "read").inc()


def _count_poll(series: _TargetSeries, result: PollResult) -> None:
    """Apply one poll's result to a target's values (the caller holds the lock)."""
    values, started = series.values, result.started_at.timestamp()
    values["polls"] += 1
    values["last_poll"] = started
    values["last_duration"] = result.duration
    values["success"] = 1.0 if result.ok else 0.0
    if result.ok:
        values["last_success"] = started
    elif result.reason is not None:
        failures = series.by_label.setdefault("failures", {})
        failures[result.reason.value] = failures.get(result.reason.value, 0.0) + 1
    changes = series.by_label.setdefault("changes", {})
    for change in result.counted_changes:  # ignored and expected changes are stored, not counted
        changes[change.severity.value] = changes.get(change.severity.value, 0.0) + 1
    if result.changes:
        values["last_change"] = started


def _declared(cls: type) -> Iterator[_Metric[Any]]:
    """The metric declarations of ``cls``, in declaration order."""
    return (value for value in vars(cls).values() if isinstance(value, _Metric))


def _set_or_remove(metric: Gauge, labels: tuple[str, ...], value: bool | None) -> None:
    """1 or 0 for a known state; no series for an unknown one."""
    if value is None:
        _remove(metric, labels)
    else:
        metric.labels(*labels).set(1 if value else 0)


def _remove(metric: Counter | Gauge | Histogram, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):  # never created
        metric.remove(*labels)
