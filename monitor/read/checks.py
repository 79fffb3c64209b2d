"""What a reader may ask for: one rule, and one sentence, for every label, number and time the CLI and the API take.

Each check returns the parsed value or raises :class:`Invalid` with a sentence that names the input, the value
(cut short) and what is accepted: ``limit must be a whole number from 1 to 1000, got '-5'``. The command line
prints the sentence and exits 2; the API answers 400 with it. Callers pass the name their users know
(``--limit`` on the command line, ``limit`` in a query).

The rules:

* a **label** (cloud, region, schema) must be one the configured targets have — discovered regions and
  the targets already in the database included; a value that names nothing gets the list of those that do;
* a **whole number** (a limit, a snapshot or change id) lies in the range the caller states; ids run
  from 1 to :data:`MAX_ID`, the largest both databases store;
* a **duration** is ``300``, ``300s``, ``5m``, ``1.5h``, ``250ms`` or ``7d``, more than zero unless said;
* a **moment** (``since``, ``--start``) is a duration ago (``24h``) or an ISO 8601 / RFC 3339 date-time
  (naive: UTC);
* a **cursor** (``after`` of ``GET /api/targets``) is one this module made (:func:`target_cursor`): opaque to
  the client, the labels of the last target of a page, base64url-encoded JSON; a value in another form is
  invalid, one in that form that no page gave names nothing (NotFound, HTTP 404).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Final

from monitor.config.types import parse_duration
from monitor.domain import TargetKey
from monitor.read.model import NotFound, parse_since

MAX_ID: Final = 2**63 - 1  # the largest id both databases store
MOMENT_RULE: Final = "a duration ago (24h, 7d) or an ISO 8601 date-time (2026-01-31T00:00:00Z)"
DURATION_RULE: Final = "a duration like 90s, 15m, 2h or 7d"
MAX_CURSOR: Final = 400  # characters: three labels of at most 63 characters each (as stored), encoded
CURSOR_PATTERN: Final = f"^[A-Za-z0-9_-]{{1,{MAX_CURSOR}}}$"
CURSOR_RULE: Final = f"must be the cursor of a next link: 1 to {MAX_CURSOR} letters, digits, - and _"
_CURSOR = re.compile(CURSOR_PATTERN)
_WHOLE = re.compile(r"-?[0-9]{1,20}")  # 20 digits: past any bound here, and short of int()'s digit limit


class Invalid(ValueError):
    """A value the caller gave is not acceptable (HTTP 400, exit code 2); the message names it and the rule."""


def shown(value: object, width: int = 40) -> str:
    """``value`` quoted for a message, cut to ``width`` characters: an error never echoes a long input."""
    text = str(value)
    return repr(text if len(text) <= width else text[:width] + "…")


def whole_number(name: str, value: str | int, low: int = 1, high: int = MAX_ID) -> int:
    """``value`` as an int in ``low..high``; raises Invalid."""
    text = str(value).strip()
    if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
        raise Invalid(f"{name} must be a whole number from {low} to {high}, got {shown(value)}")
    return int(text)


def duration(name: str, value: str, high: float | None = None, *, zero: bool = False) -> float:
    """``value`` in seconds: more than 0 (``zero``: or 0), at most ``high``; raises Invalid."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise Invalid(f"{name} must be {DURATION_RULE}, got {shown(value)}") from None
    if seconds < 0 or (seconds == 0 and not zero):
        raise Invalid(f"{name} must be more than 0, got {shown(value)}")
    if high is not None and seconds > high:
        raise Invalid(f"{name} must be at most {high:g} seconds ({high / 86400:g} days), got {shown(value)}")
    return seconds


def moment(name: str, value: str, now: datetime | None = None) -> datetime:
    """A point in time from ``value`` (see the module docstring); raises Invalid."""
    try:
        return parse_since(value, now)
    except ValueError:
        raise Invalid(f"{name} must be {MOMENT_RULE}, got {shown(value)}") from None
    except OverflowError:  # a duration ago before the year 1: since the beginning
        return datetime.min.replace(tzinfo=UTC)


def label(name: str, value: str | None, known: Sequence[str]) -> str | None:
    """``value`` when it is one of ``known`` (None passes: no filter); raises Invalid listing ``known``."""
    if value is not None and value not in known:
        choices = ", ".join(known) if known else "(none known yet: the monitor has found no target)"
        raise Invalid(f"{name} {shown(value, 100)} is not in the configuration; {name} must be one of: {choices}")
    return value


def labels_of(keys: Iterable[TargetKey], clouds: Iterable[str] = ()) -> dict[str, list[str]]:
    """The label values of ``keys`` and the names ``clouds``, sorted, by label name (cloud, region, schema)."""
    found: dict[str, set[str]] = {"cloud": set(clouds), "region": set(), "schema": set()}
    for key in keys:
        found["cloud"].add(key.cloud)
        found["region"].add(key.region)
        found["schema"].add(key.schema)
    return {name: sorted(values) for name, values in found.items()}


def target_cursor(key: TargetKey) -> str:
    """The opaque cursor that resumes a listing of targets after ``key`` (read back by :func:`after_target`)."""
    raw = json.dumps([key.cloud, key.region, key.schema], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def after_target(name: str, value: str) -> TargetKey:
    """The target a cursor of :func:`target_cursor` resumes after. Raises Invalid for a value not in the form of a
    cursor (:data:`CURSOR_PATTERN`), NotFound for one in that form that no page gave (no page starts there, as
    no change has an unknown id)."""
    if not _CURSOR.fullmatch(value):
        raise Invalid(f"{name} {CURSOR_RULE}, got {shown(value)}")
    problem = NotFound(f"{name} names no page: pass the cursor of a next link as the previous page gave it, "
                       f"got {shown(value)}")  # fmt: skip
    try:
        labels = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise problem from None
    if not (isinstance(labels, list) and len(labels) == 3 and all(isinstance(v, str) and v for v in labels)):
        raise problem
    return TargetKey(*labels)
