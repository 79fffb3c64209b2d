"""Consumer contracts, judged purely: does what a region serves give a client what it needs? (docs/consumers.md)

A **consumer** is a client (terraform-provider-openstack, openstacksdk, a CSI driver) with a list of
**requirements**. Each requirement names one document — a target, by ``cloud`` and ``schema`` — and one
**check** on that document as it is stored (its canonical form, :mod:`monitor.judge.kinds`):

============= ===================================================================================================
check         met when
============= ===================================================================================================
microversion  the version entry (below) has microversions and ``min_version <= m <= max_version``
version       the document lists the version entry (below)
status        the version entry's status is one of the given ones
extension     the extension list has the alias
exists        there is a value at ``pointer`` (RFC 6901)
contains      the value at ``pointer`` is an array holding each given value
equals        the value at ``pointer`` is the given JSON value (``1`` and ``1.0`` are equal, ``true`` and ``1`` not)
matches       the value at ``pointer`` is a string that the regular expression matches in full
type          the JSON-schema ``type`` of the property at ``pointer`` is exactly the given type (or set of types)
writable      the property at ``pointer`` exists, and neither it nor a property enclosing it is read-only
              (``readOnly: true``, or ``READ-ONLY`` in its description: the schema rules' definition)
============= ===================================================================================================

The **version entry** of a requirement is the entry with the id it names (``v2.1``) or, when there is none, the
highest entry of the same major version above it (keystone's ``v3.14`` became ``v3.15``: keystoneauth's
``version_match`` takes any later minor of the major version asked for). Microversions compare as numbers
(:class:`~monitor.judge.kinds.microversion.Microversion`): ``2.100`` is above ``2.96``.

**Evaluation** of a consumer in a region (:func:`evaluate`) judges each requirement on that region's target of
its (cloud, schema): *met*, *not met* (with the reason in words: ``max microversion 2.95 < required 2.96``) or
*unknown* — the region has no such target, the target has no document yet, or its polls are failing. The
consumer is **broken** in the region when any requirement is not met, **unknown** when none is broken but one
is unknown, **compatible** when all are met.

**Marks** (:func:`mark_breaks`): a change breaks a consumer when a requirement on the changed target that the
old document met is not met by the new one — whether the consumer was compatible before or already broken by
another requirement. The mark goes on the changes whose paths touch the requirement's anchor (the pointer it
reads, or the version entry or extension it names), or on the worst change when none does.

A requirement's **id** (:func:`requirement_id`) is the first 8 hex digits of the SHA-256 of its content as
written, normalised and in canonical JSON: the same entry keeps its id across restarts, reorderings of the file
and the other entries; any edit gives it another.

Pure functions over plain data. May import ``domain`` and the rest of ``judge``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from monitor.domain import ABSENT, Change, ConsumerBreak, TargetKey, pointer_join
from monitor.judge.kinds import Microversion, extension_aliases, version_entries
from monitor.judge.kinds.base import json_kind
from monitor.judge.kinds.schema.rules import READ_ONLY_MARKER, is_read_only
from monitor.judge.kinds.versions import version_number

VERSION_CHECKS: Final = ("microversion", "version", "status")
POINTER_CHECKS: Final = ("exists", "contains", "equals", "matches", "type", "writable")
CHECKS: Final = (*VERSION_CHECKS, "extension", *POINTER_CHECKS)
"""Every check a requirement can make (see the module table)."""

KINDS_OF_CHECK: Final[Mapping[str, frozenset[str] | None]] = {
    **dict.fromkeys(VERSION_CHECKS, frozenset({"versions"})),
    "extension": frozenset({"extensions"}),
    **dict.fromkeys(("type", "writable"), frozenset({"schema"})),
    **dict.fromkeys(("exists", "contains", "equals", "matches"), None),
}
"""The document kinds each check applies to (``None``: any kind)."""

_SHOWN_CHARS: Final = 60
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN_ITEMS: Final = 8


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement on one document: ``check`` with its ``version`` / ``pointer`` / ``value``.

    ``value`` by check: the microversion (``"2.79"``), the statuses (a tuple), the alias, the values to contain
    (a tuple), the JSON value to equal, the regular expression, the types (a sorted tuple), or None.
    ``cloud`` is the cloud whose document is meant (named in the entry or the only one of the consumer's clouds
    watching ``schema``); ``named_cloud`` says whether the entry named it.
    """

    id: str
    cloud: str
    schema: str
    check: str
    version: str | None = None
    pointer: str = ""
    value: Any = None
    named_cloud: bool = False

    def describe(self) -> str:
        """The requirement in words: ``compute-versions: v2.1 serves microversion 2.79``."""
        subject = f"{self.cloud}/{self.schema}" if self.named_cloud else self.schema
        return f"{subject}: {_DESCRIBE[self.check](self)}"

    @property
    def anchor(self) -> str:
        """The JSON pointer of what the requirement reads in the document (its evidence)."""
        if self.check in VERSION_CHECKS:
            return pointer_join("/versions", self.version or "")
        if self.check == "extension":
            return pointer_join("/extensions", str(self.value))
        return pointer_join(self.pointer, "type") if self.check == "type" else self.pointer


@dataclass(frozen=True, slots=True)
class Consumer:
    """A client and what it needs; ``clouds`` are the clouds it runs against."""

    name: str
    description: str
    clouds: tuple[str, ...]
    requirements: tuple[Requirement, ...]

    def on(self, cloud: str, schema: str) -> tuple[Requirement, ...]:
        """The requirements on the documents of ``cloud``'s ``schema``."""
        return tuple(r for r in self.requirements if (r.cloud, r.schema) == (cloud, schema))


@dataclass(frozen=True, slots=True)
class Observed:
    """What is known of one target now: its current document (None: none yet), that document's hash, and why its
    polls fail (None while they succeed, or before the first poll)."""

    document: Mapping[str, Any] | None
    sha256: str | None = None
    failing: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One requirement in one region: ``met`` (None: unknown) and the reason — why not, why unknown, or for a met
    one what was found. ``target`` and ``sha256`` name the document judged (None: there was none)."""

    requirement: Requirement
    met: bool | None
    reason: str
    target: TargetKey
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class RegionVerdict:
    """A consumer in one region: every requirement's verdict, in the consumer's order."""

    consumer: str
    region: str
    verdicts: tuple[Verdict, ...]

    @property
    def compatible(self) -> bool | None:
        """False when a requirement is not met, None (unknown) when none is broken but one is unknown, else True."""
        if any(v.met is False for v in self.verdicts):
            return False
        return None if any(v.met is None for v in self.verdicts) else True

    @property
    def clouds(self) -> tuple[str, ...]:
        """The clouds whose documents the requirements read in this region, in first-use order."""
        return tuple(dict.fromkeys(v.requirement.cloud for v in self.verdicts))

    @property
    def broken(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.met is False)

    @property
    def unknown(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.met is None)


def requirement_id(content: Mapping[str, Any]) -> str:
    """The id of a requirement: the first 8 hex digits of the SHA-256 of ``content`` (the entry's keys as
    written, values normalised) in canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def parse_pointer(pointer: str) -> list[str]:
    """The reference tokens of an RFC 6901 JSON pointer (``""`` is the whole document); raises ``ValueError``
    for one that does not start with ``/`` or has a ``~`` not followed by ``0`` or ``1``."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON pointer starts with '/' (or is empty for the whole document), got {_show(pointer)}")
    if re.search(r"~(?![01])", pointer):
        raise ValueError(f"in a JSON pointer '~' is written ~0 and '/' inside a name ~1, got {_show(pointer)}")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def value_at(document: Any, pointer: str) -> Any:
    """The value ``pointer`` designates in ``document``, or ``ABSENT`` when there is none."""
    found, _ = _walk(document, parse_pointer(pointer))
    return found


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values: numbers by value (``1 == 1.0``), booleans apart from numbers, objects
    without regard to key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def judge(requirement: Requirement, document: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``document`` meets ``requirement``, and why (not): a sentence without the requirement itself, in
    which a control character a document carried (an id, a status) is shown as ``?``."""
    try:
        met, reason = _JUDGES[requirement.check](requirement, document)
    except ValueError as exc:  # a document of another kind than the check reads (the config was changed)
        met, reason = False, str(exc)
    return met, _CONTROL.sub("?", reason)


def evaluate(consumer: Consumer, region: str, observed: Mapping[TargetKey, Observed]) -> RegionVerdict:
    """Every requirement of ``consumer`` on ``region``'s documents (``observed``: what is known of each target)."""
    return RegionVerdict(consumer.name, region, tuple(_verdict(r, region, observed) for r in consumer.requirements))


def regions_of(consumer: Consumer, keys: Iterable[TargetKey]) -> list[str]:
    """The regions (sorted) where at least one target a requirement of ``consumer`` reads exists."""
    wanted = {(r.cloud, r.schema) for r in consumer.requirements}
    return sorted({key.region for key in keys if (key.cloud, key.schema) in wanted})


def mark_breaks(consumers: Sequence[Consumer], key: TargetKey, old: Mapping[str, Any], new: Mapping[str, Any],
                changes: Sequence[Change]) -> list[Change]:  # fmt: skip
    """``changes`` (old → new document of ``key``), each with the requirements it breaks in ``breaks`` (see the
    module: met by ``old``, not met by ``new``; on the changes touching the anchor, else on the worst one)."""
    marked = list(changes)
    if not marked:
        return marked
    for consumer in consumers:
        for requirement in consumer.on(key.cloud, key.schema):
            met_before, _ = judge(requirement, old)
            met_now, reason = judge(requirement, new)
            if met_before and not met_now:
                mark = ConsumerBreak(consumer.name, requirement.id, requirement.describe(), reason)
                for index in _carriers(marked, requirement.anchor):
                    marked[index] = replace(marked[index], breaks=(*marked[index].breaks, mark))
    return marked


def touches(path: str, anchor: str) -> bool:
    """Whether a change at ``path`` is at, inside or around the value at ``anchor``."""
    return path == anchor or path.startswith(anchor + "/") or anchor.startswith(path + "/") or path == ""


# --- evaluation --------------------------------------------------------------------------------------------


def _verdict(requirement: Requirement, region: str, observed: Mapping[TargetKey, Observed]) -> Verdict:
    key = TargetKey(requirement.cloud, region, requirement.schema)
    seen = observed.get(key)
    if seen is None:
        return Verdict(requirement, None, f"{key} is not watched (no such target in {region})", key)
    if seen.failing is not None:
        return Verdict(requirement, None, f"the polls of {key} are failing ({seen.failing})", key, seen.sha256)
    if seen.document is None:
        return Verdict(requirement, None, f"no document of {key} yet", key)
    met, reason = judge(requirement, seen.document)
    return Verdict(requirement, met, reason, key, seen.sha256)


def _carriers(changes: Sequence[Change], anchor: str) -> list[int]:
    """The indexes of the changes a break at ``anchor`` is marked on: those touching it, else the worst one."""
    touching = [i for i, change in enumerate(changes) if touches(change.path, anchor)]
    if touching:
        return touching
    worst = max(range(len(changes)), key=lambda i: (changes[i].severity.rank, -i))
    return [worst]


# --- the checks --------------------------------------------------------------------------------------------


def _entry(document: Mapping[str, Any], version: str) -> tuple[str, Mapping[str, Any]] | None:
    """The version entry a requirement on ``version`` reads (see the module), or None."""
    entries = {e.id: e for e in version_entries(document)}  # raises ValueError for no versions document
    versions: Mapping[str, Any] = document["versions"]
    if version in entries:
        return version, versions[version]
    asked = version_number(version)
    if asked is None:
        return None
    later = [i for i in entries if (n := version_number(i)) is not None and n[0] == asked[0] and n > asked]
    return (later[-1], versions[later[-1]]) if later else None  # version_entries sorts by number


def _listed(document: Mapping[str, Any]) -> str:
    ids = [e.id for e in version_entries(document)]
    return f"versions: {', '.join(ids)}" if ids else "no versions listed"


Entry = Mapping[str, Any]
EntryCheck = Callable[[Requirement, str, Entry], tuple[bool, str]]


def _on_entry(check: EntryCheck) -> Callable[[Requirement, Mapping[str, Any]], tuple[bool, str]]:
    """A check of the version entry a requirement names: not met, saying which versions there are, when the
    document lists no such version (see :func:`_entry`)."""

    def judge(requirement: Requirement, document: Mapping[str, Any]) -> tuple[bool, str]:
        found = _entry(document, requirement.version or "")
        if found is None:
            return False, f"no version {requirement.version} ({_listed(document)})"
        return check(requirement, *found)

    return judge


@_on_entry
def _judge_microversion(requirement: Requirement, version_id: str, entry: Entry) -> tuple[bool, str]:
    wanted = Microversion.from_string(str(requirement.value))
    low, high = Microversion.parse(entry.get("min_version")), Microversion.parse(entry.get("max_version"))
    if high is None:
        return False, f"{version_id} has no microversions"
    if wanted > high:
        return False, f"max microversion {high} < required {wanted}"
    if low is not None and wanted < low:
        return False, f"min microversion {low} > required {wanted}"
    return True, f"{version_id} serves {low} to {high}" if low is not None else f"{version_id} serves up to {high}"


@_on_entry
def _judge_version(requirement: Requirement, version_id: str, entry: Entry) -> tuple[bool, str]:
    return True, f"{version_id} is listed ({entry.get('status')})"


@_on_entry
def _judge_status(requirement: Requirement, version_id: str, entry: Entry) -> tuple[bool, str]:
    status = entry.get("status")
    if status in requirement.value:
        return True, f"{version_id} is {status}"
    return False, f"{version_id} is {status}, not {' or '.join(requirement.value)}"


def _judge_extension(requirement: Requirement, document: Mapping[str, Any]) -> tuple[bool, str]:
    aliases = extension_aliases(document)
    if requirement.value in aliases:
        return True, f"{requirement.value} is listed"
    return False, f"no extension {requirement.value} among the {len(aliases)} listed"


def _judge_exists(requirement: Requirement, document: Mapping[str, Any]) -> tuple[bool, str]:
    found, missing = _walk(document, parse_pointer(requirement.pointer))
    return (True, f"present ({json_kind(found)})") if found is not ABSENT else (False, missing)


ValueCheck = Callable[[Requirement, Any], tuple[bool, str]]


def _at_pointer(check: ValueCheck) -> Callable[[Requirement, Mapping[str, Any]], tuple[bool, str]]:
    """A check of the value at a requirement's pointer: not met, saying where the path ends, when there is none."""

    def judge(requirement: Requirement, document: Mapping[str, Any]) -> tuple[bool, str]:
        found, missing = _walk(document, parse_pointer(requirement.pointer))
        return (False, missing) if found is ABSENT else check(requirement, found)

    return judge


@_at_pointer
def _judge_contains(requirement: Requirement, found: Any) -> tuple[bool, str]:
    if not isinstance(found, list):
        return False, f"{requirement.pointer} is a JSON {json_kind(found)}, not an array"
    lacking = [v for v in requirement.value if not any(json_equal(v, item) for item in found)]
    if lacking:
        return False, f"{requirement.pointer} lacks {_items(lacking)} (has {_items(found)})"
    return True, f"has {_items(requirement.value)}"


@_at_pointer
def _judge_equals(requirement: Requirement, found: Any) -> tuple[bool, str]:
    if json_equal(found, requirement.value):
        return True, f"is {_show(found)}"
    return False, f"{requirement.pointer} is {_show(found)}, not {_show(requirement.value)}"


@_at_pointer
def _judge_matches(requirement: Requirement, found: Any) -> tuple[bool, str]:
    if not isinstance(found, str):
        return False, f"{requirement.pointer} is a JSON {json_kind(found)}, not a string"
    if re.fullmatch(str(requirement.value), found) is None:
        return False, f"{requirement.pointer} is {_show(found)}, which {_show(requirement.value)} does not match"
    return True, f"{_show(found)} matches"


@_at_pointer
def _judge_type(requirement: Requirement, found: Any) -> tuple[bool, str]:
    declared = found.get("type", ABSENT) if isinstance(found, Mapping) else ABSENT
    if declared is ABSENT:
        return False, f"{requirement.pointer} declares no type"
    types = sorted(declared) if isinstance(declared, list) else [declared]
    if len(types) == len(requirement.value) and all(
        json_equal(a, b) for a, b in zip(types, requirement.value, strict=True)
    ):
        return True, f"type {_types(types)}"
    return False, f"{requirement.pointer} has type {_types(types)}, not {_types(requirement.value)}"


def _judge_writable(requirement: Requirement, document: Mapping[str, Any]) -> tuple[bool, str]:
    tokens = parse_pointer(requirement.pointer)
    found, missing = _walk(document, tokens)
    if found is ABSENT:
        return False, missing
    if not isinstance(found, Mapping):
        return False, f"{requirement.pointer} is a JSON {json_kind(found)}, not a property schema"
    for path, node in _enclosing_properties(document, tokens):
        if is_read_only(node):
            why = "readOnly: true" if node.get("readOnly") is True else f"its description says {READ_ONLY_MARKER}"
            inside = "" if path == requirement.pointer else f" (inside {path})"
            return False, f"{path} is read-only ({why}){inside}"
    return True, "writable"


def _enclosing_properties(document: Any, tokens: Sequence[str]) -> list[tuple[str, Mapping[str, Any]]]:
    """The property schemas along ``tokens`` (each node reached through ``properties``) and the last node."""
    found, node, path = [], document, ""
    for index, token in enumerate(tokens):
        node = node[int(token)] if isinstance(node, list) else node[token]
        path = pointer_join(path, token)
        is_property = index > 0 and tokens[index - 1] == "properties"
        if isinstance(node, Mapping) and (is_property or index == len(tokens) - 1):
            found.append((path, node))
    return found


def _walk(document: Any, tokens: Sequence[str]) -> tuple[Any, str]:
    """The value at ``tokens`` (or ``ABSENT``) and, when there is none, the sentence saying where it stops."""
    node, path = document, ""
    for token in tokens:
        if isinstance(node, Mapping):
            if token not in node:
                return ABSENT, f"no {_show(token)} in {path or 'the document'}"
            node = node[token]
        elif isinstance(node, list):
            if not re.fullmatch(r"0|[1-9][0-9]*", token) or int(token) >= len(node):
                return ABSENT, f"no item {_show(token)} in {path or 'the document'} ({len(node)} items)"
            node = node[int(token)]
        else:
            return ABSENT, f"{path or 'the document'} is a JSON {json_kind(node)}: nothing inside"
        path = pointer_join(path, token)
    return node, ""


def _show(value: Any) -> str:
    """A JSON value (a string without quotes when it is plain) cut to a length fit for a sentence."""
    text = value if isinstance(value, str) and re.fullmatch(r"[\w.:/-]+", value) else json.dumps(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _items(values: Sequence[Any]) -> str:
    shown = ", ".join(_show(v) for v in values[:_SHOWN_ITEMS])
    return shown + (f" and {len(values) - _SHOWN_ITEMS} more" if len(values) > _SHOWN_ITEMS else "")


def _types(types: Sequence[Any]) -> str:
    return _show(types[0]) if len(types) == 1 else "[" + ", ".join(_show(t) for t in types) + "]"


_JUDGES: Final[Mapping[str, Callable[[Requirement, Mapping[str, Any]], tuple[bool, str]]]] = {
    "microversion": _judge_microversion,
    "version": _judge_version,
    "status": _judge_status,
    "extension": _judge_extension,
    "exists": _judge_exists,
    "contains": _judge_contains,
    "equals": _judge_equals,
    "matches": _judge_matches,
    "type": _judge_type,
    "writable": _judge_writable,
}
_DESCRIBE: Final[Mapping[str, Callable[[Requirement], str]]] = {
    "microversion": lambda r: f"{r.version} serves microversion {r.value}",
    "version": lambda r: f"lists {r.version} (or a later minor of its major version)",
    "status": lambda r: f"{r.version} is {' or '.join(r.value)}",
    "extension": lambda r: f"extension {r.value}",
    "exists": lambda r: f"{r.pointer or 'the document'} exists",
    "contains": lambda r: f"{r.pointer} contains {_items(r.value)}",
    "equals": lambda r: f"{r.pointer} equals {_show(r.value)}",
    "matches": lambda r: f"{r.pointer} matches {_show(r.value)}",
    "type": lambda r: f"{r.pointer} has type {_types(r.value)}",
    "writable": lambda r: f"{r.pointer} is writable",
}
