"""The ``consumers:`` section: the clients whose needs are checked against every region (docs/consumers.md).

Each entry of a consumer's ``requires`` is one check on one document (:mod:`monitor.judge.consumers`)::

    {schema: compute-versions, version: v2.1, microversion: "2.79"}   # min <= 2.79 <= max of entry v2.1
    {schema: compute-versions, version: v2.1, status: [CURRENT, SUPPORTED]}
    {schema: compute-versions, version: v2.1}                          # the entry is listed
    {schema: network-extensions, extension: trunk}
    {schema: images, pointer: /properties/images/items/properties/os_hash_algo}          # exists
    {schema: images, pointer: /.../disk_format/enum, contains: [qcow2, raw]}
    {schema: image, pointer: /properties/visibility/default, equals: private}
    {schema: compute-versions, pointer: /versions/v2.1/max_version, matches: "2\\.[0-9]+"}
    {schema: image, pointer: /properties/os_hidden, type: boolean}                      # or [boolean, "null"]
    {schema: image, pointer: /properties/name, writable: true}
    {cloud: openstack, schema: image, pointer: /properties/os_hidden}   # cloud: where the name is ambiguous

:class:`RequirementConfig` checks each entry on its own (one check, its values well formed);
:func:`consumer_problems` checks the section against the clouds (loading adds them to the file's problems): the
consumer's clouds exist, each entry's ``schema`` is watched by exactly one of them (or ``cloud:`` names it), the
document's kind fits the check (a microversion needs a versions document), and no entry is listed twice.
:func:`consumer_contracts` gives the consumers as :class:`monitor.judge.consumers.Consumer`, each requirement
with its cloud resolved and its id (the hash of its normalised content).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from monitor.config.cloud import CloudConfig
from monitor.config.errors import FieldProblem, Problem
from monitor.config.types import CloudName, Model, Regex, SchemaName, check_name, require_unique
from monitor.judge.consumers import (
    KINDS_OF_CHECK,
    POINTER_CHECKS,
    Consumer,
    Requirement,
    parse_pointer,
    requirement_id,
)
from monitor.judge.kinds import Microversion

if TYPE_CHECKING:
    from monitor.config.models import Config

JSON_TYPES: Final = ("array", "boolean", "integer", "null", "number", "object", "string")
_VALUE_CHECKS: Final = ("contains", "equals", "matches", "type", "writable")
_FORMS: Final = (
    "give one of: version (alone, or with microversion or status), extension, or pointer (alone, or with one of "
    "contains, equals, matches, type, writable)"
)

ConsumerName = Annotated[str, AfterValidator(partial(check_name, what="consumer"))]


def _as_list(value: Any) -> Any:
    """``status`` and ``type`` take one value or a list of them."""
    return [value] if isinstance(value, str) else value


class RequirementConfig(Model):
    """One entry of ``requires``: a check on the document ``schema`` (of ``cloud``, where the name is ambiguous)."""

    schema_name: SchemaName = Field(alias="schema")
    cloud: CloudName | None = None
    version: str | None = None
    microversion: str | None = None
    status: Annotated[list[str] | None, BeforeValidator(_as_list)] = None
    extension: str | None = None
    pointer: str | None = None
    contains: list[Any] | None = None
    equals: Any = None
    matches: Regex | None = None
    type: Annotated[list[str] | None, BeforeValidator(_as_list)] = None
    writable: Literal[True] | None = None

    @field_validator("microversion", mode="before")
    @classmethod
    def _microversion(cls, value: Any) -> Any:
        if isinstance(value, float | int) and not isinstance(value, bool):
            raise ValueError(f'write the microversion as a string ("2.79"): the number {value} loses its digits')
        if isinstance(value, str):
            try:
                return str(Microversion.from_string(value))
            except ValueError:
                raise ValueError(f"expected a microversion MAJOR.MINOR like 2.79, got {value[:32]!r}") from None
        return value

    @field_validator("writable", mode="before")
    @classmethod
    def _writable(cls, value: Any) -> Any:
        if value is not True and value is not None:
            raise ValueError("takes true: the property must stay writable (a read-only one needs no check)")
        return value

    @field_validator("pointer")
    @classmethod
    def _pointer(cls, value: str | None) -> str | None:
        if value is not None:
            parse_pointer(value)
        return value

    @field_validator("status")
    @classmethod
    def _statuses(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("lists no status: name at least one (CURRENT, SUPPORTED, DEPRECATED, EXPERIMENTAL)")
        return None if value is None else sorted({status.strip().upper() for status in value})

    @field_validator("type")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        unknown = [t for t in value or [] if t not in JSON_TYPES]
        if unknown or value == []:
            raise ValueError(f"expected JSON-schema types ({', '.join(JSON_TYPES)}), got {unknown or value}")
        return None if value is None else sorted(set(value))

    @field_validator("contains")
    @classmethod
    def _values(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError("lists no value: name at least one the array must hold")
        return value

    @model_validator(mode="after")
    def _one_check(self) -> RequirementConfig:
        given = [name for name in _VALUE_CHECKS if name in self.given]
        if self.version is not None:
            self._only("version", {"microversion", "status"})
        elif self.extension is not None:
            self._only("extension", set())
        elif self.pointer is not None:
            self._only("pointer", set(_VALUE_CHECKS))
            if len(given) > 1:
                raise FieldProblem(given[1], f"one check per entry: {given[0]} and {given[1]} are two entries")
        else:
            stray = next((name for name in ("microversion", "status", *_VALUE_CHECKS) if name in self.given), None)
            if stray is not None:
                needs = "version" if stray in ("microversion", "status") else "pointer"
                raise FieldProblem(stray, f"needs {needs}: what it applies to")
            raise ValueError(_FORMS)
        if self.microversion is not None and self.status is not None:
            raise FieldProblem("status", "one check per entry: microversion and status are two entries")
        return self

    def _only(self, anchor: str, allowed: set[str]) -> None:
        """Raises FieldProblem for a key of another form of entry than the one ``anchor`` starts."""
        forms = {"version", "microversion", "status", "extension", "pointer", *_VALUE_CHECKS}
        stray = next((k for k in sorted(forms - allowed - {anchor}) if k in self.given), None)
        if stray is not None:
            raise FieldProblem(stray, f"does not go with {anchor} in one entry: {_FORMS}")

    @property
    def given(self) -> set[str]:
        """The keys the entry was written with (``equals: null`` is given; a missing ``equals`` is not)."""
        written = {name for name in self.model_fields_set if name not in ("schema_name", "equals")}
        return (
            {name for name in written if getattr(self, name) is not None}
            | {"schema"}
            | ({"equals"} & self.model_fields_set)
        )

    @property
    def check(self) -> str:
        """The check the entry makes (:data:`monitor.judge.consumers.CHECKS`)."""
        if self.version is not None:
            return "microversion" if self.microversion else "status" if self.status else "version"
        if self.extension is not None:
            return "extension"
        return next((name for name in POINTER_CHECKS if name in self.given), "exists")

    def content(self) -> dict[str, Any]:
        """The entry's keys as written, values normalised: what its id is the hash of."""
        values = {"schema": self.schema_name, **{name: getattr(self, name) for name in self.given - {"schema"}}}
        return {name: value for name, value in values.items() if value is not None or name == "equals"}

    def requirement(self, cloud: str) -> Requirement:
        """The judge's requirement, read on ``cloud``'s document."""
        value = {
            "microversion": self.microversion, "status": tuple(self.status or ()), "extension": self.extension,
            "contains": tuple(self.contains or ()), "equals": self.equals, "matches": self.matches,
            "type": tuple(self.type or ()),
        }.get(self.check)  # fmt: skip
        return Requirement(requirement_id(self.content()), cloud, self.schema_name, self.check, self.version,
                           self.pointer or "", value, named_cloud=self.cloud is not None)  # fmt: skip


class ConsumerConfig(Model):
    """A client whose needs are checked in every region of the clouds it runs against (default: every cloud)."""

    name: ConsumerName
    description: str = ""
    clouds: list[CloudName] | None = None
    requires: Annotated[list[RequirementConfig], Field(min_length=1)]

    @field_validator("clouds")
    @classmethod
    def _unique_clouds(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("lists no cloud: name at least one, or leave clouds out for every cloud")
            require_unique(value, "cloud")
        return value


def watched_kind(cloud: CloudConfig, schema: str) -> str | None:
    """The kind of the documents ``cloud`` watches under the name ``schema``, None when it watches none."""
    listed = next((s for s in cloud.schemas if s.name == schema), None)
    if listed is not None:
        return listed.kind
    if cloud.services is None:
        return None
    if schema.endswith("-versions"):
        return "versions"
    if schema in ("network-extensions", "block-storage-extensions"):
        return "extensions"
    return "json" if schema in ("image-info-import", "image-info-stores") else None


def consumer_problems(config: Config) -> list[Problem]:
    """Every problem of the ``consumers`` section against the clouds, each at its place."""
    problems: list[Problem] = []
    for index, consumer in enumerate(config.consumers):
        problems += _consumer_problems(config, ("consumers", index), consumer)
    return problems


def _consumer_problems(config: Config, at: tuple[str, int], consumer: ConsumerConfig) -> list[Problem]:
    clouds = {cloud.name: cloud for cloud in config.clouds}
    problems = [
        Problem((*at, "clouds", i), f"unknown cloud {name!r} (clouds: {', '.join(clouds)})")
        for i, name in enumerate(consumer.clouds or ())
        if name not in clouds
    ]
    mine = [clouds[name] for name in consumer.clouds or clouds if name in clouds]
    seen: dict[str, int] = {}
    for i, entry in enumerate(consumer.requires):
        place = (*at, "requires", i)
        found = _resolve(mine, entry)
        if isinstance(found, Problem):
            problems.append(Problem((*place, *found.path), found.message))
            continue
        ident = requirement_id(entry.content())
        if ident in seen:
            problems.append(Problem(place, f"the same requirement as requires[{seen[ident]}] (id {ident})"))
        seen.setdefault(ident, i)
    return problems


def _resolve(clouds: Sequence[CloudConfig], entry: RequirementConfig) -> CloudConfig | Problem:
    """The one cloud of ``clouds`` whose ``entry.schema`` the entry reads, or the problem why there is none."""
    names = ", ".join(cloud.name for cloud in clouds)
    if entry.cloud is not None:
        named = [cloud for cloud in clouds if cloud.name == entry.cloud]
        if not named:
            return Problem(("cloud",), f"{entry.cloud!r} is not one of the consumer's clouds ({names})")
        clouds = named
    watching = [cloud for cloud in clouds if watched_kind(cloud, entry.schema_name) is not None]
    if not watching:
        where = f"cloud {entry.cloud}" if entry.cloud else f"any of the consumer's clouds ({names})"
        return Problem(("schema",), f"{entry.schema_name!r} is not watched by {where}: no document to check")
    if len(watching) > 1:
        both = " and ".join(cloud.name for cloud in watching)
        return Problem(("schema",), f"{entry.schema_name!r} is watched by clouds {both}: name one with cloud:")
    kind = watched_kind(watching[0], entry.schema_name)
    kinds = KINDS_OF_CHECK[entry.check]
    if kinds is not None and kind not in kinds:
        needed = " or ".join(sorted(kinds))
        return Problem(("schema",), f"a {entry.check} check needs a {needed} document; "
                                    f"{watching[0].name}/{entry.schema_name} is of kind {kind}")  # fmt: skip
    return watching[0]


def consumer_contracts(config: Config) -> tuple[Consumer, ...]:
    """The configured consumers with each requirement's cloud resolved; raises ValueError for a section
    :func:`consumer_problems` finds fault with (a configuration that did not come through loading)."""
    clouds = {cloud.name: cloud for cloud in config.clouds}
    contracts = []
    for consumer in config.consumers:
        names = tuple(consumer.clouds or clouds)
        mine = [clouds[name] for name in names if name in clouds]
        requirements = []
        for entry in consumer.requires:
            found = _resolve(mine, entry)
            if isinstance(found, Problem):
                raise ValueError(f"consumers: {consumer.name}: {entry.schema_name}: {found.message}")
            requirements.append(entry.requirement(found.name))
        contracts.append(Consumer(consumer.name, consumer.description, names, tuple(requirements)))
    return tuple(contracts)
