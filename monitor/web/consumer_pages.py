"""The consumer pages of the web UI, arranged from the read model's consumers matrix; layout only.

* ``/ui/consumers`` — consumers by regions: each cell says ``compatible``, ``broken`` (with how many
  requirements) or ``unknown`` in words and colour, and links to the cell's page;
* ``/ui/consumers/{consumer}/{region}`` — every requirement in that region with its evidence: the target (its
  page), the document judged (``/api/documents/<sha256>``), the JSON pointer read (the version entry, the
  extension, the property) and the value found there.

Paths are relative to ``/ui/``, as in :mod:`monitor.web.pages`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitor.domain import ABSENT
from monitor.judge.consumers import Consumer, RegionVerdict, Verdict
from monitor.read.consumers import ConsumersMatrix, Evidence, evidence
from monitor.web.pages import segment, target_path

STATES: Final[Mapping[bool | None, tuple[str, str, str]]] = {
    True: ("ok", "✓", "compatible"),
    False: ("broken", "✕", "broken"),
    None: ("unknown", "?", "unknown"),
}
"""A state's CSS class, symbol and word (never colour alone)."""
VALUE_CHARS: Final = 4000


def consumer_path(consumer: str, region: str) -> str:
    """The page of one consumer in one region, relative to ``/ui/``."""
    return f"consumers/{segment(consumer)}/{segment(region)}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One (consumer, region) of the matrix."""

    verdict: RegionVerdict

    @property
    def state(self) -> tuple[str, str, str]:
        return STATES[self.verdict.compatible]

    @property
    def path(self) -> str:
        return consumer_path(self.verdict.consumer, self.verdict.region)

    @property
    def note(self) -> str:
        """``1 of 6 not met`` for a broken cell, ``2 unknown`` for an unknown one, empty otherwise."""
        total = len(self.verdict.verdicts)
        if self.verdict.compatible is False:
            return f"{len(self.verdict.broken)} of {total} not met"
        return f"{len(self.verdict.unknown)} of {total} unknown" if self.verdict.compatible is None else ""


@dataclass(frozen=True)
class MatrixPage:
    """Consumers (rows) by regions (columns); a region a consumer is not judged in has no cell."""

    regions: tuple[str, ...]
    rows: tuple[tuple[Consumer, Mapping[str, Cell]], ...]
    broken: int
    unknown: int


def matrix_page(found: ConsumersMatrix) -> MatrixPage:
    rows = tuple((view.consumer, {v.region: Cell(v) for v in view.regions}) for view in found.consumers)
    return MatrixPage(tuple(found.regions), rows, len(found.broken), len(found.unknown))


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """One requirement in the region: its verdict, and where the evidence is."""

    item: Evidence

    @property
    def verdict(self) -> Verdict:
        return self.item.verdict

    @property
    def state(self) -> tuple[str, str, str]:
        met = self.verdict.met
        return ("ok", "✓", "met") if met else ("broken", "✕", "not met") if met is False else STATES[None]

    @property
    def target_path(self) -> str:
        return target_path(self.item.target)

    @property
    def value(self) -> str:
        """The value at the anchor as indented JSON, or what is missing."""
        if self.item.value is ABSENT:
            return "∅ nothing there" if self.verdict.sha256 else "∅ no document"
        text = json.dumps(self.item.value, indent=2, ensure_ascii=False, sort_keys=True)
        return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "\n…"


@dataclass(frozen=True)
class RegionPage:
    consumer: Consumer
    verdict: RegionVerdict
    rows: tuple[EvidenceRow, ...]

    @property
    def state(self) -> tuple[str, str, str]:
        return STATES[self.verdict.compatible]


def region_page(found: ConsumersMatrix, parsed: Callable[[str], Mapping[str, Any]]) -> RegionPage:
    """The page of the one (consumer, region) ``found`` holds (the read model selected it)."""
    view = found.consumers[0]
    verdict = view.regions[0]
    return RegionPage(view.consumer, verdict, tuple(EvidenceRow(item) for item in evidence(verdict, parsed)))
