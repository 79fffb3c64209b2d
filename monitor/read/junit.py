"""JUnit XML, the test-report format CI systems show natively (GitLab, Jenkins, GitHub through its actions).

The subset they all read: ``<testsuites>`` of ``<testsuite name tests failures errors skipped>`` of
``<testcase classname name>``, each with at most one ``<failure message type>`` (Jenkins keeps only one) or one
``<skipped message>``. Text is escaped by the XML writer; characters XML 1.0 cannot carry at all (control
characters a document could hold) are replaced by ``?`` so the report always parses.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Case:
    """One test case: ``failure`` (its message) when it failed, ``skipped`` (why) when it was not judged."""

    classname: str
    name: str
    failure: str | None = None
    details: str = ""  # the failure's text
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    cases: tuple[Case, ...]


def junit_xml(title: str, suites: Sequence[Suite]) -> str:
    """The JUnit XML document (UTF-8 declared) of ``suites`` under ``<testsuites name=title>``."""
    root = ET.Element("testsuites", {"name": _text(title), **_counts([c for s in suites for c in s.cases])})
    for suite in suites:
        element = ET.SubElement(root, "testsuite", {"name": _text(suite.name), **_counts(suite.cases)})
        for case in suite.cases:
            _case(element, case)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case(parent: ET.Element, case: Case) -> None:
    element = ET.SubElement(parent, "testcase", classname=_text(case.classname), name=_text(case.name))
    if case.failure is not None:
        failure = ET.SubElement(element, "failure", message=_text(case.failure), type="failure")
        failure.text = _text(case.details or case.failure)
    elif case.skipped is not None:
        ET.SubElement(element, "skipped", message=_text(case.skipped))


def _counts(cases: Sequence[Case]) -> dict[str, str]:
    failures = sum(1 for c in cases if c.failure is not None)
    skipped = sum(1 for c in cases if c.failure is None and c.skipped is not None)
    return {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}


def _text(value: str) -> str:
    return _NOT_XML.sub("?", value)
