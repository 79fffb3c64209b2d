"""The log formats: the JSON formatter's fields, and the library loggers quietened above DEBUG."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.cli import build_parser
from monitor.logs import NOISY_LOGGERS, JsonLogFormatter, formatter, setup_logging


def _record(
    message: str = "polled %s", args: tuple[Any, ...] = ("sim/r1/images",), exc_info: Any = None, **extra: Any
) -> logging.LogRecord:
    record = logging.getLogger("monitor.poll.service").makeRecord(
        "monitor.poll.service", logging.WARNING, __file__, 1, message, args, exc_info, extra=extra
    )
    record.created = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC).timestamp()
    return record


def _json(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonLogFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_a_json_line_has_time_level_logger_and_message() -> None:
    assert _json(_record()) == {
        "time": "2025-03-04T05:06:07.890+00:00",
        "level": "WARNING",
        "logger": "monitor.poll.service",
        "message": "polled sim/r1/images",
    }


def test_a_json_line_carries_the_target_labels_passed_with_extra() -> None:
    data = _json(_record(extra_field="x", cloud="sim", region="r1", schema="images"))
    assert (data["cloud"], data["region"], data["schema"]) == ("sim", "r1", "images")
    assert datetime.fromisoformat(data["time"]).utcoffset() is not None


def test_other_extra_attributes_never_reach_the_json_line() -> None:
    data = _json(_record(password="hunter2-not-logged", url="http://127.0.0.1/x"))
    assert set(data) == {"time", "level", "logger", "message"}


def test_a_json_line_has_the_traceback_text_of_an_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    data = _json(_record("poll failed", (), exc_info=exc_info, cloud="sim"))
    assert data["message"] == "poll failed" and data["cloud"] == "sim"
    assert data["exc_info"].startswith("Traceback") and "RuntimeError: boom" in data["exc_info"]


def test_non_ascii_messages_stay_one_valid_json_line() -> None:
    data = _json(_record("gelöscht: %s", ('a "quoted"\nname',)))
    assert data["message"] == 'gelöscht: a "quoted"\nname'


def test_an_unknown_format_is_refused() -> None:
    assert isinstance(formatter("text"), logging.Formatter) and not isinstance(formatter("text"), JsonLogFormatter)
    with pytest.raises(ValueError, match="unknown log format"):
        formatter("xml")


def test_the_cli_offers_text_and_json_with_text_by_default() -> None:
    parser = build_parser()
    assert parser.parse_args(["config", "check"]).log_format == "text"
    assert parser.parse_args(["--log-format", "json", "config", "check"]).log_format == "json"
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "xml", "config", "check"])


@contextmanager
def fresh_logging() -> Iterator[None]:
    """A root logger without handlers (as in a new process), inside the test itself: pytest adds its
    capturing handlers after the fixtures are set up. Everything is restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: logging.getLogger(name).level for name in NOISY_LOGGERS})
    root.handlers.clear()
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_setup_writes_json_lines_and_quietens_the_libraries_above_debug() -> None:
    stream = io.StringIO()
    with fresh_logging():
        setup_logging("INFO", "json", stream)
        logging.getLogger("monitor.test").info("hello", extra={"region": "r2"})
        logging.getLogger("httpx").info("a request line nobody needs at INFO")
        assert all(logging.getLogger(name).level == logging.WARNING for name in NOISY_LOGGERS)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["region"] == "r2"


def test_setup_at_debug_leaves_the_library_loggers_on() -> None:
    stream = io.StringIO()
    with fresh_logging():
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        setup_logging("DEBUG", "text", stream)
        logging.getLogger("httpcore").debug("connection opened")
    assert " DEBUG   httpcore: connection opened" in stream.getvalue()
