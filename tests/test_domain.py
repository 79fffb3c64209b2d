"""The plain helpers of the domain: backoff and JSON Pointer joining."""

from __future__ import annotations

import pytest

from monitor.domain import exponential_backoff, pointer_join


@pytest.mark.parametrize(("failures", "expected"), [(0, 2.0), (1, 2.0), (2, 4.0), (3, 8.0), (5, 30.0), (100, 30.0)])
def test_backoff_doubles_from_the_base_up_to_the_cap(failures: int, expected: float) -> None:
    assert exponential_backoff(failures, 2.0, 30.0) == expected


def test_backoff_after_an_outage_of_days_is_the_cap_not_an_overflow() -> None:
    assert exponential_backoff(100_000, 1.0, 300.0) == 300.0


@pytest.mark.parametrize(
    ("path", "token", "expected"),
    [("", "properties", "/properties"), ("/a", 0, "/a/0"), ("/a", "b/c", "/a/b~1c"), ("", "~1", "/~01"),
     ("/x", "", "/x/")],
)  # fmt: skip
def test_pointer_join_escapes_tilde_before_slash(path: str, token: str | int, expected: str) -> None:
    assert pointer_join(path, token) == expected
