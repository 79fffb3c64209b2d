"""Plain data the whole pipeline shares: targets, changes, severities, poll outcomes.

Standard library only; every adapter (HTTP, database, scheduler, metrics) speaks in these types.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, ParamSpec, Protocol, TypeVar

MetricsDetail = Literal["basic", "full"]
"""How many series the metrics export per target: config ``metrics.detail`` (docs/metrics-and-alerts.md)."""


class Severity(enum.StrEnum):
    """How much a change can hurt a client, worst first (see docs/change-rules.md)."""

    BREAKING = "breaking"
    WARNING = "warning"
    INFO = "info"
    COSMETIC = "cosmetic"

    @property
    def rank(self) -> int:
        """3 for breaking down to 0 for cosmetic; higher is worse."""
        return _SEVERITY_RANK[self]

    @classmethod
    def worst(cls, *severities: Severity) -> Severity:
        """The worst of the given severities (at least one)."""
        return max(severities, key=lambda s: s.rank)


_SEVERITY_RANK: Final = {
    Severity.BREAKING: 3,
    Severity.WARNING: 2,
    Severity.INFO: 1,
    Severity.COSMETIC: 0,
}


class FailureReason(enum.StrEnum):
    """The fixed list of reasons a poll can fail; used as the ``reason`` metric label.

    The list is closed: label values never come from a response.
    """

    TIMEOUT = "timeout"  # whole-poll deadline passed (hang, trickle, slow connect)
    CONNECT = "connect"  # connection refused / reset / DNS failure
    TLS = "tls"  # certificate or TLS handshake failure
    REDIRECT = "redirect"  # redirect to another host, to plain http, or a redirect loop
    AUTH = "auth"  # credentials could not be obtained (e.g. token_file unreadable or empty)
    HTTP_400 = "http_400"
    HTTP_401 = "http_401"
    HTTP_403 = "http_403"
    HTTP_404 = "http_404"
    HTTP_429 = "http_429"
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_504 = "http_504"
    HTTP_OTHER = "http_other"  # any other non-2xx status
    TOO_LARGE = "too_large"  # body (compressed or decompressed) over max_body_bytes
    INVALID_JSON = "invalid_json"  # not JSON: HTML, text, truncated, NaN, duplicate keys, too deep
    INVALID_SCHEMA = "invalid_schema"  # JSON, but not an object that looks like a JSON schema
    DB = "db"  # the poll succeeded but its result could not be stored
    INTERNAL = "internal"  # a bug: an unexpected exception in the poll job (logged with traceback)

    @classmethod
    def for_status(cls, status: int) -> FailureReason:
        """The reason for a non-2xx HTTP status: its own reason when listed, else ``http_other``."""
        try:
            return cls(f"http_{status}")
        except ValueError:
            return cls.HTTP_OTHER


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (everything stored and compared is UTC)."""
    return datetime.now(UTC)


def exponential_backoff(failures: int, base: float, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 or more): ``base`` doubling up to ``cap``
    (for any count: an outage of days must not overflow the float)."""
    return float(min(cap, base * 2 ** min(max(0, failures - 1), 62)))


def pointer_join(path: str, token: str | int) -> str:
    """``path`` (an RFC 6901 JSON Pointer) extended by one reference token, escaped (``~`` → ``~0``, ``/`` → ``~1``)."""
    return f"{path}/{str(token).replace('~', '~0').replace('/', '~1')}"


class _Absent:
    """Marks the missing side of an added or removed value (distinct from JSON ``null``)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Final = _Absent()


@dataclass(frozen=True, slots=True)
class TargetKey:
    """Identity of a target; every label value comes from the config."""

    cloud: str
    region: str
    schema: str

    def __str__(self) -> str:
        return f"{self.cloud}/{self.region}/{self.schema}"


@dataclass(frozen=True, slots=True)
class Change:
    """One classified difference between two documents.

    ``path`` is an RFC 6901 JSON Pointer into the new document (the old one for removals);
    ``old``/``new`` are the JSON values on each side, ``ABSENT`` where a side has none.
    """

    path: str
    rule: str
    severity: Severity
    old: Any = ABSENT
    new: Any = ABSENT
    ignored: bool = False  # matched an ignore rule: stored, never counted as drift or notified
    expected: bool = False  # detected inside an expected-change window: stored, never pages
    breaks: tuple[ConsumerBreak, ...] = ()  # consumer requirements this change turned from met to not met


@dataclass(frozen=True, slots=True)
class ConsumerBreak:
    """A consumer requirement a change turned from met to not met, in the change's region (docs/consumers.md):
    the consumer's name, the requirement's id and description, and why it is not met now."""

    consumer: str
    requirement: str
    description: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {"consumer": self.consumer, "requirement": self.requirement, "description": self.description,
                "reason": self.reason}  # fmt: skip


class Listed(Protocol):
    """What the order of a list of changes depends on: a ``Change``, a stored or exported change record."""

    @property
    def path(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def severity(self) -> Severity: ...


class ChangeLike(Listed, Protocol):
    """Anything that describes one change: a classified ``Change`` or a stored change record."""

    @property
    def old(self) -> Any: ...
    @property
    def new(self) -> Any: ...


def order_key(severity: Severity, path: str, rule: str) -> tuple[int, str, str]:
    """The one order of changes wherever they are listed (log line, history within one poll, diff, drift,
    notifications, git export, the UI's tables): the worst severity first, then by JSON Pointer, then by rule."""
    return -severity.rank, path, rule


def change_order(change: Listed) -> tuple[int, str, str]:
    """:func:`order_key` of ``change``, for ``sorted(..., key=change_order)``."""
    return order_key(change.severity, change.path, change.rule)


ListedT = TypeVar("ListedT", bound=Listed)


def worst_first(changes: Iterable[ListedT]) -> list[ListedT]:
    """``changes`` in :func:`change_order`: breaking first, then warning, info, cosmetic; each by path, then rule."""
    return sorted(changes, key=change_order)


def change_json(change: ChangeLike) -> dict[str, Any]:
    """``{"path", "rule", "severity", "old", "new", "old_present", "new_present"}``; a missing side is ``null``.

    ``old_present``/``new_present`` tell a missing side from a JSON ``null`` value.
    """
    return {
        "path": change.path,
        "rule": change.rule,
        "severity": change.severity.value,
        "old": None if change.old is ABSENT else change.old,
        "new": None if change.new is ABSENT else change.new,
        "old_present": change.old is not ABSENT,
        "new_present": change.new is not ABSENT,
    }


def fingerprint(key: TargetKey, change: Change) -> str:
    """A stable id of a change: SHA-256 over target, rule, path and the old and new values.

    The same difference seen again (after a flap, or as drift against the baseline) has the same
    fingerprint, so an acknowledgement keeps covering it; any other difference gets a new one.
    """
    sides = [[value is not ABSENT, None if value is ABSENT else value] for value in (change.old, change.new)]
    material = [key.cloud, key.region, key.schema, change.rule, change.path, *sides]
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """Which changes of a target are ignored: JSON Pointer prefixes, path regexes, a severity floor."""

    paths: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    min_severity: Severity | None = None

    def matches(self, change: Change) -> bool:
        """True when ``change`` is to be stored as ignored."""
        if self.min_severity is not None and change.severity.rank < self.min_severity.rank:
            return True
        if any(change.path == p or change.path.startswith(p.rstrip("/") + "/") for p in self.paths):
            return True
        return any(re.search(pattern, change.path) for pattern in self.patterns)


class AuthSettings(Protocol):
    """A target's credentials settings, as the configuration built them; ``type`` names the kind."""

    @property
    def type(self) -> str: ...


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Trust and client certificate of one cloud; ``insecure`` only when the config says so."""

    ca_bundle: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A target with every setting resolved (schema over cloud over defaults); built by the configuration."""

    key: TargetKey
    url: str
    interval: float
    timeout: float
    jitter: float
    max_body_bytes: int
    retries: int
    retry_after_cap: float
    allow_http: bool
    auth: AuthSettings
    confirm_reads: int = 1
    confirm_delay: float = 0.0
    ignore: IgnoreRules = field(default_factory=IgnoreRules)
    tls: TlsSettings = field(default_factory=TlsSettings)
    kind: str = "schema"  # what the body is: schema, versions, extensions or json (monitor.judge.kinds)
    service: str | None = None  # the API (compute, network...) a versions document describes, for metrics
    keep_hosts: bool = False  # keep the hosts of links in the stored document (they differ per region)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one target produced; returned by the service, printed by ``check``."""

    target: TargetKey
    started_at: datetime
    duration: float
    ok: bool
    reason: FailureReason | None = None
    http_status: int | None = None
    error: str | None = None
    document_sha: str | None = None
    first_snapshot: bool = False
    changes: tuple[Change, ...] = field(default_factory=tuple)
    unconfirmed: bool = False  # a different document was read but not confirmed: nothing recorded

    @property
    def counted_changes(self) -> tuple[Change, ...]:
        """The changes that count as drift (neither ignored nor expected)."""
        return tuple(c for c in self.changes if not (c.ignored or c.expected))


P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(executor: Executor | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on ``executor`` (None: the loop's default); returns its result or raises its error.

    What ``loop.run_in_executor`` does, typed, without ``Any``.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))
