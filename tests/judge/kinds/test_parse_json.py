"""canonical.parse_json: the strict JSON half of parse_document, shared by every kind."""

from __future__ import annotations

import pytest

from monitor.domain import FailureReason
from monitor.judge.canonical import MAX_DEPTH, DocumentError, parse_document, parse_json


@pytest.mark.parametrize(
    ("body", "value"), [(b"[1, 2]", [1, 2]), (b'"x"', "x"), (b"null", None), (b'{"a": {}}', {"a": {}})]
)
def test_any_json_value_parses_whatever_its_type(body: bytes, value: object) -> None:
    assert parse_json(body) == value


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2}',
        b"[NaN]",
        b"[1e400]",
        b"\xff\xfe",
        b'{"a": ',
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    ],
)
def test_what_parse_document_refuses_as_json_parse_json_refuses_too(body: bytes) -> None:
    for parse in (parse_json, parse_document):
        with pytest.raises(DocumentError) as caught:
            parse(body)
        assert caught.value.reason is FailureReason.INVALID_JSON


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert parse_json(b'\xef\xbb\xbf{"versions": []}') == {"versions": []}
