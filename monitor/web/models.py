"""The read API's bodies as pydantic models: FastAPI validates requests with them and writes the OpenAPI
document from them. Every object is closed (``additionalProperties: false``); the limits are the API's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100
MAX_ID: Final = 2**63 - 1  # the largest id both databases store
MAX_BODY: Final = 64 * 1024
MAX_FINGERPRINTS: Final = 1000
MAX_COMMENT: Final = 2000
MAX_ACTOR: Final = 128  # acknowledgements.actor is VARCHAR(128)
MAX_EXPIRY: Final = 10 * 365 * 86400
SHA256_PATTERN: Final = "^[0-9a-fA-F]{64}$"
TEXT_PATTERN: Final = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"  # not blank, no NUL (PostgreSQL refuses NUL)

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


class TargetList(Closed):
    targets: list[Target]


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


Text = Annotated[str, StringConstraints(min_length=1, pattern=TEXT_PATTERN)]
Fingerprint = Annotated[str, StringConstraints(pattern="^[0-9a-f]{64}$")]


_FINGERPRINTS_OR_EXPIRY: Final[dict[str, JsonValue]] = {
    "anyOf": [{"required": ["fingerprints"]}, {"required": ["expires_in_seconds"]}]
}


class AckRequest(Closed):
    """Either ``fingerprints`` (acknowledge those changes, optionally until ``expires_in_seconds`` from now) or
    ``approve: true`` (the current document becomes the baseline). ``comment`` says why; ``by`` who."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["fingerprints"], "not": {"required": ["approve"]}},
        {"required": ["approve"], "not": _FINGERPRINTS_OR_EXPIRY},
    ]})  # fmt: skip

    # absent, not null: the document says "give one of them", and JSON null is neither
    fingerprints: (
        Annotated[list[Fingerprint], Field(min_length=1, max_length=MAX_FINGERPRINTS)] | SkipJsonSchema[None]
    ) = None
    approve: Literal[True] | SkipJsonSchema[None] = None
    comment: Annotated[Text, StringConstraints(max_length=MAX_COMMENT)]
    by: Annotated[Text, StringConstraints(max_length=MAX_ACTOR)] = "api"
    expires_in_seconds: Annotated[float, Field(gt=0, le=MAX_EXPIRY)] | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _one_kind(self) -> AckRequest:
        if (self.fingerprints is None) == (self.approve is None):
            raise ValueError('give either "fingerprints" (a list) or "approve": true')
        if self.approve and self.expires_in_seconds is not None:
            raise ValueError("expires_in_seconds applies to fingerprints, not to approving a document")
        return self


class AckResult(Closed):
    cloud: str
    region: str
    schema_: str = Field(alias="schema")
    acknowledged: list[Sha256]
    not_pending: list[Sha256]
    approved_snapshot_id: Id | None
    expires_at: datetime | None
