"""The region-by-document matrix of a :class:`~monitor.judge.regions.RegionComparison`: text, Markdown and
JSON; pure functions (``compare``, the read API and the UI draw it through here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from monitor.judge.regions import RegionComparison, Variant
from monitor.read.reports import md_code, md_escape

SHORT_SHA: Final = 12
"""How many hex digits of a sha256 the matrices show (as ``snapshots`` does)."""

_CELLS: Final[Mapping[bool, tuple[str, str]]] = {False: ("●", "·"), True: ("X", ".")}  # ascii_only -> (serves, not)


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
