"""The read API's bodies as pydantic models: FastAPI validates requests with them and writes the OpenAPI
document from them. Every object is closed (``additionalProperties: false``). The limits of the write bodies
are the commands' own (:mod:`monitor.read.commands`), so the API and the command line refuse the same values;
:data:`PATTERN_RULES` turns each pattern into the words a validation error uses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from monitor.fleet.rules import RolloutRole, Standing
from monitor.read import checks, commands
from monitor.read.model import MAX_PAGE

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100
MAX_TARGETS: Final = MAX_PAGE  # targets per page of GET /api/targets
DEFAULT_TARGETS: Final = 500
AFTER_RULE: Final = "the cursor of the previous page's next link (opaque): the page starts after that target"
MAX_ID: Final = checks.MAX_ID
MAX_BODY: Final = 64 * 1024
MAX_FINGERPRINTS: Final = commands.MAX_FINGERPRINTS
MAX_COMMENT: Final = commands.MAX_COMMENT
MAX_ACTOR: Final = commands.MAX_ACTOR
MAX_EXPIRY: Final = commands.MAX_SPAN
SHA256_PATTERN: Final = "^[0-9a-fA-F]{64}$"
DURATION_PATTERN: Final = "^[0-9]{1,12}(\\.[0-9]{1,6})?(ms|s|m|h|d)?$"  # a subset of what parse_duration reads
TEXT_PATTERN: Final = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"  # not blank, no NUL (PostgreSQL refuses NUL)
PATTERN_RULES: Final = {
    checks.CURSOR_PATTERN: checks.CURSOR_RULE,
    SHA256_PATTERN: "must be 64 hexadecimal characters (a sha256)",
    "^[0-9a-f]{64}$": "must be 64 lowercase hexadecimal characters (a sha256)",
    commands.FINGERPRINT_PATTERN: commands.FINGERPRINT_RULE,
    TEXT_PATTERN: commands.TEXT_RULE,
}

Sha256 = Annotated[str, StringConstraints(pattern="^[0-9a-f]{64}$")]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Count = Annotated[int, Field(ge=0)]
SeverityName = Literal["breaking", "warning", "info", "cosmetic"]
AnyValue = Annotated[Any, Field(description="any JSON value; null when that side is absent (see *_present)")]


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(Closed):
    error: str


class Unacknowledged(Closed):
    breaking: Count
    warning: Count
    info: Count
    cosmetic: Count


class Target(Closed):
    cloud: str
    region: str
    schema_: str = Field(alias="schema")
    url: str
    snapshot_id: Id | None
    sha256: Sha256 | None
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_change_at: datetime | None
    poll_ok: bool | None
    reason: str | None = Field(description="why the last polls fail (a failure reason); null while they succeed")
    baseline_snapshot_id: Id | None
    baseline_sha256: Sha256 | None
    deviates: bool
    unacknowledged: Unacknowledged
    flapping: bool
    stale: bool
    rollout_in_progress: bool
    rollout_role: RolloutRole | None = Field(
        description="how the region takes part in its group's rollout: updated (serves the new document), lagging "
        "(not yet, while the new document is the reference); null when it does not take part"
    )
    standing: Standing | None = Field(
        description="how the region stands against its fleet, in the UI's words; null without a document"
    )


class TargetList(Closed):
    targets: list[Target]
    next: str | None  # the next page (the same query, with after); None on the last page


class Snapshot(Closed):
    id: Id
    sha256: Sha256
    first_seen: datetime
    last_seen: datetime


class SnapshotList(Closed):
    cloud: str
    region: str
    schema_: str = Field(alias="schema")
    snapshots: list[Snapshot]


class Transition(Closed):
    started_at: datetime
    ok: bool
    reason: str | None
    http_status: int | None
    error: str | None


class ReportChange(Closed):
    path: str
    rule: str
    severity: SeverityName
    old: AnyValue = None
    new: AnyValue = None
    old_present: bool
    new_present: bool


class ConsumerMark(Closed):
    consumer: str
    requirement: str = Field(description="the requirement's id")
    description: str
    reason: str = Field(description="why the requirement is not met after the change")


class StoredChange(ReportChange):
    id: Id
    cloud: str
    region: str
    schema_: str = Field(alias="schema")
    detected_at: datetime
    snapshot_id: Id
    from_sha256: Sha256
    to_sha256: Sha256
    fingerprint: Sha256
    ignored: bool
    expected: bool
    breaks: list[ConsumerMark] = Field(
        description="the consumer requirements the change turned from met to not met, in its region"
    )


class ChangePage(Closed):
    changes: list[StoredChange]
    next: str | None


class Report(Closed):
    title: str
    changes: list[ReportChange]


class PatchOperation(Closed):
    op: Literal["add", "remove", "replace"]
    path: str
    value: AnyValue = None


class RenderedReport(Closed):
    format: Literal["text", "markdown"]
    body: str


class Reference(Closed):
    label: str
    sha256: Sha256
    variant: str


class Variant(Closed):
    id: str
    sha256: Sha256
    regions: list[str]
    reference: bool


class RegionRow(Closed):
    region: str
    variant: str | None
    sha256: Sha256 | None
    deviates: bool


class Comparison(Closed):
    reference: Reference
    variants: list[Variant]
    deviating: list[str]
    regions: list[RegionRow]


class Deviation(Closed):
    region: str
    sha256: Sha256
    changes: list[ReportChange]


class Rollout(Closed):
    cloud: str
    schema_: str = Field(alias="schema")
    from_sha256: Sha256 | None
    to_sha256: Sha256
    started_at: datetime
    updated: list[str]
    lagging: list[str]


class CompareResult(Closed):
    cloud: str
    schema_: str = Field(alias="schema")
    other_cloud: str | None
    comparison: Comparison
    deviations: list[Deviation]
    rollouts: list[Rollout]


class SurfaceCell(Closed):
    status: str
    min_version: str | None
    max_version: str | None


class SurfaceVersion(Closed):
    service: str
    version: str
    deviating: list[str]
    regions: dict[str, SurfaceCell | None]


class Surface(Closed):
    cloud: str
    regions: list[str]
    versions: list[SurfaceVersion]
    extensions: dict[str, dict[str, list[str]]]
    missing_services: dict[str, list[str]]


class ConsumerRequirement(Closed):
    id: str = Field(description="8 hex digits: the hash of the requirement as written (docs/consumers.md)")
    cloud: str
    schema_: str = Field(alias="schema")
    check: str
    description: str


class RequirementState(Closed):
    requirement: str = Field(description="the requirement's id")
    reason: str


class ConsumerRegion(Closed):
    region: str
    clouds: list[str]
    compatible: bool | None = Field(description="null while unknown: a document missing, or a target failing")
    broken: list[RequirementState]
    unknown: list[RequirementState]


class Consumer(Closed):
    name: str
    description: str
    clouds: list[str]
    requirements: list[ConsumerRequirement]
    regions: list[ConsumerRegion]


class ConsumerMatrix(Closed):
    consumers: list[Consumer]


Text = Annotated[str, StringConstraints(min_length=1, pattern=TEXT_PATTERN)]
Fingerprint = Annotated[
    str,
    StringConstraints(pattern=commands.FINGERPRINT_PATTERN),
    Field(description=f"a fingerprint (64 hex digits) or its first {commands.MIN_PREFIX} or more, from drift"),
]
By = Annotated[Text, StringConstraints(max_length=MAX_ACTOR), Field(description="who (stored with the comment)")]
Comment = Annotated[Text, StringConstraints(max_length=MAX_COMMENT), Field(description="why")]


_FINGERPRINTS_OR_EXPIRY: Final[dict[str, JsonValue]] = {
    "anyOf": [{"required": ["fingerprints"]}, {"required": ["expires_in_seconds"]}]
}


class AckRequest(Closed):
    """Either ``fingerprints`` (acknowledge those changes, optionally until ``expires_in_seconds`` from now) or
    ``approve: true`` (the current document becomes the baseline). ``comment`` says why; ``by`` who.
    A fingerprint may be given by its first 8 or more hex digits when they name one change of the drift."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["fingerprints"], "not": {"required": ["approve"]}},
        {"required": ["approve"], "not": _FINGERPRINTS_OR_EXPIRY},
    ]})  # fmt: skip

    # absent, not null: the document says "give one of them", and JSON null is neither
    fingerprints: (
        Annotated[list[Fingerprint], Field(min_length=1, max_length=MAX_FINGERPRINTS)] | SkipJsonSchema[None]
    ) = None
    approve: Literal[True] | SkipJsonSchema[None] = None
    comment: Comment
    by: By = "api"
    expires_in_seconds: Annotated[float, Field(gt=0, le=MAX_EXPIRY)] | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _one_kind(self) -> AckRequest:
        if (self.fingerprints is None) == (self.approve is None):
            raise ValueError('give either "fingerprints" (a list) or "approve": true')
        if self.approve and self.expires_in_seconds is not None:
            raise ValueError(commands.NO_EXPIRY_ON_APPROVE)
        return self


class AckResult(Closed):
    cloud: str
    region: str
    schema_: str = Field(alias="schema")
    acknowledged: list[Sha256]
    not_pending: list[Sha256]
    approved_snapshot_id: Id | None
    expires_at: datetime | None


class DriftChange(ReportChange):
    fingerprint: Sha256
    acknowledged: bool


class Drift(Closed):
    cloud: str
    region: str
    schema_: str = Field(alias="schema")
    changes: list[DriftChange]


class ExpectRequest(Closed):
    """Changes to ``cloud`` (only ``schema``, when given) are expected for ``duration_seconds`` from
    ``starts_at`` (default: now): they are recorded and acknowledged, and do not page."""

    cloud: str
    schema_: str | SkipJsonSchema[None] = Field(None, alias="schema", description="one schema (absent: all)")
    duration_seconds: Annotated[float, Field(gt=0, le=MAX_EXPIRY, description="how long the window lasts")]
    starts_at: Annotated[datetime, Field(description="RFC 3339 date-time (absent: now)")] | SkipJsonSchema[None] = None
    comment: Comment
    by: By = "api"


class ExpectResult(Closed):
    cloud: str
    schema_: str | None = Field(alias="schema")
    starts_at: datetime
    ends_at: datetime
    comment: str
    by: str


class Route(Closed):
    method: str
    path: str
    summary: str
    family: str = Field(description="target (the routes of one target), targets, documents, changes, compare, ...")


class ApiIndex(Closed):
    about: str
    openapi: str = Field(description="the OpenAPI document of every route")
    interactive_docs: str | None = Field(description="where interactive docs are served; null: not served")
    routes: list[Route]
