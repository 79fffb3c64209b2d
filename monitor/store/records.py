"""The port of the store: every plain record and error that crosses it. No SQLAlchemy here.

The rest of the monitor (poll, fleet, ha, read, signals, web, cli) imports what it passes to and gets back
from the store from this module; only ``store/`` itself knows the tables and the engine
(:mod:`monitor.store.database` is the door to the adapters). Every record is a frozen, slotted data class.

* errors — :class:`StoreError` (a unit of work failed and was rolled back) and its kinds, and why a database
  cannot be opened at all;
* the write path — what a poll stores (:class:`StoredDocument`, :class:`FirstSnapshot`, :class:`Seen`, the HTTP
  :class:`Validators` of a snapshot's document) and the state it restores (:class:`TargetState`), fenced by a
  replica's lease (:class:`Fence`);
* the read side — stored changes, snapshots, transitions and targets, and the filter for history;
* drift state — baselines, expected-change windows and rollouts (:mod:`monitor.store.drift`);
* coordination — replicas and leases (:mod:`monitor.store.coordination`);
* notifications and exports — outbox entries and the git export's snapshots and cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.domain import ConsumerBreak, FailureReason, PollResult, Severity, TargetKey, change_json

# --- errors -----------------------------------------------------------------------------------------


class StoreError(Exception):
    """A database operation failed and was rolled back; ``operation`` is the metric label."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation


class SnapshotConflictError(StoreError):
    """Another writer recorded a snapshot for the target first; reload the state and compare again."""


class FencedError(StoreError):
    """This replica no longer holds the lease (expired, released or taken over): the write was refused."""


class DatabaseUnavailableError(Exception):
    """The database cannot be opened or migrated; the message names it (password masked) and the cause."""


class SchemaOutdatedError(Exception):
    """The database's schema revision is not the one this version of the code needs."""


class DatabaseInUseError(Exception):
    """Another process holds the database's lock; the message names it (pid, host, since when)."""


# --- the write path and the read side ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fence:
    """The ownership a write depends on: ``replica`` holds the target's lease at ``epoch`` (or one per target
    in ``epochs``, for a batch). Checked in the writing transaction; a lost lease refuses the write."""

    replica: str
    epoch: int = 0
    epochs: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExpectedAck:
    """Changes acknowledged as they are recorded: they arrived inside an expected-change window."""

    fingerprints: tuple[str, ...]
    comment: str


@dataclass(frozen=True, slots=True)
class FirstSnapshot:
    """A target's first snapshot, to be written with others in one transaction (:meth:`Repository.record_firsts`).
    ``transition``: also record the poll's outcome (the target had none, or a failure, before)."""

    target_id: int
    document: StoredDocument
    result: PollResult
    transition: bool


@dataclass(frozen=True, slots=True)
class FirstsRecorded:
    """What :meth:`Repository.record_firsts` did: target id → new snapshot id, and the targets it refused
    because another writer recorded a snapshot first (``conflicts``) or the lease is gone (``fenced``)."""

    snapshots: dict[int, int]
    conflicts: set[int]
    fenced: set[int]


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A canonical document as stored once, keyed by the SHA-256 of its canonical JSON ``body``;
    ``size`` is the fetched body's length in bytes, ``properties`` how many properties it defines."""

    sha256: str
    body: str  # canonical JSON
    size: int
    properties: int


@dataclass(frozen=True, slots=True)
class TargetState:
    """What the database knows about a target, to restore metrics and the comparison base.

    ``last_poll_ok``/``last_reason`` are the outcome of its latest transition (None: never polled).
    """

    target_id: int
    snapshot_id: int | None = None
    document: StoredDocument | None = None
    last_poll_at: datetime | None = None
    last_poll_ok: bool | None = None
    last_reason: FailureReason | None = None
    last_success_at: datetime | None = None
    last_change_at: datetime | None = None
    validators: Validators | None = None  # proven for the document of ``snapshot_id`` (None: none stored)


@dataclass(frozen=True, slots=True)
class Validators:
    """A document's HTTP validators as its server sent them (``ETag``, ``Last-Modified``; None: not sent)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class SnapshotValidators:
    """Validators proven for the document of a target's snapshot, written with the batched poll times
    (:meth:`Repository.flush_seen`); all-None ``validators`` clear what was stored."""

    target_id: int
    snapshot_id: int
    validators: Validators


@dataclass(frozen=True, slots=True)
class Seen:
    """A target's last poll, to be written with others in one batch (:meth:`Repository.flush_seen`).

    ``last_success_at`` (None: the last polls failed) also becomes the ``last_seen`` of ``snapshot_id``.
    """

    target_id: int
    last_poll_at: datetime
    last_success_at: datetime | None
    snapshot_id: int | None


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """From ``started_at`` on, the target's polls succeeded (``ok``) or failed with ``reason``."""

    started_at: datetime
    ok: bool
    reason: FailureReason | None
    http_status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """A stored change with its target's labels, as ``history`` shows it."""

    id: int
    target: TargetKey
    snapshot_id: int
    detected_at: datetime
    path: str
    rule: str
    severity: Severity
    old: Any
    new: Any
    from_sha256: str
    to_sha256: str
    fingerprint: str = ""
    ignored: bool = False
    expected: bool = False
    target_id: int = 0
    breaks: tuple[ConsumerBreak, ...] = ()  # the consumer requirements the change broke (docs/consumers.md)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``old``/``new`` are null when that side is absent (see ``*_present``)."""
        return {
            "id": self.id,
            "cloud": self.target.cloud,
            "region": self.target.region,
            "schema": self.target.schema,
            "detected_at": self.detected_at.isoformat(),
            **change_json(self),
            "snapshot_id": self.snapshot_id,
            "from_sha256": self.from_sha256,
            "to_sha256": self.to_sha256,
            "fingerprint": self.fingerprint,
            "ignored": self.ignored,
            "expected": self.expected,
            "breaks": [mark.as_json() for mark in self.breaks],
        }


@dataclass(frozen=True, slots=True)
class TargetNow:
    """A target's current document (None: none yet) and why its polls fail (None: they succeed, or never ran)."""

    sha256: str | None
    failing: str | None


@dataclass(frozen=True, slots=True)
class TargetRow:
    """A target's row: its id, labels and URL."""

    id: int
    key: TargetKey
    url: str


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A run of identical documents of one target, from when it was first seen to when it was last seen."""

    id: int
    document_sha256: str
    first_seen: datetime
    last_seen: datetime

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601), as the CLI's ``--json`` and the API answer it."""
        return {"id": self.id, "sha256": self.document_sha256, "first_seen": self.first_seen.isoformat(),
                "last_seen": self.last_seen.isoformat()}  # fmt: skip


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Which stored changes ``history`` returns, newest ``limit`` first; ``None`` means any value."""

    cloud: str | None = None
    region: str | None = None
    schema: str | None = None
    min_severity: Severity | None = None
    since: datetime | None = None
    limit: int = 1000
    before_id: int | None = None  # keyset pagination: only changes with a smaller id (older ones)


# --- drift state -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    """A target's approved document: the snapshot operators approved, or its first snapshot."""

    snapshot_id: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Window:
    """An expected-change window: changes of ``cloud`` (one ``schema``, or all when None) between
    ``starts_at`` and ``ends_at`` are recorded but do not page."""

    cloud: str
    schema: str | None
    starts_at: datetime
    ends_at: datetime
    comment: str

    def covers(self, key: TargetKey, at: datetime) -> bool:
        """True when a change of ``key`` detected ``at`` falls inside this window."""
        return self.cloud == key.cloud and self.schema in (None, key.schema) and self.starts_at <= at <= self.ends_at


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """A new document spreading through a cloud's regions for one schema; ``completed_at`` and
    ``outcome`` (converged, reverted) are None while it is open."""

    id: int
    cloud: str
    schema: str
    from_sha256: str | None
    to_sha256: str
    started_at: datetime
    completed_at: datetime | None
    outcome: str | None
    expected: bool


# --- coordination ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    """A replica's heartbeat row: live until ``expires_at`` by the database's clock."""

    name: str
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Membership:
    """What a heartbeat saw: the database's clock, the live replicas (sorted by name) and this replica."""

    now: datetime
    replicas: tuple[ReplicaRecord, ...]
    me: ReplicaRecord

    @property
    def live(self) -> tuple[str, ...]:
        return tuple(replica.name for replica in self.replicas)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A target's lease: held by ``owner`` at ``epoch`` until ``expires_at``."""

    target_id: int
    owner: str
    epoch: int
    expires_at: datetime
    live: bool  # not expired by the database's clock


# --- notifications and exports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One entry to deliver."""

    id: int
    channel: str
    payload: str
    created_at: datetime
    ends_at: datetime | None
    attempts: int


@dataclass(frozen=True, slots=True)
class GroupRequest:
    """How to group one channel's changes: filter and payload builder are the caller's."""

    channel: str
    window: float
    keep: Callable[[ChangeRecord], bool]
    build: Callable[[Sequence[ChangeRecord], datetime, set[TargetKey]], str]  # records, now, flapping targets
    active_for: float | None = None  # Alertmanager: how long the alert stays active
    flapping_window: float = 3600.0
    flapping_threshold: int = 3


@dataclass(frozen=True, slots=True)
class ExportScope:
    """Which targets an export covers; ``None`` means every value. ``str`` gives ``cloud/region/schema``
    with ``*`` for an open part (``sim/*/images``)."""

    cloud: str | None = None
    region: str | None = None
    schema: str | None = None

    def __str__(self) -> str:
        return "/".join(part or "*" for part in (self.cloud, self.region, self.schema))


@dataclass(frozen=True, slots=True)
class ExportCursor:
    """Where an earlier export stopped: its last snapshot in time order and the highest id it exported."""

    first_seen: datetime
    snapshot_id: int
    max_id: int

    @classmethod
    def at(cls, snapshot: ExportedSnapshot) -> ExportCursor:
        """The cursor of an export whose only snapshot is ``snapshot``."""
        return cls(snapshot.first_seen, snapshot.id, snapshot.id)

    def advance(self, snapshot: ExportedSnapshot) -> ExportCursor:
        """The cursor once ``snapshot`` is exported too (a late one never moves the position back)."""
        position = max((self.first_seen, self.snapshot_id), (snapshot.first_seen, snapshot.id))
        return ExportCursor(position[0], position[1], max(self.max_id, snapshot.id))


@dataclass(frozen=True, slots=True)
class ExportedChange:
    """A change of an exported snapshot, as the git export's commit message lists it."""

    rule: str
    severity: Severity
    path: str
    ignored: bool = False
    expected: bool = False


@dataclass(frozen=True, slots=True)
class ExportedSnapshot:
    """One stored snapshot: ``body`` is the canonical (compact, key-sorted) JSON of its document."""

    id: int
    target: TargetKey
    first_seen: datetime  # aware, UTC
    sha256: str
    body: str
    changes: tuple[ExportedChange, ...] = ()
