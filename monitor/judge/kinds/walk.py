"""The building blocks the kinds' classifiers share: an exact walk over two JSON values; pure functions.

The documents of the non-schema kinds are small keyed maps (versions by id, extensions by alias, headers by
name), so a walk that compares members directly is exact and cheap; no diff library is needed to find the
members that differ. Two values are equal when their canonical JSON texts are (``canonical.set_key``): JSON
equality, not Python's, so ``1`` against ``1.0`` or ``true`` against ``1`` is a difference, as it is in the
canonical hash, and a walk reports nothing exactly when the canonical JSON texts of its inputs are equal.

Each difference is reported once, at the highest point where it is whole: a member added or removed is one
change carrying its whole value. Arrays are re-aligned with ``difflib.SequenceMatcher`` as in
``monitor.judge.kinds.schema.rules``: an inserted (deleted) item is one change at its index in the new (old)
array, a run replaced by one of the same length is compared item by item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from monitor.domain import ABSENT, Change, pointer_join
from monitor.judge.canonical import align, set_key

MakeChange = Callable[[str, Any, Any], Change]
"""Builds the change for one difference: ``(path, old, new)``, ``ABSENT`` for a missing side."""

DiffMember = Callable[[Any, Any, str], Iterator[Change]]
"""Classifies one member present on at least one side and different: ``(old, new, path)``."""

_NO_MEMBERS: Final[Mapping[str, Any]] = {}


def same(old: Any, new: Any) -> bool:
    """Whether two JSON values (or ``ABSENT``) are equal as JSON."""
    if old is ABSENT or new is ABSENT:
        return old is new
    return set_key(old) == set_key(new)


def members(value: Any) -> Mapping[str, Any]:
    """An object as it is; anything else (``ABSENT`` included) as an object with no members."""
    return value if isinstance(value, Mapping) else _NO_MEMBERS


def diff_members(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    path: str,
    handlers: Mapping[str, DiffMember],
    default: DiffMember,
) -> Iterator[Change]:
    """The changes between two objects: every member that differs, in name order, classified by the handler
    for its name (``default`` for names without one)."""
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name, ABSENT), new.get(name, ABSENT)
        if not same(before, after):
            yield from handlers.get(name, default)(before, after, pointer_join(path, name))


def diff_values(old: Any, new: Any, path: str, make: MakeChange) -> Iterator[Change]:
    """The changes between two JSON values (either may be ``ABSENT``): objects member by member, arrays
    re-aligned, anything else (or a side missing, or two different JSON kinds) one change via ``make``."""
    if same(old, new):
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        yield from diff_members(old, new, path, {}, lambda o, n, p: diff_values(o, n, p, make))
    elif isinstance(old, list) and isinstance(new, list):
        yield from _diff_sequence(old, new, path, make)
    else:
        yield make(path, old, new)


def _diff_sequence(old: list[Any], new: list[Any], path: str, make: MakeChange) -> Iterator[Change]:
    """Changes between two arrays, re-aligned (:func:`~monitor.judge.canonical.align`): a run replaced by one of the
    same length item by item, every other inserted (deleted) item one change at its index in the new (old)
    array."""
    for i, j in align(old, new):
        if i is not None and j is not None:
            yield from diff_values(old[i], new[j], pointer_join(path, j), make)
        elif i is not None:
            yield make(pointer_join(path, i), old[i], ABSENT)
        elif j is not None:
            yield make(pointer_join(path, j), ABSENT, new[j])


def sorted_changes(changes: Iterable[Change]) -> list[Change]:
    """``changes`` in the stable order every classifier returns: path, rule, then the values."""
    return sorted(changes, key=_order)


def _order(change: Change) -> tuple[str, str, str, str]:
    """Sort key: path, rule, then the values' canonical JSON (empty for ``ABSENT``)."""
    return change.path, change.rule, _sort_text(change.old), _sort_text(change.new)


def _sort_text(value: Any) -> str:
    return "" if value is ABSENT else set_key(value)
