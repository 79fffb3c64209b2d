"""The consumers matrix rendered: text (the terminal), Markdown (a merge request, a wiki), JUnit XML (CI).

Each renderer only formats a :class:`~monitor.read.consumers.ConsumersMatrix`; broken first within a consumer's
lines is not needed: regions are listed in order and each says its state in words (``compatible``, ``BROKEN``,
``unknown``), with every requirement not met and why, and for an unknown region why it is unknown.

JUnit: one ``<testsuite>`` per consumer, one ``<testcase>`` per (region, requirement) named
``<region>: <requirement in words> [<id>]`` with the classname ``<consumer>.<region>``; a requirement not met is
a ``<failure>`` whose message is the reason; an unknown one is ``<skipped>`` — or, with ``strict``, a failure.
"""

from __future__ import annotations

from typing import Final

from monitor.judge.consumers import RegionVerdict, Verdict
from monitor.read.consumers import ConsumersMatrix, ConsumerView
from monitor.read.junit import Case, Suite, junit_xml
from monitor.read.reports import md_cell

FORMATS: Final = ("text", "json", "junit", "markdown")
_STATE: Final = {True: "compatible", False: "BROKEN", None: "unknown"}


def consumers_text(found: ConsumersMatrix) -> str:
    """A block per consumer: a summary line, then a line per region with what is not met (or not known)."""
    blocks = [_text_block(view) for view in found.consumers]
    return "\n".join(blocks) if blocks else "no consumer is judged in any region yet\n"


def _text_block(view: ConsumerView) -> str:
    consumer = view.consumer
    about = f" ({consumer.description})" if consumer.description else ""
    lines = [f"{consumer.name}{about}: {_summary(view)}"]
    width = max((len(v.region) for v in view.regions), default=0)
    for verdict in view.regions:
        details = [*verdict.broken, *(verdict.unknown if verdict.compatible is None else ())]
        head = f"  {verdict.region:<{width}}  {_STATE[verdict.compatible]:<10}"
        lines.append((head + (f" {_line(details[0])}" if details else "")).rstrip())
        lines.extend(f"  {'':<{width}}  {'':<10} {_line(item)}" for item in details[1:])
    return "\n".join(lines) + "\n"


def _summary(view: ConsumerView) -> str:
    counts = {state: sum(1 for v in view.regions if v.compatible is state) for state in (True, False, None)}
    parts = [f"{counts[True]} compatible", f"{counts[False]} broken", f"{counts[None]} unknown"]
    return f"{len(view.regions)} region(s): " + ", ".join(parts)


def _line(item: Verdict) -> str:
    return f"{item.requirement.describe()} [{item.requirement.id}]: {item.reason}"


def consumers_markdown(found: ConsumersMatrix) -> str:
    """A consumers-by-regions table, then the broken and unknown requirements as lists."""
    regions = found.regions
    lines = ["| consumer | " + " | ".join(regions) + " |", "| --- |" + " --- |" * len(regions)]
    for view in found.consumers:
        cells = {v.region: v for v in view.regions}
        row = [_md_cell(cells.get(region)) for region in regions]
        lines.append(f"| {md_cell(view.consumer.name)} | " + " | ".join(row) + " |")
    for title, verdicts in (("Broken", found.broken), ("Unknown", found.unknown)):
        items = [item for verdict in verdicts for item in _md_items(verdict)]
        if items:
            lines += ["", f"**{title}**", "", *items]
    return "\n".join(lines) + "\n"


def _md_cell(verdict: RegionVerdict | None) -> str:
    if verdict is None:
        return "—"
    return "**broken**" if verdict.compatible is False else _STATE[verdict.compatible]


def _md_items(verdict: RegionVerdict) -> list[str]:
    items = verdict.broken if verdict.compatible is False else verdict.unknown
    return [f"- {md_cell(verdict.consumer)} in {md_cell(verdict.region)}: {md_cell(_line(item))}" for item in items]


def consumers_junit(found: ConsumersMatrix, *, strict: bool = False) -> str:
    """JUnit XML: a suite per consumer, a case per (region, requirement); see the module."""
    suites = [Suite(view.consumer.name, tuple(_cases(view, strict))) for view in found.consumers]
    return junit_xml("schema-drift-monitor consumers", suites)


def _cases(view: ConsumerView, strict: bool) -> list[Case]:
    cases = []
    for verdict in view.regions:
        for item in verdict.verdicts:
            requirement = item.requirement
            name = f"{verdict.region}: {requirement.describe()} [{requirement.id}]"
            failure = item.reason if item.met is False or (strict and item.met is None) else None
            details = f"{view.consumer.name} in {verdict.region}: {requirement.describe()}: {item.reason}"
            skipped = item.reason if item.met is None else None
            cases.append(Case(f"{view.consumer.name}.{verdict.region}", name, failure, details, skipped))
    return cases
