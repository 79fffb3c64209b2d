"""Cross-region comparison: group regions by the document they serve and pick a reference; pure functions.

The input is one (cloud, schema)'s current documents, as ``region label -> sha256`` (the canonical hash);
a label is a region (``cn-north-4``) or, when clouds are compared, ``cloud/region``. Regions serving the same
document form a ``Variant``. One variant is the reference: the majority's, or the one a named region serves.
A region deviates when its document is not the reference's. The per-region changes against the reference
come from ``diffing.classify`` and are rendered by ``reports``; this module only groups and draws the matrix.

Majority and its tie-break: variants are ordered by the number of regions serving them, most first, and
among variants served by equally many regions, by their alphabetically first region (plain ``str`` order).
The "majority" reference is the first variant in that order, so it is the plurality (not necessarily more
than half), and a tie goes to the variant whose first region sorts first: with ``a`` and ``b`` on one
document and ``c`` and ``d`` on another, the reference is the one ``a`` serves. The choice depends only on
the labels, never on dict order or hash values, so it is stable from one tick to the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from monitor.reports import md_code, md_escape

MAJORITY: Final = "majority"
"""The ``reference`` that means "the variant most regions serve" (see the module doc for ties)."""

SHORT_SHA: Final = 12
"""How many hex digits of a sha256 the matrices show (as ``snapshots`` does)."""

_CELLS: Final[Mapping[bool, tuple[str, str]]] = {False: ("●", "·"), True: ("X", ".")}  # ascii_only -> (serves, not)


@dataclass(frozen=True)
class Variant:
    """One distinct document and the regions serving it, sorted by label."""

    sha256: str
    regions: tuple[str, ...]


@dataclass(frozen=True)
class RegionComparison:
    """The regions of one (cloud, schema) grouped by document, with the reference and who deviates from it.

    ``variants``: most regions first, ties broken by the first region label (module doc). ``reference`` is
    the reference variant's sha256; ``reference_label`` is ``"majority"`` or the region chosen.
    ``deviating``: the regions whose document differs from the reference, sorted.
    """

    variants: tuple[Variant, ...]
    reference: str
    reference_label: str
    deviating: tuple[str, ...]

    @property
    def reference_variant(self) -> Variant:
        """The variant whose sha256 is ``reference``."""
        return next(v for v in self.variants if v.sha256 == self.reference)

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region compared, sorted."""
        return tuple(sorted(r for v in self.variants for r in v.regions))

    def variant_of(self, region: str) -> Variant | None:
        """The variant ``region`` serves, or None when it was not compared (it had no document)."""
        return next((v for v in self.variants if region in v.regions), None)

    def variant_id(self, variant: Variant, marked: bool = True) -> str:
        """``V1``, ``V2``... by position in ``variants``; with ``marked``, ``*`` appended for the reference."""
        mark = "*" if marked and variant.sha256 == self.reference else ""
        return f"V{self.variants.index(variant) + 1}{mark}"


def compare_regions(current: Mapping[str, str], reference: str = MAJORITY) -> RegionComparison:
    """Group the regions of ``current`` (region label -> sha256 of its current document) by document.

    ``reference`` is ``"majority"`` or a label of ``current``. Raises ``ValueError`` when ``current`` is
    empty (nothing to compare) or ``reference`` is a label ``current`` does not have.
    """
    if not current:
        raise ValueError("no region has a document to compare")
    variants = _variants(current)
    if reference == MAJORITY:
        chosen = variants[0]
    elif reference in current:
        chosen = next(v for v in variants if v.sha256 == current[reference])
    else:
        known = ", ".join(sorted(current))
        raise ValueError(f"unknown reference region {reference!r}; expected {MAJORITY!r} or one of: {known}")
    deviating = tuple(sorted(region for region, sha in current.items() if sha != chosen.sha256))
    return RegionComparison(variants, chosen.sha256, reference, deviating)


def _variants(current: Mapping[str, str]) -> tuple[Variant, ...]:
    """The variants of ``current``, in the majority order of the module doc."""
    by_sha: dict[str, list[str]] = {}
    for region, sha in current.items():
        by_sha.setdefault(sha, []).append(region)
    variants = [Variant(sha, tuple(sorted(regions))) for sha, regions in by_sha.items()]
    return tuple(sorted(variants, key=lambda v: (-len(v.regions), v.regions[0])))


# --- rendering -----------------------------------------------------------------------------------------


def matrix_text(comparison: RegionComparison, regions: Sequence[str] | None = None, ascii_only: bool = False) -> str:
    """The region-by-variant matrix as aligned text, ending with a newline.

    One row per region of ``regions`` (in that order; default: every compared region, sorted), one column
    per variant headed by its id (``V1``...; ``*`` marks the reference) and, below, its short sha. A cell is
    ``●`` where the region serves the variant (``X`` with ``ascii_only``); the last column says ``matches``,
    ``deviates`` or ``no document``. A legend line names the reference.
    """
    serves, blank = _CELLS[ascii_only]
    header = ["region", *(comparison.variant_id(v) for v in comparison.variants), "status"]
    shas = ["", *(v.sha256[:SHORT_SHA] for v in comparison.variants), ""]
    rows = [header, shas]
    for region in _rows(comparison, regions):
        cells = [serves if region in v.regions else blank for v in comparison.variants]
        rows.append([region, *cells, _status(comparison, region)])
    return _aligned(rows) + f"* reference: {_reference_text(comparison)}\n"


def matrix_markdown(comparison: RegionComparison, regions: Sequence[str] | None = None) -> str:
    """The matrix of ``matrix_text`` as a Markdown table (short shas as code in the header), then the legend."""
    header = [
        "region",
        *(f"{md_escape(comparison.variant_id(v))} {md_code(v.sha256[:SHORT_SHA])}" for v in comparison.variants),
        "status",
    ]
    lines = [_md_row(header), _md_row(["---", *(":-:" for _ in comparison.variants), "---"])]
    for region in _rows(comparison, regions):
        cells = ["●" if region in v.regions else "" for v in comparison.variants]
        lines.append(_md_row([md_escape(region), *cells, _status(comparison, region)]))
    return "\n".join(lines) + f"\n\n\\* reference: {md_escape(_reference_text(comparison))}\n"


def comparison_json(comparison: RegionComparison, regions: Sequence[str] | None = None) -> dict[str, Any]:
    """The comparison as JSON-ready data (read API, ``compare --format json``).

    ``{"reference": {"label", "sha256", "variant"}, "variants": [{"id", "sha256", "regions", "reference"}],
    "deviating": [...], "regions": [{"region", "variant", "sha256", "deviates"}]}``; ``variant`` ids carry no
    ``*``; a region of ``regions`` without a document has ``variant`` and ``sha256`` null, ``deviates`` false.
    """
    reference = comparison.reference_variant
    return {
        "reference": {
            "label": comparison.reference_label,
            "sha256": reference.sha256,
            "variant": comparison.variant_id(reference, marked=False),
        },
        "variants": [_variant_json(comparison, variant) for variant in comparison.variants],
        "deviating": list(comparison.deviating),
        "regions": [_region_json(comparison, region) for region in _rows(comparison, regions)],
    }


def _variant_json(comparison: RegionComparison, variant: Variant) -> dict[str, Any]:
    return {
        "id": comparison.variant_id(variant, marked=False),
        "sha256": variant.sha256,
        "regions": list(variant.regions),
        "reference": variant.sha256 == comparison.reference,
    }


def _region_json(comparison: RegionComparison, region: str) -> dict[str, Any]:
    variant = comparison.variant_of(region)
    return {
        "region": region,
        "variant": comparison.variant_id(variant, marked=False) if variant else None,
        "sha256": variant.sha256 if variant else None,
        "deviates": region in comparison.deviating,
    }


def _rows(comparison: RegionComparison, regions: Sequence[str] | None) -> Sequence[str]:
    return comparison.regions if regions is None else regions


def _status(comparison: RegionComparison, region: str) -> str:
    if region in comparison.deviating:
        return "deviates"
    return "matches" if comparison.variant_of(region) else "no document"


def _reference_text(comparison: RegionComparison) -> str:
    variant = comparison.reference_variant
    count = f"{len(variant.regions)} of {len(comparison.regions)} regions"
    return f"{comparison.reference_label} ({comparison.variant_id(variant, marked=False)}, {count})"


def _aligned(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` as text columns two spaces apart, each as wide as its widest cell; trailing blanks dropped."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "".join(line.rstrip() + "\n" for line in lines)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
