"""The results of ``check`` (one poll of every target) rendered for CI: JUnit XML and Markdown.

A target is a test case that fails when its poll failed, or when ``--fail-on`` is given and the poll found a
change at or above that severity (:func:`gated`, the gate the exit code 3 uses); ignored and expected changes
never count. JUnit: one ``<testsuite name="check">``, a ``<testcase classname="<cloud>.<region>"
name="<cloud>/<region>/<schema>">`` per target.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.domain import Change, PollResult, Severity
from monitor.read.junit import Case, Suite, junit_xml
from monitor.read.reports import md_cell


def gated(result: PollResult, fail_on: str | None) -> tuple[Change, ...]:
    """The changes of ``result`` that ``--fail-on`` (``breaking``, ``warning``, ``any`` or None) gates on."""
    if fail_on is None:
        return ()
    threshold = Severity.COSMETIC if fail_on == "any" else Severity(fail_on)
    return tuple(c for c in result.counted_changes if c.severity.rank >= threshold.rank)


def outcome(result: PollResult, fail_on: str | None) -> tuple[str, str]:
    """(``ok``, ``changed``, ``gated`` or ``failed``; what happened in words)."""
    if not result.ok:
        return "failed", f"poll failed ({result.reason}): {result.error or ''}".rstrip(": ")
    if result.first_snapshot:
        return "ok", f"first snapshot {(result.document_sha or '')[:12]}"
    if not result.changes:
        return "ok", "unchanged"
    worst = Severity.worst(*(c.severity for c in result.changes))
    listed = "; ".join(f"{c.severity.value} {c.rule} {c.path}" for c in result.changes[:5])
    more = f" and {len(result.changes) - 5} more" if len(result.changes) > 5 else ""
    state = "gated" if gated(result, fail_on) else "changed"
    return state, f"{len(result.changes)} change(s), worst {worst.value}: {listed}{more}"


def check_junit(results: Sequence[PollResult], fail_on: str | None) -> str:
    """JUnit XML of a check: a failed poll, or a change ``fail_on`` gates on, is a failure."""
    cases = []
    for result in results:
        key = result.target
        state, words = outcome(result, fail_on)
        failure = words if state in ("failed", "gated") else None
        cases.append(Case(f"{key.cloud}.{key.region}", str(key), failure, words))
    return junit_xml("schema-drift-monitor check", [Suite("check", tuple(cases))])


def check_markdown(results: Sequence[PollResult], fail_on: str | None) -> str:
    """A table of the targets, failed and gated ones first."""
    order = {"failed": 0, "gated": 1, "changed": 2, "ok": 3}
    rows = sorted(
        ((outcome(r, fail_on), r) for r in results), key=lambda item: (order[item[0][0]], str(item[1].target))
    )
    lines = ["| target | outcome | details |", "| --- | --- | --- |"]
    lines += [f"| {md_cell(str(r.target))} | {state} | {md_cell(words)} |" for (state, words), r in rows]
    return "\n".join(lines) + "\n"
