"""Logging setup for every command: text lines or one JSON object per line, on stderr.

The JSON form (python-json-logger) has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``;
``cloud``, ``region`` and ``schema`` when the call passed them with ``extra=``; ``exc_info`` (the
traceback text) and ``stack_info`` when present. No other record attribute is written: a field reaches
the log only by being named here, so an ``extra=`` meant for something else cannot leak into it.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from pythonjsonlogger.json import JsonFormatter

FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
CONTEXT_FIELDS: Final = ("cloud", "region", "schema")
NOISY_LOGGERS: Final = (
    "httpx", "httpcore", "aiohttp", "apscheduler", "alembic", "keystoneauth", "urllib3", "stevedore",
)  # fmt: skip


class JsonLogFormatter(JsonFormatter):
    """One JSON object per record with a fixed set of fields (see the module docstring)."""

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                log_data[field] = str(value)
        for field in ("exc_info", "stack_info"):  # filled in by JsonFormatter.format when the record has them
            if message_dict.get(field):
                log_data[field] = message_dict[field]


def formatter(fmt: str) -> logging.Formatter:
    """The formatter for ``fmt`` (``text`` or ``json``); raises ValueError for another name."""
    if fmt == "json":
        return JsonLogFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")


def setup_logging(level: str, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every log record at ``level`` or above to ``stream`` (stderr) in ``fmt``.

    Like ``logging.basicConfig``, does nothing to a root logger that already has handlers (a test
    runner's). Above DEBUG the chatty libraries log warnings only; at DEBUG every library's debug log is
    on, too: none of them is given a credential it would print. Raises ValueError for an unknown ``fmt``.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
    if level == "DEBUG":
        return
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
