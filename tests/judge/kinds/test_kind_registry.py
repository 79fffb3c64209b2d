"""The registry of kinds, and docs/change-rules.md listing every rule of every kind with its severities."""

from __future__ import annotations

import re

import pytest

from monitor.judge.kinds import KIND_NAMES, get_kind
from tests.support.paths import ROOT

RULES_DOC = ROOT / "docs" / "change-rules.md"
_ROW = re.compile(r"^\| ([a-z][a-z0-9-]*) \|(.*)\|$")
_SEVERITY_WORDS = ("breaking", "warning", "info", "cosmetic")


def documented(name: str) -> dict[str, set[str]]:
    """Rule id → severities of the table in the section of kind ``name`` (schema: the table before any section)."""
    text = RULES_DOC.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    if name == "schema":
        section = sections[0]
    else:
        (section,) = [s for s in sections if s.startswith(f"Kind `{name}`")]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            cells = match.group(2).split("|")
            table[match.group(1)] = {word for cell in cells[1:] for word in _SEVERITY_WORDS if word in cell}
    return table


def test_the_kinds_are_the_four_named_ones_in_order() -> None:
    assert KIND_NAMES == ("schema", "versions", "extensions", "json")
    assert [get_kind(name).name for name in KIND_NAMES] == list(KIND_NAMES)


def test_an_unknown_kind_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="schema, versions, extensions, json"):
        get_kind("openapi")


def test_version_discovery_accepts_300_multiple_choices_and_the_others_only_200() -> None:
    assert {name: get_kind(name).statuses for name in KIND_NAMES} == {
        "schema": frozenset({200}),
        "versions": frozenset({200, 300}),
        "extensions": frozenset({200}),
        "json": frozenset({200}),
    }


@pytest.mark.parametrize("name", KIND_NAMES)
def test_the_rules_doc_lists_exactly_the_rules_of_each_kind_with_their_severities(name: str) -> None:
    expected = {rule: {s.value for s in severities} for rule, severities in get_kind(name).rules.items()}
    table = documented(name)

    if name == "schema":  # its table has a dash cell where diffing.SEVERITIES keeps an unreachable column
        assert set(table) == set(expected)
    else:
        assert table == expected
