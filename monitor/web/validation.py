"""A request FastAPI refused, told as a sentence: which input, what it must be — never pydantic's internals.

FastAPI reports a bad request as pydantic error entries (``{"type", "loc", "msg", "ctx"}``). The API answers
400 with one sentence for the first of them, e.g. ``limit must be at least 1`` or ``fingerprints[0] must be 8
to 64 hexadecimal characters: a fingerprint from drift, or its start``:

* the input is named as a client writes it: the query or path parameter, or the body field with list
  indexes in brackets; the branch tags pydantic adds for a union (``list[constrained-str]``, ``none``) are
  left out, and so are the entries of the ``null`` branch when another branch says more;
* a pattern is told in words (:data:`monitor.web.models.PATTERN_RULES`);
* a body that is not JSON says so with the parser's reason (``the request body is not valid JSON:
  Expecting ',' delimiter``); one that is JSON but not an object says it must be one.

The input's value is never repeated: it may be long, or a secret sent to the wrong field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from monitor.web.models import PATTERN_RULES

_NOT_AN_OBJECT: Final = ("model_attributes_type", "dict_type", "model_type")


def message(errors: Sequence[Mapping[str, Any]]) -> str:
    """The sentence for the first meaningful error of ``errors`` (FastAPI's ``RequestValidationError.errors()``)."""
    if not errors:
        return "the request is not valid"
    useful = [e for e in errors if e.get("type") != "none_required"] or list(errors)
    error = useful[0]
    kind, location = str(error.get("type", "")), list(error.get("loc", ()))
    if location[:1] == ["body"] and (kind == "json_invalid" or (kind in _NOT_AN_OBJECT and len(location) == 1)):
        return _body(kind, error)
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    where = _where(location)
    if not where:  # the whole body: a rule across its fields (the model's own sentence)
        return str(error.get("msg", "the request body is not valid")).removeprefix("Value error, ")
    tell = _SENTENCES.get(kind)
    return f"{where} {tell(ctx)}" if tell else f"{where} {_plain(str(error.get('msg', '')))}"


def _body(kind: str, error: Mapping[str, Any]) -> str:
    if kind == "json_invalid":
        reason = str((error.get("ctx") or {}).get("error", "")).strip()
        return f"the request body is not valid JSON: {reason}" if reason else "the request body is not valid JSON"
    return "the request body must be a JSON object"


def _where(location: Sequence[Any]) -> str:
    """``fingerprints[0]`` from ``["body", "fingerprints", "list[constrained-str]", 0]``; ``limit`` from
    ``["query", "limit"]``. A body field is its first name: the API's bodies are flat objects."""
    parts = list(location[1:]) if location[:1] in (["query"], ["path"], ["body"], ["header"]) else list(location)
    names = [p for p in parts if isinstance(p, str)]
    if not names:
        return ""
    return names[0] + "".join(f"[{p}]" for p in parts if isinstance(p, int))


def _plain(text: str) -> str:
    """pydantic's own words for an error type not in the table, as the rest of a sentence after the input's name:
    ``Input should be a valid UUID`` → ``must be a valid UUID``."""
    text = text.removeprefix("Value error, ")
    if text.startswith("Input should be "):
        return "must be " + text.removeprefix("Input should be ")
    return f"is not valid: {text[:1].lower() + text[1:]}" if text else "is not valid"


def _number(value: Any) -> Any:
    """``0`` for ``0.0``: a bound as a person writes it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _pattern(ctx: Mapping[str, Any]) -> str:
    return PATTERN_RULES.get(str(ctx.get("pattern", "")), "is not in the expected form")


def _choices(ctx: Mapping[str, Any]) -> str:
    expected = str(ctx.get("expected", ""))
    if expected in ("True", "False"):  # Literal[True]: JSON spells it lower-case
        return f"must be {expected.lower()}"
    return f"must be one of: {expected.replace(' or ', ', ')}"


_SENTENCES: Final[dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "missing": lambda ctx: "is required",
    "extra_forbidden": lambda ctx: "is not a field of this request",
    "string_pattern_mismatch": _pattern,
    "string_too_short": lambda ctx: f"must have at least {ctx.get('min_length')} character(s)",
    "string_too_long": lambda ctx: f"must have at most {ctx.get('max_length')} characters",
    "string_type": lambda ctx: "must be a string",
    "too_short": lambda ctx: f"must list at least {ctx.get('min_length')} item(s)",
    "too_long": lambda ctx: f"must list at most {ctx.get('max_length')} items",
    "list_type": lambda ctx: "must be a list",
    "int_parsing": lambda ctx: "must be a whole number",
    "int_type": lambda ctx: "must be a whole number",
    "int_from_float": lambda ctx: "must be a whole number",
    "float_parsing": lambda ctx: "must be a number",
    "float_type": lambda ctx: "must be a number",
    "finite_number": lambda ctx: "must be a finite number",
    "bool_parsing": lambda ctx: "must be true or false",
    "bool_type": lambda ctx: "must be true or false",
    "greater_than": lambda ctx: f"must be more than {_number(ctx.get('gt'))}",
    "greater_than_equal": lambda ctx: f"must be at least {_number(ctx.get('ge'))}",
    "less_than": lambda ctx: f"must be less than {_number(ctx.get('lt'))}",
    "less_than_equal": lambda ctx: f"must be at most {_number(ctx.get('le'))}",
    "literal_error": _choices,
    "enum": _choices,
    "datetime_parsing": lambda ctx: "must be an RFC 3339 date-time (2026-01-31T00:00:00Z)",
    "datetime_from_date_parsing": lambda ctx: "must be an RFC 3339 date-time (2026-01-31T00:00:00Z)",
    "datetime_type": lambda ctx: "must be an RFC 3339 date-time (2026-01-31T00:00:00Z)",
}
