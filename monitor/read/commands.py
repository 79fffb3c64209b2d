"""What an operator changes: acknowledge drift, approve a document, expect a change — one set of rules and
messages for the command line (``ack``, ``expect``) and the API (``POST …/ack``, ``POST /api/expect``).

The rules:

* **Fingerprints** are given in full (64 hex digits) or as a prefix of at least 8; case does not matter.
  A prefix is resolved against the target's drift now (acknowledged changes included): exactly one change
  must carry it — none is :class:`NotFound`, several is :class:`Invalid` listing them. A full fingerprint is
  taken as given even when no change of the drift carries it now (someone may have approved meanwhile, or the
  change comes and goes): it is stored, and the answer lists it under ``not_pending`` with the ones that were
  acknowledged already. At most :data:`MAX_FINGERPRINTS` at once; repeats count once.
* **Approving** makes the target's latest snapshot its baseline.
* Acknowledging or approving a target without a snapshot is a :class:`Conflict` (nothing has drifted yet).
* ``comment`` (why) and ``by`` (who) are text that is not blank and has no NUL character, at most
  :data:`MAX_COMMENT` and :data:`MAX_ACTOR` characters; an acknowledgement may lapse after more than 0
  and at most :data:`MAX_SPAN` seconds.
* An **expected-change window** names a configured cloud (else :class:`Invalid`) and optionally a schema of
  that cloud (a schema no cloud has: :class:`Invalid`; one another cloud has: :class:`NotFound`), lasts more
  than 0 and at most :data:`MAX_SPAN` seconds, and starts now or at a given moment; one that has ended
  already is a :class:`Conflict`.

Errors are sentences: :class:`Invalid` (HTTP 400, exit code 2), :class:`NotFound` (404, 2), :class:`Conflict`
(409, 2), ``StoreError`` (503, 1). Each change is logged (who, what, why) at INFO: the audit trail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from monitor.config import Config
from monitor.domain import TargetKey, change_json, utcnow
from monitor.read.checks import Invalid, label, shown
from monitor.read.model import Conflict, DriftItem, NotFound, ReadModel
from monitor.store.records import Window

__all__ = ["Acknowledged", "Commands", "Conflict", "Expected", "Invalid", "Journal", "NotFound", "drift_json"]

log = logging.getLogger(__name__)

MIN_PREFIX: Final = 8
MAX_FINGERPRINTS: Final = 1000
MAX_COMMENT: Final = 2000
MAX_ACTOR: Final = 128  # acknowledgements.actor is VARCHAR(128)
MAX_SPAN: Final = 10 * 365 * 86400  # the longest acknowledgement expiry and expected window
FINGERPRINT_PATTERN: Final = f"^[0-9a-fA-F]{{{MIN_PREFIX},64}}$"
FINGERPRINT_RULE: Final = f"must be {MIN_PREFIX} to 64 hexadecimal characters: a fingerprint from drift, or its start"
TEXT_RULE: Final = "must be text that is not blank and has no NUL character"
NO_EXPIRY_ON_APPROVE: Final = "an expiry applies to acknowledged fingerprints, not to approving a document"
_FINGERPRINT = re.compile(FINGERPRINT_PATTERN)


class Journal(Protocol):
    """Where commands write (``monitor.store.drift.DriftStore``); every method raises StoreError."""

    def acknowledge(
        self, target_id: int, fingerprints: Sequence[str], *, comment: str, actor: str, now: datetime,
        expires_at: datetime | None = None,
    ) -> int: ...  # fmt: skip

    def approve_current(self, target_id: int, *, comment: str, actor: str, now: datetime) -> int: ...

    def add_window(self, window: Window, actor: str, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """The outcome of ``acknowledge`` or ``approve``: the full fingerprints stored, those of them not pending
    (not in the drift now, or acknowledged already), the snapshot approved, when the acknowledgement lapses."""

    key: TargetKey
    acknowledged: tuple[str, ...] = ()
    not_pending: tuple[str, ...] = ()
    approved_snapshot_id: int | None = None
    expires_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The API's ``AckResult``: the labels, ``acknowledged``, ``not_pending``, ``approved_snapshot_id`` and
        ``expires_at``."""
        return {"cloud": self.key.cloud, "region": self.key.region, "schema": self.key.schema,
                "acknowledged": list(self.acknowledged), "not_pending": list(self.not_pending),
                "approved_snapshot_id": self.approved_snapshot_id,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}  # fmt: skip

    def sentence(self) -> str:
        """One line for a person: what was done (and which fingerprints were not pending)."""
        if self.approved_snapshot_id is not None:
            return f"{self.key}: snapshot {self.approved_snapshot_id} is now the approved baseline"
        until = f" until {self.expires_at:%Y-%m-%d %H:%M} UTC" if self.expires_at else ""
        line = f"{self.key}: acknowledged {len(self.acknowledged)} change(s){until}"
        if self.not_pending:
            short = ", ".join(fp[:16] for fp in self.not_pending)
            line += f"; not pending (not in the drift now, or acknowledged already): {short}"
        return line


@dataclass(frozen=True, slots=True)
class Expected:
    """An expected-change window as stored, and who declared it."""

    window: Window
    by: str

    def as_json(self) -> dict[str, Any]:
        """The API's ``ExpectResult``: ``cloud``, ``schema`` (null: all), ``starts_at``, ``ends_at``, ``comment``,
        ``by``."""
        w = self.window
        return {"cloud": w.cloud, "schema": w.schema, "starts_at": w.starts_at.isoformat(),
                "ends_at": w.ends_at.isoformat(), "comment": w.comment, "by": self.by}  # fmt: skip

    def sentence(self) -> str:
        w = self.window
        scope = f"{w.cloud}/{w.schema}" if w.schema else f"{w.cloud} (all schemas)"
        return f"changes to {scope} are expected from {w.starts_at:%Y-%m-%d %H:%M} to {w.ends_at:%Y-%m-%d %H:%M} UTC"


def drift_json(items: Sequence[DriftItem]) -> list[dict[str, Any]]:
    """Drift as the CLI (``drift --json``) and the API (``GET …/drift``) show it: each change with its
    ``fingerprint`` (what ``ack`` takes) and whether it is ``acknowledged``."""
    return [{"fingerprint": i.fingerprint, "acknowledged": i.acknowledged, **change_json(i.change)} for i in items]


class Commands:
    """The operator's changes over one configuration, read model and journal; every method is one check, then
    one write, and raises Invalid, NotFound, Conflict or StoreError (see the module docstring)."""

    def __init__(self, config: Config, read: ReadModel, journal: Journal) -> None:
        self._config = config
        self._read = read
        self._journal = journal

    def acknowledge(
        self, key: TargetKey, fingerprints: Sequence[str], *, comment: str, by: str,
        expires_in: float | None = None, now: datetime | None = None,
    ) -> Acknowledged:  # fmt: skip
        """Acknowledge the drift changes ``fingerprints`` name (full or prefixes), lapsing after ``expires_in``
        seconds (None: never)."""
        now = now or utcnow()
        _who_and_why(comment, by)
        expires_at = now + timedelta(seconds=_span("the expiry", expires_in)) if expires_in is not None else None
        drift = self._read.drift(key, now)  # NotFound, Conflict (no snapshot yet)
        chosen = resolve_fingerprints(fingerprints, drift, key)
        pending = {item.fingerprint for item in drift if not item.acknowledged}
        self._journal.acknowledge(self._read.row(key).id, chosen, comment=comment, actor=by, now=now,
                                  expires_at=expires_at)  # fmt: skip
        log.info("%r acknowledged %d change(s) of %s: %r", by, len(chosen), key, comment)
        return Acknowledged(key, tuple(chosen), tuple(fp for fp in chosen if fp not in pending), None, expires_at)

    def approve(
        self, key: TargetKey, *, comment: str, by: str, expires_in: float | None = None, now: datetime | None = None
    ) -> Acknowledged:
        """Make the target's latest snapshot its approved baseline (``expires_in``: refused, a baseline stays)."""
        _who_and_why(comment, by)
        if expires_in is not None:
            raise Invalid(NO_EXPIRY_ON_APPROVE)
        row = self._read.row(key)
        if not self._read.snapshots(key):
            raise Conflict(f"{key} has no snapshot to approve yet")
        snapshot_id = self._journal.approve_current(row.id, comment=comment, actor=by, now=now or utcnow())
        log.info("%r approved snapshot %d as the baseline of %s: %r", by, snapshot_id, key, comment)
        return Acknowledged(key, approved_snapshot_id=snapshot_id)

    def expect(
        self, cloud: str, schema: str | None, *, duration: float, comment: str, by: str,
        start: datetime | None = None, now: datetime | None = None,
    ) -> Expected:  # fmt: skip
        """Declare that changes to ``cloud`` (``schema``; None: all of its schemas) are expected for ``duration``
        seconds from ``start`` (None: now): they are recorded and acknowledged, and do not page."""
        now = now or utcnow()
        self._check_scope(cloud, schema)
        _who_and_why(comment, by)
        starts_at = _utc(start) if start is not None else now
        try:
            ends_at = starts_at + timedelta(seconds=_span("the window's duration", duration))
        except OverflowError:  # past the year 9999: as late as can be
            ends_at = datetime.max.replace(tzinfo=UTC)
        if ends_at <= now:
            raise Conflict(f"the window from {starts_at:%Y-%m-%d %H:%M} to {ends_at:%Y-%m-%d %H:%M} UTC has ended "
                           "already; give a later start or a longer duration")  # fmt: skip
        window = Window(cloud, schema, starts_at, ends_at, comment)
        self._journal.add_window(window, by, now)
        log.info("%r expects changes to %s/%s until %s: %r", by, cloud, schema or "*", ends_at.isoformat(), comment)
        return Expected(window, by)

    def _check_scope(self, cloud: str, schema: str | None) -> None:
        """A configured cloud, and a schema it watches (listed, derived from its catalog, or in the database)."""
        label("cloud", cloud, [c.name for c in self._config.clouds])
        if schema is None or self._config.watches(cloud, schema):
            return
        known = {k.schema for k in self._read.known()} | {s.name for c in self._config.clouds for s in c.schemas}
        label("schema", schema, sorted(known))
        found = next(c for c in self._config.clouds if c.name == cloud)
        theirs = sorted({s.name for s in found.schemas} | {k.schema for k in self._read.known() if k.cloud == cloud})
        if schema not in theirs:
            raise NotFound(f"cloud {cloud} has no schema {schema!r}; its schemas: {', '.join(theirs)}")


def resolve_fingerprints(given: Sequence[str], drift: Sequence[DriftItem], key: TargetKey) -> list[str]:
    """The full fingerprints ``given`` names (see the module docstring), without repeats, in the order given."""
    if not given:
        raise Invalid("give at least one fingerprint (see drift)")
    if len(given) > MAX_FINGERPRINTS:
        raise Invalid(f"give at most {MAX_FINGERPRINTS} fingerprints at once, got {len(given)}")
    known = sorted({item.fingerprint for item in drift})
    chosen: list[str] = []
    for text in given:
        if not _FINGERPRINT.fullmatch(text):
            raise Invalid(f"fingerprint {shown(text, 70)} {FINGERPRINT_RULE}")
        wanted = text.lower()
        matches = [wanted] if len(wanted) == 64 else [fp for fp in known if fp.startswith(wanted)]
        if not matches:
            raise NotFound(f"no change in the drift of {key} has a fingerprint starting {wanted}; see its drift")
        if len(matches) > 1:
            raise Invalid(f"fingerprint {wanted} is the start of {len(matches)} changes in the drift of {key} "
                          f"({', '.join(fp[:16] for fp in matches)}); give more of it")  # fmt: skip
        chosen.append(matches[0])
    return list(dict.fromkeys(chosen))


def _who_and_why(comment: str, by: str) -> None:
    _text("comment", comment, MAX_COMMENT)
    _text("by", by, MAX_ACTOR)


def _text(name: str, value: str, longest: int) -> None:
    """Raises Invalid unless ``value`` is not blank, has no NUL, and has at most ``longest`` characters."""
    if not value.strip() or "\x00" in value:
        raise Invalid(f"{name} {TEXT_RULE}")
    if len(value) > longest:
        raise Invalid(f"{name} must be at most {longest} characters, got {len(value)}")


def _span(name: str, seconds: float) -> float:
    if not 0 < seconds <= MAX_SPAN:
        raise Invalid(f"{name} must be more than 0 and at most {MAX_SPAN} seconds (10 years), got {seconds:g}")
    return seconds


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC; one within a day of year 1 or 9999: as early or late as can
    be)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
