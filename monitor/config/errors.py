"""Configuration problems: collected from every step of loading, told once each, each naming its field.

A problem is a location in the YAML data (keys and list indexes) and a sentence. It is shown as
``clouds[5] (huawei-iam).auth.password: environment variable HWC_IAM_PASSWORD is not set``: a list entry with a
``name`` is named, so nobody has to count entries.

pydantic's locations also name union branches (``list[str]``, ``literal['auto']``), discriminator tags
(``password`` in ``auth.password.password``) and validator wrappers (``function-after[...]``): they are not keys the
user wrote, so :func:`data_path` walks the data alongside and keeps only the keys. A validator that checks
several fields at once raises :class:`FieldProblem` to put its complaint on the field concerned.

Each problem is told once: an unset ``${VAR}`` is reported where it is written, and nothing else is reported at or
below that place, as whatever else goes wrong there (an empty password, an empty URL) has that one cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Location = tuple[int | str, ...]
"""Keys and list indexes from the top of the YAML data to a value."""

_TAGS = {
    "auth": "none, token, password, application_credential, aksk or cloud",
    "channels": "webhook, slack or alertmanager",
}
_NAME_SHOWN = 63  # names are at most 63 characters; a longer (invalid) one is cut
_OTHER_PLACES_SHOWN = 3  # an unset variable used in more places: the first few, and how many more


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one line per invalid entry."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


class FieldProblem(ValueError):
    """A validator's complaint about one field (``field``: a dotted path below the model that raised it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: where (:data:`Location`), what (a sentence), and whether it is an unset ``${VAR}``."""

    path: Location
    message: str
    unset_variable: bool = False


def report(problems: Iterable[Problem], data: Any) -> list[str]:
    """The lines of a :class:`ConfigError`: each problem once, named by :func:`where`.

    A problem at or below the place of an unset variable is dropped (the variable is its cause), and so is a
    line that repeats an earlier one.
    """
    problems = list(problems)
    unset = [p.path for p in problems if p.unset_variable]
    uses: dict[str, list[str]] = {}  # an unset variable's message → every place it is written, first first
    for problem in problems:
        if problem.unset_variable:
            uses.setdefault(problem.message, []).append(where(problem.path, data))
    lines: list[str] = []
    for problem in problems:
        if problem.unset_variable:
            line = _unset_line(problem.message, uses.pop(problem.message, []))
        elif any(problem.path[: len(u)] == u for u in unset):
            continue
        else:
            line = f"{where(problem.path, data)}: {problem.message}"
        if line and line not in lines:
            lines.append(line)
    return lines


def _unset_line(message: str, places: list[str]) -> str:
    """One line per unset variable, however often it is used (a YAML anchor repeats it in each cloud)."""
    if not places:
        return ""  # told already, at its first place
    first, others = places[0], list(dict.fromkeys(places[1:]))
    shown = others[:_OTHER_PLACES_SHOWN]
    more = f" and {len(others) - len(shown)} more" if len(others) > len(shown) else ""
    also = f" (also used by {', '.join(shown)}{more})" if shown else ""
    return f"{first}: {message}{also}"


def where(path: Location, data: Any) -> str:
    """``clouds[5] (huawei-iam).auth.password``: the path, with each list entry that has a ``name`` named."""
    out, node = "", data
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            out += f"[{part}]{_label(node)}"
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _label(node: Any) -> str:
    name = node.get("name") if isinstance(node, dict) else None
    if not isinstance(name, str) or not name:
        return ""
    return f" ({name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + '…'})"


def validation_problems(errors: Iterable[Any], data: Any, prefix: Location = ()) -> list[Problem]:
    """Problems from pydantic's ``ValidationError.errors()`` over ``data`` (found at ``prefix``).

    Where a value could take several shapes (a list or ``auto``), only the errors of the shape it has are kept.
    """
    found: list[tuple[Problem, bool]] = []
    for error in errors:
        path, literal_branch = data_path(error["loc"], data)
        problem_error = (error.get("ctx") or {}).get("error")
        if isinstance(problem_error, FieldProblem):
            path += tuple(problem_error.field.split("."))
        found.append((Problem(prefix + path, _message(error, path)), literal_branch))
    shaped = {p.path for p, literal in found if not literal}
    # a literal branch (``auto``) failed beside another branch that matched the value's shape: that one tells
    return [p for p, literal in found if not (literal and p.path in shaped)]


def data_path(loc: Sequence[int | str], data: Any) -> tuple[Location, bool]:
    """The keys and indexes of a pydantic location that are in ``data``; and whether it ends in a literal branch.

    A part is dropped when it is a validator wrapper or union branch (it has a ``[``), the discriminator tag just
    below a mapping with that ``type``, or any name below a value that is not a mapping (a union branch).
    """
    path: list[int | str] = []
    node, entered, literal = data, True, False
    for part in loc:
        if isinstance(part, int):
            path.append(part)
            node, entered = (node[part] if isinstance(node, list) and 0 <= part < len(node) else None), True
        elif "[" in part:
            literal = literal or part.startswith("literal[")
        elif entered and isinstance(node, dict) and part == node.get("type"):
            entered = False  # the discriminator tag: pydantic names the branch after the value of `type`
        elif isinstance(node, dict) or node is None:
            path.append(part)
            node, entered = (node.get(part) if isinstance(node, dict) else None), True
    return tuple(path), literal


def _message(error: Any, path: Location) -> str:
    """pydantic's message as a sentence about the field, for the few kinds whose wording is its own."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r}: use {_expected_tags(path)}"
    if kind == "union_tag_not_found":
        return f"needs a type: {_expected_tags(path)}"
    return str(error["msg"]).removeprefix("Value error, ")


def _expected_tags(path: Location) -> str:
    last = next((part for part in reversed(path) if isinstance(part, str)), "")
    return _TAGS.get(last, "see the documentation of this section")
