"""The consumers matrix and check results rendered for people and CI: text, Markdown and JUnit XML that a real XML
parser reads, whatever a document put into a reason."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

from monitor.domain import ABSENT, Change, FailureReason, PollResult, Severity, TargetKey
from monitor.judge.consumers import Consumer, RegionVerdict, Requirement, Verdict
from monitor.read.check_reports import check_junit, check_markdown, gated
from monitor.read.consumer_reports import consumers_junit, consumers_markdown, consumers_text
from monitor.read.consumers import ConsumersMatrix, ConsumerView

MICRO = Requirement("815d30ea", "os", "compute-versions", "microversion", "v2.1", "", "2.96")
ENUM = Requirement("8d00a6f1", "g", "images", "contains", None, "/p/enum", ("qcow2|raw",))
CONSUMER = Consumer("tf", "terraform | pipelines", ("os", "g"), (MICRO, ENUM))
NASTY = 'enum lacks \x1b[31mqcow2\x00 <&> "quoted" ]]>'


def verdict(region: str, micro: bool | None, enum: bool | None, reason: str = "why") -> RegionVerdict:
    return RegionVerdict("tf", region, (
        Verdict(MICRO, micro, reason if micro is not True else "v2.1 serves 2.1 to 2.96",
                TargetKey("os", region, "compute-versions")),
        Verdict(ENUM, enum, {False: NASTY, True: "has qcow2|raw", None: reason}[enum],
                TargetKey("g", region, "images")),
    ))  # fmt: skip


MATRIX = ConsumersMatrix((ConsumerView(CONSUMER, (
    verdict("r1", False, True, "max microversion 2.95 < required 2.96"),
    verdict("r2", True, False),
    verdict("r3", True, None, "no document of g/r3/images yet"),
    verdict("r4", True, True),
)),))  # fmt: skip


def test_junit_is_one_suite_per_consumer_one_case_per_region_and_requirement() -> None:
    root = ElementTree.fromstring(consumers_junit(MATRIX).encode())
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("tf", "8", "2", "1")
    assert [c.get("classname") for c in cases[:2]] == ["tf.r1", "tf.r1"]
    assert cases[0].get("name") == "r1: compute-versions: v2.1 serves microversion 2.96 [815d30ea]"
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("message") == "max microversion 2.95 < required 2.96"
    assert all(len(c.findall("failure")) + len(c.findall("skipped")) <= 1 for c in cases)


def test_junit_survives_control_characters_and_markup_in_a_reason() -> None:
    root = ElementTree.fromstring(consumers_junit(MATRIX).encode())
    failure = root.find("testsuite/testcase[@classname='tf.r2']/failure")
    assert failure is not None
    assert failure.get("message") == 'enum lacks ?[31mqcow2? <&> "quoted" ]]>'


def test_strict_junit_fails_the_unknown_ones_too() -> None:
    strict = ElementTree.fromstring(consumers_junit(MATRIX, strict=True).encode())
    assert strict.get("failures") == "3" and strict.get("skipped") == "0"
    unknown = strict.find("testsuite/testcase[@classname='tf.r3']/failure")
    assert unknown is not None and unknown.get("message") == "no document of g/r3/images yet"


def test_markdown_escapes_what_a_table_cell_cannot_hold() -> None:
    lines = consumers_markdown(MATRIX).splitlines()
    assert lines[:3] == ["| consumer | r1 | r2 | r3 | r4 |", "| --- | --- | --- | --- | --- |",
                         "| tf | **broken** | **broken** | unknown | compatible |"]  # fmt: skip
    item = next(line for line in lines if line.startswith("- tf in r2:"))
    assert 'contains "qcow2\\|raw"' in item and "\\<&\\>" in item and "\n" not in item


def test_text_lists_each_region_with_what_fails() -> None:
    text = consumers_text(MATRIX)
    assert text.splitlines()[0] == "tf (terraform | pipelines): 4 region(s): 1 compatible, 2 broken, 1 unknown"
    assert "  r1  BROKEN     compute-versions: v2.1 serves microversion 2.96 [815d30ea]: max microversion" in text
    assert '  r3  unknown    images: /p/enum contains "qcow2|raw" [8d00a6f1]: no document of g/r3/images yet' in text
    assert "  r4  compatible\n" in text
    assert consumers_text(ConsumersMatrix(())) == "no consumer is judged in any region yet\n"


def _result(region: str, *changes: Change, ok: bool = True) -> PollResult:
    return PollResult(TargetKey("c", region, "images"), datetime(2026, 1, 1, tzinfo=UTC), 0.1, ok=ok,
                      reason=None if ok else FailureReason.TIMEOUT, error=None if ok else "deadline passed",
                      changes=changes)  # fmt: skip


WARNING = Change("/p/enum", "enum-value-added", Severity.WARNING, ABSENT, "vhdx")
BREAKING = Change("/p/min_disk", "property-removed", Severity.BREAKING, {"type": "integer"}, ABSENT)
IGNORED = Change("/p/x", "property-removed", Severity.BREAKING, 1, ABSENT, ignored=True)


def test_check_junit_fails_failed_polls_and_gated_changes_only() -> None:
    results = [_result("r1", WARNING), _result("r2", BREAKING), _result("r3", IGNORED), _result("r4", ok=False)]
    assert [bool(gated(r, "breaking")) for r in results] == [False, True, False, False]
    root = ElementTree.fromstring(check_junit(results, "breaking").encode())
    failures = {c.get("name"): c.find("failure") for c in root.iter("testcase")}
    assert [name for name, failure in failures.items() if failure is not None] == ["c/r2/images", "c/r4/images"]
    assert failures["c/r4/images"].get("message") == "poll failed (timeout): deadline passed"  # type: ignore[union-attr]
    assert ElementTree.fromstring(check_junit(results, None).encode()).get("failures") == "1"
    lines = check_markdown(results, "breaking").splitlines()
    assert [line.split(" | ")[1] for line in lines[2:]] == ["failed", "gated", "changed", "changed"]
