"""Building blocks of the configuration models: durations, sizes, names, secret files, the base model.

Shared by the models (:mod:`monitor.config.models`, :mod:`monitor.config.cloud`, :mod:`monitor.config.auth`);
nothing here reads the environment.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from monitor.config.errors import FieldProblem
from monitor.config.settings import REGION_RE

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}


def parse_duration(value: Any) -> float:
    """Seconds from ``300``, ``"300s"``, ``"5m"``, ``"1.5h"``, ``"250ms"`` or ``"30d"``; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 300s, 5m or 1h")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 300s, 5m or 1h, got {value!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: Any) -> int:
    """Bytes from ``5242880``, ``"5MiB"`` or ``"512KB"``; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 5242880 or 5MiB")
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like 5242880 or 5MiB, got {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


def require_unique(names: list[str], what: str) -> None:
    """Raises ValueError naming the first ``what`` listed twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is listed twice")
        seen.add(name)


def check_name(value: str, what: str) -> str:
    """A cloud, schema or channel name: lowercase letters, digits, ``.``, ``_``, ``-``; raises ValueError."""
    if not _NAME_RE.match(value):
        raise ValueError(f"invalid {what} name {value!r}: use lowercase letters, digits, '.', '_' or '-' (max 63)")
    return value


def check_region(value: str) -> str:
    """A region name as clouds use them (``cn-north-4``, ``RegionOne``); raises ValueError."""
    if not REGION_RE.match(value):
        raise ValueError(f"invalid region name {value!r}: use letters, digits, '.', '_' or '-' (max 63)")
    return value


def read_secret_files(data: Any, keys: tuple[str, ...]) -> Any:
    """For each ``key`` given as ``<key>_file``, read the file (stripped) into ``key``; raises FieldProblem."""
    if not isinstance(data, dict):
        return data
    for key in keys:
        path = data.get(f"{key}_file")
        if path is None:
            continue
        if data.get(key) is not None:
            raise FieldProblem(f"{key}_file", f"give {key} or {key}_file, not both")
        try:
            data = {**data, key: Path(path).read_text(encoding="utf-8").strip()}
        except OSError as exc:
            raise FieldProblem(f"{key}_file", f"cannot read {str(path)!r}: {exc.strerror}") from None
    return data


def check_regex(value: str) -> str:
    """``value`` when it compiles as a Python regular expression; raises ValueError saying why not."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(check_regex)]
"""A regular expression (``re`` syntax), checked when the config is loaded."""
CloudName = Annotated[str, AfterValidator(partial(check_name, what="cloud"))]
SchemaName = Annotated[str, AfterValidator(partial(check_name, what="schema"))]
ChannelName = Annotated[str, AfterValidator(partial(check_name, what="channel"))]


class Model(BaseModel):
    """Every configuration model: unknown keys refused, frozen once built.

    A model listing ``secret_files`` accepts each of those secrets as ``<key>_file`` too: the file is read
    (stripped) into ``<key>`` before validation; giving both, or an unreadable file, is a config error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret_files: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        return read_secret_files(data, cls.secret_files) if cls.secret_files else data
