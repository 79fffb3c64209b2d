"""Microversion: parsing and numeric ordering."""

from __future__ import annotations

import pytest

from monitor.judge.kinds.microversion import Microversion, canonical_microversion


def mv(text: str) -> Microversion:
    return Microversion.from_string(text)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [("2.9", "2.10"), ("2.10", "2.100"), ("1.96", "1.111"), ("1.82", "1.96"), ("2.95", "2.96"), ("2.99", "3.0")],
)
def test_microversions_order_part_by_part_as_numbers(lower: str, higher: str) -> None:
    assert mv(lower) < mv(higher)
    assert mv(higher) > mv(lower)
    assert not mv(higher) < mv(lower)


def test_string_and_float_order_would_both_get_these_wrong() -> None:
    assert "2.10" < "2.9" and float("2.10") < float("2.9")  # why a type of its own is needed

    assert mv("2.10") > mv("2.9")


def test_sorting_a_real_release_history() -> None:
    history = ["1.111", "1.82", "1.96", "1.1"]

    assert [str(v) for v in sorted(map(mv, history))] == ["1.1", "1.82", "1.96", "1.111"]


@pytest.mark.parametrize("value", [None, "", "   "])
def test_none_and_empty_mean_no_microversion(value: str | None) -> None:
    assert Microversion.parse(value) is None
    assert canonical_microversion(value) is None


NOT_MICROVERSIONS = ["latest", "2", "v2.1", "2.1.3", "2.x", "2.", ".1", "-1.0", "2,1", "\u00b2.1", "\u0662.\u0661"]


@pytest.mark.parametrize("text", NOT_MICROVERSIONS)
def test_a_string_that_is_not_major_dot_minor_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a microversion"):
        Microversion.parse(text)


def test_from_string_refuses_the_empty_string_that_parse_reads_as_none() -> None:
    with pytest.raises(ValueError):
        Microversion.from_string("")


def test_equal_numbers_are_equal_and_spelled_canonically() -> None:
    assert mv("2.01") == mv("2.1")
    assert str(mv(" 2.01 ")) == "2.1"
    assert canonical_microversion("1.036") == "1.36"
    assert hash(mv("2.1")) == hash(mv("2.01"))
