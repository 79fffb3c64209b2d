"""Classify the differences between two schema documents into ``Change``s; pure functions.

The rules and severities are those of docs/change-rules.md. Both documents are canonicalised first, so key order,
whitespace and the order of ``enum``/``required``/``type`` arrays never produce a change. Then deepdiff decides
*what* changed and this module decides what each change *means*:

1. Detection: ``DeepDiff(old, new, **DEEPDIFF_OPTIONS)`` in tree view. Every node it reports
   (``values_changed``, ``type_changes``, ``dictionary_item_added``/``removed``, ``iterable_item_added``/
   ``removed``) becomes a path (``path(output_format="list")``), and the paths form a tree (``_Reported``).
   When deepdiff reports nothing, ``classify`` returns ``[]`` without looking at the documents. The options
   avoid deepdiff's pitfalls:

   * ``threshold_to_diff_deeper=0``: with the default, a dict sharing few keys with its counterpart is
     reported as one ``values_changed`` of the whole dict, hiding which keys changed.
   * ``max_diffs`` is never passed: reaching it silently truncates (or empties) the result.
   * ``zip_ordered_iterables=True``: without it an array of scalars is compared by deepdiff's difflib path,
     which uses Python equality, so ``[0, 1]`` against ``[false, true]`` (or ``1`` against ``1.0``) reads as no
     change. Zipped, every pair of items goes through deepdiff's type check. (Arrays of objects are paired by
     index either way.)
   * ``ignore_private_variables=False``: otherwise object keys starting with ``__`` are skipped.
   * ``custom_operators``: floats compare by their JSON text, so ``0.0`` against ``-0.0`` is a change, as
     it is in the canonical hash. Values thus compare as JSON, not as Python, and ``classify`` returns no
     change exactly when the canonical JSON texts are equal.

2. Classification: a schema-aware walk that follows only the reported paths; keywords, properties and array
   items deepdiff did not report are never visited. At a schema object each reported keyword is handed, whole
   and from both documents, to that keyword's rule (``enum``, ``required``, ``type``, ``pattern``,
   ``maxLength``, ``readOnly``, ``description``...); ``properties``, ``additionalProperties`` and the other
   subschema keywords (``items``, ``allOf``...) lead further down the reported paths. Each difference is
   reported once, at the highest point where it is whole: an added or removed property is one change
   carrying the entire subschema, however many nodes deepdiff reported inside.

Ordered arrays (``links``, ``allOf``...): deepdiff pairs their items by index, so a link inserted in the
middle of ``links`` reads as modified links plus one added at the end. Under every reported array that is not
a set the walk re-aligns the items with ``difflib.SequenceMatcher`` (on their canonical JSON): an inserted or
deleted item is one change at its index (new document for insertions, old for deletions); a run replaced by
one of equal length is compared item by item, through deepdiff's report where the pair has the same index
and by asking deepdiff again about that pair where the index moved.

Severity follows the read-only state of the nearest enclosing property (``readOnly: true`` or ``READ-ONLY``
in its description), taken from the ancestors of the reported path: the new document's state for additions
and modifications, the old one's for removals.

Interpretations where RULES.md leaves room:

* ``enum``: one change per value added or removed (path: the ``enum`` array; old/new: the value).
  ``required``: one change per name (path: the ``required`` array; old/new: the name), its read-only state
  being that of the named property (or of the enclosing one); a property that is added (removed) together
  with its name in ``required`` yields only ``required-property-added`` (``property-removed``).
* ``type`` compares sets of names, case-sensitively (``String`` and ``string`` are unrelated). Widened: every
  old type is kept or grows (``integer`` into ``number``, ``null`` added); narrowed: the reverse; otherwise
  changed. ``type`` appearing where there was none is a narrowing, disappearing a widening.
* ``became-read-only``/``became-writable`` are reported at the property's pointer with old/new the
  booleans of its effective read-only state; flipping to read-only is a warning unless an enclosing property
  is already read-only (then info). A ``readOnly`` keyword change that does not flip that state (the
  description already says ``READ-ONLY``) is ``value-changed`` at ``info``.
* ``additionalProperties``: true, absent or ``{}`` (anything) is wider than a schema, which is wider than
  false; moving down that order is ``additional-properties-narrowed``, otherwise ``-widened``. Between two
  schemas the walk continues inside, and every change found there is re-labelled: ``-widened`` when the
  plain rule relaxes validation (type widened, enum value added, enum/pattern/required removed, length
  limit loosened, property removed, became writable), ``-narrowed`` otherwise, so a changed type such as
  IMS's ``{"type": "String"}`` against Glance's ``{"type": "string"}`` is narrowed. Documentation keys stay
  ``description-changed`` and Glance keys stay ``info`` there: they constrain nothing.
* Glance/IMS keys ``is_base``, ``links`` and ``name`` (at every schema position, so the item schema's
  ``name: "image"`` too) change nothing a client validates: rule ``value-changed`` at severity ``info``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from deepdiff import DeepDiff
from deepdiff.operator import BaseOperator

from monitor.domain import ABSENT, Change, Severity, pointer_join
from monitor.judge.canonical import align, canonicalize, set_key

_B, _W, _I, _C = Severity.BREAKING, Severity.WARNING, Severity.INFO, Severity.COSMETIC

SEVERITIES: Final[Mapping[str, tuple[Severity, Severity]]] = {
    # rule id: (writable property, read-only property), as in docs/change-rules.md
    "property-removed": (_B, _B),
    "property-added": (_I, _I),
    "required-property-added": (_B, _I),
    "type-changed": (_B, _B),
    "type-widened": (_B, _B),
    "type-narrowed": (_B, _I),
    "enum-value-added": (_W, _W),
    "enum-value-removed": (_B, _I),
    "enum-added": (_B, _I),
    "enum-removed": (_W, _W),
    "pattern-added": (_B, _I),
    "pattern-changed": (_W, _W),
    "pattern-removed": (_W, _W),
    "max-length-decreased": (_B, _I),
    "max-length-increased": (_W, _W),
    "min-length-increased": (_B, _I),
    "min-length-decreased": (_W, _W),
    "became-required": (_B, _I),
    "became-optional": (_W, _W),
    "additional-properties-narrowed": (_B, _I),
    "additional-properties-widened": (_W, _W),
    "became-read-only": (_W, _I),  # read-only column: an enclosing property was read-only already
    "became-writable": (_I, _I),
    "default-changed": (_W, _I),
    "description-changed": (_C, _C),
    "value-changed": (_W, _W),
}
"""Severity of each rule id for a writable and for a read-only property."""

READ_ONLY_MARKER: Final = "READ-ONLY"
"""How IMS marks a read-only property in its description (case-sensitive)."""

_WIDENING_RULES: Final = frozenset(
    {
        "type-widened",
        "enum-value-added",
        "enum-removed",
        "pattern-removed",
        "max-length-increased",
        "min-length-decreased",
        "became-optional",
        "property-removed",
        "became-writable",
        "additional-properties-widened",
    }
)
_UNCHANGED_UNDER_ADDITIONAL: Final = frozenset({"description-changed"})
_ANY_TYPE: Final[frozenset[str]] = frozenset()  # an absent ``type``: every type allowed

_Token = str | int  # one step of a path: an object key or an array index
_MakeChange = Callable[[str, Any, Any], Change]  # (path, old, new) -> Change
_DiffPair = Callable[[Any, Any, str, "_Reported"], Iterable[Change]]  # (old, new, path, reported) -> changes


class _JsonFloatOperator(BaseOperator):
    """deepdiff operator comparing two floats by their JSON text (``0.0`` and ``-0.0`` differ)."""

    def match(self, level: Any) -> bool:
        return type(level.t1) is float and type(level.t2) is float

    def give_up_diffing(self, level: Any, diff_instance: Any) -> bool:
        if repr(level.t1) != repr(level.t2):  # json.dumps writes a float as its repr
            diff_instance.custom_report_result("values_changed", level)
        return True


DEEPDIFF_OPTIONS: Final[Mapping[str, Any]] = {
    "ignore_order": False,
    "zip_ordered_iterables": True,
    "threshold_to_diff_deeper": 0,
    "ignore_private_variables": False,
    "custom_operators": [_JsonFloatOperator()],
    "verbose_level": 2,
    "view": "tree",
}
"""How ``classify`` calls deepdiff (never with ``max_diffs``); the module docstring says why."""


@dataclass(slots=True)
class _Reported:
    """The paths deepdiff reported at and below one node: ``whole`` when the node itself was reported
    (added, removed, or its value or type changed), ``children`` for reports further down."""

    whole: bool = False
    children: dict[_Token, _Reported] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.whole or bool(self.children)

    def child(self, token: _Token) -> _Reported:
        """What was reported at and below ``token``; everything when this node was reported whole."""
        if self.whole:
            return _WHOLE
        return self.children.get(token, _NOTHING)

    def keys(self, old: Any, new: Any) -> list[str]:
        """The reported members of two objects, sorted; all of their keys when reported whole."""
        if self.whole:
            return sorted(_keys(old) | _keys(new))
        return sorted(token for token in self.children if isinstance(token, str))


_WHOLE: Final = _Reported(whole=True)
_NOTHING: Final = _Reported()


_DEEPDIFF_LOCK: Final = threading.Lock()
"""One diff at a time: deepdiff builds its paths with ``ast.literal_eval``, and CPython 3.11 keeps the AST
constructor's recursion depth in per-interpreter state, so two threads parsing at once can fail with
``SystemError: AST constructor recursion depth mismatch`` (see CPython gh-106905; seen here on 3.11.7 with the
four store threads classifying at once)."""


def _detect(old: Any, new: Any) -> _Reported:
    """Ask deepdiff what differs between two canonical values; its reports as a tree of paths. Thread-safe."""
    reported = _Reported()
    with _DEEPDIFF_LOCK:  # the GIL serialises this work anyway; the lock only keeps the parser's state whole
        tree = DeepDiff(old, new, **DEEPDIFF_OPTIONS)
        paths = [level.path(output_format="list") for levels in tree.values() for level in levels]
    for path in paths:
        node = reported
        for token in path:
            node = node.children.setdefault(token, _Reported())
        node.whole = True
    return reported


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where the walk is: the read-only state of the nearest enclosing property in each document, whether
    it is under ``additionalProperties``, and whether the current schema object is a property's."""

    read_only_old: bool = False
    read_only_new: bool = False
    in_additional: bool = False
    at_property: bool = False

    def enter_property(self, old_schema: Any, new_schema: Any) -> _Scope:
        """The scope inside a property present in both documents."""
        return _Scope(
            self.read_only_old or is_read_only(old_schema),
            self.read_only_new or is_read_only(new_schema),
            self.in_additional,
            at_property=True,
        )

    def enter_subschema(self) -> _Scope:
        """The scope inside a subschema that is not itself a property (``items``, ``allOf/0``...)."""
        return replace(self, at_property=False)

    def enter_additional(self) -> _Scope:
        """The scope inside an ``additionalProperties`` schema."""
        return replace(self, in_additional=True, at_property=False)


@dataclass(frozen=True, slots=True)
class _Keyword:
    """One keyword of a schema object, on both sides: values (``ABSENT`` if missing), pointer, parents,
    and deepdiff's reports."""

    name: str
    old: Any
    new: Any
    path: str
    old_parent: Mapping[str, Any]
    new_parent: Mapping[str, Any]
    reported: _Reported  # what deepdiff reported at and below the keyword


def classify(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every difference between two schema documents, classified; sorted by path, then rule, then value.

    deepdiff finds the differences between the canonical forms; returns an empty list exactly when both
    documents have the same canonical form.
    """
    old, new = canonicalize(old), canonicalize(new)
    reported = _detect(old, new)
    if not reported:
        return []
    return sorted(_diff_schema(old, new, "", _Scope(), reported), key=_order)


def is_read_only(schema: Any) -> bool:
    """Whether a property schema is read-only: ``readOnly: true`` or ``READ-ONLY`` in its description."""
    if not isinstance(schema, Mapping):
        return False
    description = schema.get("description")
    return schema.get("readOnly") is True or (isinstance(description, str) and READ_ONLY_MARKER in description)


# --- the walk along the reported paths -------------------------------------------------------------------


def _diff_schema(old: Any, new: Any, path: str, scope: _Scope, reported: _Reported) -> Iterator[Change]:
    """Changes between two schemas present on both sides: each reported keyword, by its rule."""
    if not reported:
        return
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        yield _change("value-changed", path, scope, old, new)  # boolean schema, or a different JSON kind
        return
    for name in reported.keys(old, new):
        keyword = _Keyword(
            name, old.get(name, ABSENT), new.get(name, ABSENT), pointer_join(path, name), old, new, reported.child(name)
        )
        yield from _HANDLERS.get(name, _diff_plain)(keyword, scope)


def _diff_properties(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``properties``: each reported property added, removed, or compared inside."""
    old, new = _object_or_empty(kw.old), _object_or_empty(kw.new)
    if old is None or new is None:
        yield from _diff_plain(kw, scope)
        return
    required = _names(kw.new_parent.get("required", ABSENT)) or set()
    for name in kw.reported.keys(old, new):
        path = pointer_join(kw.path, name)
        old_schema, new_schema = old.get(name, ABSENT), new.get(name, ABSENT)
        if old_schema is ABSENT:
            rule = "required-property-added" if name in required else "property-added"
            read_only = scope.read_only_new or is_read_only(new_schema)
            yield _change(rule, path, scope, ABSENT, new_schema, read_only=read_only)
        elif new_schema is ABSENT:
            yield _change("property-removed", path, scope, old_schema, ABSENT)
        else:
            yield from _diff_property(old_schema, new_schema, path, scope, kw.reported.child(name))


def _diff_property(old: Any, new: Any, path: str, scope: _Scope, reported: _Reported) -> Iterator[Change]:
    """One property present on both sides: its read-only state, then its subschema."""
    was, now = is_read_only(old), is_read_only(new)
    if was != now:
        rule = "became-read-only" if now else "became-writable"
        yield _change(rule, path, scope, was, now, read_only=scope.read_only_old)
    yield from _diff_schema(old, new, path, scope.enter_property(old, new), reported)


def _diff_read_only_flag(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``readOnly``: on a property it is reported through the property's read-only state."""
    if not scope.at_property:
        yield from _diff_plain(kw, scope)
    elif is_read_only(kw.old_parent) == is_read_only(kw.new_parent):
        yield Change(kw.path, "value-changed", Severity.INFO, kw.old, kw.new)  # the description decides


def _diff_required(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``required``: one change per name added or removed, except names of properties added/removed."""
    old, new = _names(kw.old), _names(kw.new)
    if old is None or new is None:
        yield from _diff_plain(kw, scope)
        return
    old_props, new_props = _property_names(kw.old_parent), _property_names(kw.new_parent)
    for name in sorted(new - old - (new_props - old_props)):
        read_only = scope.read_only_new or is_read_only(_property(kw.new_parent, name))
        yield _change("became-required", kw.path, scope, ABSENT, name, read_only=read_only)
    for name in sorted(old - new - (old_props - new_props)):
        read_only = scope.read_only_old or is_read_only(_property(kw.old_parent, name))
        yield _change("became-optional", kw.path, scope, name, ABSENT, read_only=read_only)


def _diff_enum(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``enum``: gained or lost as a whole, else one change per value added or removed."""
    old_is_list, new_is_list = isinstance(kw.old, list), isinstance(kw.new, list)
    if kw.old is ABSENT and new_is_list:
        yield _change("enum-added", kw.path, scope, ABSENT, kw.new)
    elif old_is_list and kw.new is ABSENT:
        yield _change("enum-removed", kw.path, scope, kw.old, ABSENT)
    elif old_is_list and new_is_list:
        old = {set_key(value): value for value in kw.old}
        new = {set_key(value): value for value in kw.new}
        for key in sorted(old.keys() - new.keys()):
            yield _change("enum-value-removed", kw.path, scope, old[key], ABSENT)
        for key in sorted(new.keys() - old.keys()):
            yield _change("enum-value-added", kw.path, scope, ABSENT, new[key])
    else:
        yield from _diff_plain(kw, scope)


def _diff_type(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``type``: widened, narrowed or changed, comparing the sets of type names."""
    old, new = _type_set(kw.old), _type_set(kw.new)
    if old is None or new is None:
        yield from _diff_plain(kw, scope)
    else:
        yield _change(_type_rule(old, new), kw.path, scope, kw.old, kw.new)


def _type_rule(old: frozenset[str], new: frozenset[str]) -> str:
    """The rule for a change between two different sets of type names (``_ANY_TYPE`` when absent)."""
    if old == _ANY_TYPE:
        return "type-narrowed"
    if new == _ANY_TYPE or _covers(new, old):
        return "type-widened"
    if _covers(old, new):
        return "type-narrowed"
    return "type-changed"


def _covers(wide: frozenset[str], narrow: frozenset[str]) -> bool:
    """Whether every type in ``narrow`` is allowed by ``wide`` (``number`` allows ``integer``)."""
    return all(name in wide or (name == "integer" and "number" in wide) for name in narrow)


def _diff_pattern(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``pattern``: added, removed or changed."""
    rule = "pattern-added" if kw.old is ABSENT else "pattern-removed" if kw.new is ABSENT else "pattern-changed"
    yield _change(rule, kw.path, scope, kw.old, kw.new)


def _diff_max_length(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``maxLength``: a smaller or new limit is tighter, a larger or removed one looser."""
    yield from _diff_limit(kw, scope, "max-length-decreased", "max-length-increased", tighter_if_smaller=True)


def _diff_min_length(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``minLength``: a larger or new limit is tighter, a smaller or removed one looser."""
    yield from _diff_limit(kw, scope, "min-length-increased", "min-length-decreased", tighter_if_smaller=False)


def _diff_limit(
    kw: _Keyword, scope: _Scope, tighter: str, looser: str, *, tighter_if_smaller: bool
) -> Iterator[Change]:
    """A numeric limit: ``tighter`` when it appears or moves the tight way, ``looser`` otherwise."""
    if not (_is_limit(kw.old) and _is_limit(kw.new)) or kw.old == kw.new:  # 255 vs 255.0: only the spelling
        yield from _diff_plain(kw, scope)
        return
    tight = kw.old is ABSENT or (kw.new is not ABSENT and (kw.new < kw.old) == tighter_if_smaller)
    yield _change(tighter if tight else looser, kw.path, scope, kw.old, kw.new)


def _diff_additional(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``additionalProperties``: compared inside when both sides are schemas, else by how much it allows."""
    if _openness(kw.old) == _openness(kw.new) == 1:
        yield from _diff_schema(kw.old, kw.new, kw.path, scope.enter_additional(), kw.reported)
        return
    narrowed = _openness(kw.new) < _openness(kw.old)
    rule = "additional-properties-narrowed" if narrowed else "additional-properties-widened"
    yield _change(rule, kw.path, scope, kw.old, kw.new)


def _openness(value: Any) -> int:
    """2 for anything-goes (absent, true, ``{}``), 1 for a constraining schema, 0 for ``false``."""
    if value is ABSENT or value is True or (isinstance(value, Mapping) and not value):
        return 2
    return 0 if value is False else 1


def _diff_subschema(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """A keyword holding one subschema or a list of them (``items``, ``not``, ``allOf``...)."""
    if kw.old is ABSENT or kw.new is ABSENT:
        yield _change("value-changed", kw.path, scope, kw.old, kw.new)
    elif isinstance(kw.old, list) and isinstance(kw.new, list):
        inner = scope.enter_subschema()
        yield from _diff_sequence(
            kw.old,
            kw.new,
            kw.path,
            kw.reported,
            lambda old, new, path, reported: _diff_schema(old, new, path, inner, reported),
            lambda path, old, new: _change("value-changed", path, scope, old, new),
        )
    else:
        yield from _diff_schema(kw.old, kw.new, kw.path, scope.enter_subschema(), kw.reported)


def _diff_schema_map(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """A keyword mapping names to subschemas (``patternProperties``, ``$defs``...), compared per reported name."""
    if not (isinstance(kw.old, Mapping) and isinstance(kw.new, Mapping)):
        yield from _diff_plain(kw, scope)
        return
    for name in kw.reported.keys(kw.old, kw.new):
        old, new, path = kw.old.get(name, ABSENT), kw.new.get(name, ABSENT), pointer_join(kw.path, name)
        if old is ABSENT or new is ABSENT:
            yield _change("value-changed", path, scope, old, new)
        else:
            yield from _diff_schema(old, new, path, scope.enter_subschema(), kw.reported.child(name))


def _diff_default(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``default``: any change, as one change of the whole value."""
    yield _change("default-changed", kw.path, scope, kw.old, kw.new)


def _diff_documentation(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """``description``, ``title``, ``examples``: documentation only."""
    yield _change("description-changed", kw.path, scope, kw.old, kw.new)


def _diff_glance(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """Glance/IMS keys (``is_base``, ``links``, ``name``): plain value changes at severity info."""
    yield from _diff_value(kw.old, kw.new, kw.path, kw.reported, _info_change)


def _diff_plain(kw: _Keyword, scope: _Scope) -> Iterator[Change]:
    """Any other keyword: ``value-changed`` at each reported point (arrays re-aligned, see the module)."""
    yield from _diff_value(
        kw.old, kw.new, kw.path, kw.reported, lambda path, old, new: _change("value-changed", path, scope, old, new)
    )


_SUBSCHEMA_KEYWORDS: Final = (
    *("items", "additionalItems", "prefixItems", "contains", "propertyNames"),
    *("not", "if", "then", "else", "allOf", "anyOf", "oneOf"),
)
"""Keywords holding one subschema or a list of them."""

_HANDLERS: Final[Mapping[str, Callable[[_Keyword, _Scope], Iterator[Change]]]] = {
    "properties": _diff_properties,
    "required": _diff_required,
    "enum": _diff_enum,
    "type": _diff_type,
    "pattern": _diff_pattern,
    "maxLength": _diff_max_length,
    "minLength": _diff_min_length,
    "additionalProperties": _diff_additional,
    "readOnly": _diff_read_only_flag,
    "default": _diff_default,
    **dict.fromkeys(("description", "title", "examples"), _diff_documentation),
    **dict.fromkeys(("is_base", "links", "name"), _diff_glance),
    **dict.fromkeys(_SUBSCHEMA_KEYWORDS, _diff_subschema),
    **dict.fromkeys(("patternProperties", "definitions", "$defs", "dependentSchemas"), _diff_schema_map),
}


# --- plain values --------------------------------------------------------------------------------------


def _diff_value(old: Any, new: Any, path: str, reported: _Reported, make: _MakeChange) -> Iterator[Change]:
    """Changes between two JSON values along the reported paths: objects member by member, arrays
    re-aligned, anything else (or a value reported whole) one change."""
    if not reported:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in reported.keys(old, new):
            yield from _diff_value(
                old.get(key, ABSENT), new.get(key, ABSENT), pointer_join(path, key), reported.child(key), make
            )
    elif isinstance(old, list) and isinstance(new, list):
        yield from _diff_sequence(old, new, path, reported, lambda o, n, p, r: _diff_value(o, n, p, r, make), make)
    else:
        yield make(path, old, new)


def _diff_sequence(
    old: list[Any], new: list[Any], path: str, reported: _Reported, pair: _DiffPair, make: _MakeChange
) -> Iterator[Change]:
    """Changes between two ordered arrays deepdiff reported, re-aligned with difflib: runs of equal length
    replaced item by item via ``pair``, every other inserted (deleted) item one change at its index in the
    new (old) array. A replaced pair at the same index was compared by deepdiff already (``reported``); a
    pair whose index moved is put to deepdiff again."""
    for i, j in align(old, new):
        if i is not None and j is not None:
            inside = reported.child(i) if i == j else _detect(old[i], new[j])
            yield from pair(old[i], new[j], pointer_join(path, j), inside)
        elif i is not None:
            yield make(pointer_join(path, i), old[i], ABSENT)
        elif j is not None:
            yield make(pointer_join(path, j), ABSENT, new[j])


# --- building blocks -----------------------------------------------------------------------------------


def _change(rule: str, path: str, scope: _Scope, old: Any, new: Any, *, read_only: bool | None = None) -> Change:
    """A ``Change`` with the severity of ``rule``, re-labelled under ``additionalProperties``.

    ``read_only`` defaults to the enclosing property's state: old document for a removal, else new.
    """
    if scope.in_additional and rule not in _UNCHANGED_UNDER_ADDITIONAL:
        widening = rule in _WIDENING_RULES
        rule = "additional-properties-widened" if widening else "additional-properties-narrowed"
    if read_only is None:
        read_only = scope.read_only_old if new is ABSENT else scope.read_only_new
    writable, read_only_severity = SEVERITIES[rule]
    return Change(path, rule, read_only_severity if read_only else writable, old, new)


def _info_change(path: str, old: Any, new: Any) -> Change:
    """A ``value-changed`` at severity info, for keys no client validates."""
    return Change(path, "value-changed", Severity.INFO, old, new)


def _keys(value: Any) -> set[str]:
    """The keys of an object; none for ``ABSENT`` or any other value."""
    return set(value) if isinstance(value, Mapping) else set()


def _object_or_empty(value: Any) -> Mapping[str, Any] | None:
    """An object as is, ``ABSENT`` as an empty object, anything else ``None``."""
    if value is ABSENT:
        return {}
    return value if isinstance(value, Mapping) else None


def _names(value: Any) -> set[str] | None:
    """The names of a ``required`` value (``ABSENT`` means none), or ``None`` when it is not a string list."""
    if value is ABSENT:
        return set()
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return set(value)
    return None


def _type_set(value: Any) -> frozenset[str] | None:
    """The type names of a ``type`` value, ``_ANY_TYPE`` when absent, ``None`` when malformed."""
    if value is ABSENT:
        return _ANY_TYPE
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and value and all(isinstance(name, str) for name in value):
        return frozenset(value)
    return None


def _is_limit(value: Any) -> bool:
    """Whether a length limit is absent or a number (``bool`` is not a number in JSON)."""
    return value is ABSENT or (isinstance(value, int | float) and not isinstance(value, bool))


def _property_names(schema: Mapping[str, Any]) -> set[str]:
    """The names under a schema's ``properties`` (none when it has no such object)."""
    properties = schema.get("properties")
    return set(properties) if isinstance(properties, Mapping) else set()


def _property(schema: Mapping[str, Any], name: str) -> Any:
    """The subschema of property ``name`` in ``schema``, or ``ABSENT``."""
    properties = schema.get("properties")
    return properties.get(name, ABSENT) if isinstance(properties, Mapping) else ABSENT


def _order(change: Change) -> tuple[str, str, str, str]:
    """Sort key: path, rule, then the values (several enum values can share a path and rule)."""
    return change.path, change.rule, _sort_text(change.old), _sort_text(change.new)


def _sort_text(value: Any) -> str:
    """A value's canonical JSON text for ordering; empty for ``ABSENT``."""
    return "" if value is ABSENT else set_key(value)
