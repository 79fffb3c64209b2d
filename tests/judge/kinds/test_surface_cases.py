"""Every kind's classify() against the data-driven cases in tests/data/surface_cases/<case>/.

A case is ``case.json`` (``kind``, optional ``old_headers``/``new_headers`` as served, ``about``), ``old.json``
and ``new.json`` (bodies: real documents from tests/data/openstack_surface and variations of them) and
``expected.json``: the changes in classify's order, as ``{"path", "rule", "severity", "old", "new"}`` with an
absent side left out. The expectations were written from the tables of docs/change-rules.md, not recorded
from the code.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monitor.domain import ABSENT, Change
from monitor.judge.canonical import canonical_json, canonicalize
from monitor.judge.kinds import KIND_NAMES, DocumentKind, get_kind
from tests.support.paths import DATA

DATA = DATA
CASES_DIR = DATA / "surface_cases"
CASES = sorted(path for path in CASES_DIR.iterdir() if path.is_dir())
DIFF_CASES = sorted(path for path in (DATA / "diff_cases").iterdir() if path.is_dir())


@dataclass(frozen=True)
class Case:
    kind: DocumentKind
    old: dict[str, Any]
    new: dict[str, Any]
    expected: list[dict[str, Any]]


def lower_names(headers: dict[str, str]) -> dict[str, str]:
    """Response headers as the fetcher hands them over: lower-case names."""
    return {name.lower(): value for name, value in headers.items()}


def load_case(case: Path) -> Case:
    """A case's kind, its documents normalised by that kind, and its expected changes."""
    spec = json.loads((case / "case.json").read_text(encoding="utf-8"))
    kind = get_kind(spec["kind"])
    old = kind.normalise((case / "old.json").read_bytes(), lower_names(spec.get("old_headers", {})))
    new = kind.normalise((case / "new.json").read_bytes(), lower_names(spec.get("new_headers", {})))
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    return Case(kind, old, new, expected)


def change_to_dict(change: Change) -> dict[str, Any]:
    """The expected.json form of a change: severity by value, absent sides left out."""
    result: dict[str, Any] = {"path": change.path, "rule": change.rule, "severity": change.severity.value}
    if change.old is not ABSENT:
        result["old"] = change.old
    if change.new is not ABSENT:
        result["new"] = change.new
    return result


def resolve(doc: Any, pointer: str) -> Any:
    """The value an RFC 6901 pointer designates in ``doc``; raises KeyError/IndexError if there is none."""
    node = doc
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def case_kind(case: Path) -> str:
    return str(json.loads((case / "case.json").read_text(encoding="utf-8"))["kind"])


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_case_yields_exactly_the_expected_changes(case: Path) -> None:
    loaded = load_case(case)

    assert [change_to_dict(c) for c in loaded.kind.classify(loaded.old, loaded.new)] == loaded.expected


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_no_change_exactly_when_canonical_json_is_equal(case: Path) -> None:
    loaded = load_case(case)

    changes = loaded.kind.classify(loaded.old, loaded.new)

    assert (changes == []) == (canonical_json(loaded.old) == canonical_json(loaded.new))


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_every_path_resolves_in_the_document_it_points_into(case: Path) -> None:
    loaded = load_case(case)

    for change in loaded.kind.classify(loaded.old, loaded.new):
        side = loaded.old if change.new is ABSENT else loaded.new
        found = resolve(side, change.path)
        if loaded.kind.name != "schema":  # schema changes of enum/required values point at the array
            assert found == (change.old if change.new is ABSENT else change.new)


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_normalised_documents_are_left_alone_by_canonicalize(case: Path) -> None:
    loaded = load_case(case)

    for doc in (loaded.old, loaded.new):
        assert canonicalize(doc) == doc
        assert json.loads(canonical_json(doc)) == doc


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_classify_is_deterministic_and_leaves_its_inputs_alone(case: Path) -> None:
    loaded = load_case(case)
    old_copy, new_copy = copy.deepcopy(loaded.old), copy.deepcopy(loaded.new)

    first = loaded.kind.classify(loaded.old, loaded.new)

    assert loaded.kind.classify(loaded.old, loaded.new) == first
    assert (loaded.old, loaded.new) == (old_copy, new_copy)


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_the_reverse_case_has_a_change_exactly_when_the_case_has_one(case: Path) -> None:
    loaded = load_case(case)

    assert bool(loaded.kind.classify(loaded.new, loaded.old)) == bool(loaded.expected)


def test_every_case_names_a_known_kind_and_only_rules_and_severities_of_that_kind() -> None:
    for case in CASES:
        loaded = load_case(case)
        for entry in loaded.expected:
            assert entry["rule"] in loaded.kind.rules, (case.name, entry["rule"])
            allowed = {severity.value for severity in loaded.kind.rules[entry["rule"]]}
            assert entry["severity"] in allowed, (case.name, entry)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_rule_and_severity_of_every_kind_has_a_case(name: str) -> None:
    kind = get_kind(name)
    seen = {(e["rule"], e["severity"]) for case in CASES if case_kind(case) == name for e in load_case(case).expected}
    if name == "schema":  # the schema rules have their own cases (tests/test_diffing.py)
        seen |= {
            (e["rule"], e["severity"])
            for case in DIFF_CASES
            for e in json.loads((case / "expected.json").read_text(encoding="utf-8"))
        }
        assert {rule for rule, _ in seen} == set(kind.rules)
        return

    assert seen == {(rule, severity.value) for rule, severities in kind.rules.items() for severity in severities}
