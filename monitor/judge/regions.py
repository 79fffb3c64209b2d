"""Cross-region comparison: group regions by the document they serve and pick a reference; pure functions.

The input is one (cloud, schema)'s current documents, as ``region label -> sha256`` (the canonical hash);
a label is a region (``cn-north-4``) or, when clouds are compared, ``cloud/region``. Regions serving the same
document form a ``Variant``. One variant is the reference: the majority's, or the one a named region serves.
A region deviates when its document is not the reference's. The per-region changes against the reference
come from the target's kind (:mod:`monitor.judge.kinds`); this module only groups (the matrix is drawn by
:mod:`monitor.read.matrix`).

Majority and its tie-break (:func:`majority_order`, the one definition): variants are ordered by the number
of regions serving them, most first, and among variants served by equally many regions, by their
alphabetically first region (plain ``str`` order). The "majority" (:func:`majority`) is the first variant in
that order, so it is the plurality (not necessarily more than half), and a tie goes to the variant whose first
region sorts first: with ``a`` and ``b`` on one document and ``c`` and ``d`` on another, the reference is the
one ``a`` serves. The choice depends only on the labels, never on dict order or hash values, so it is stable
from one tick to the next. A region deviates (:func:`deviates`) when it has a document and that document is
not the reference's.

:func:`compare_regions` is built from these three functions, and so is the live fleet state
(:mod:`monitor.fleet.rules`, which keeps an index of who serves what and asks :func:`majority` of it): a
comparison and the metrics cannot choose different references.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple

MAJORITY: Final = "majority"
"""The ``reference`` that means "the variant most regions serve" (see the module doc for ties)."""


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
        chosen = variants[0]  # = majority(): the variants are in majority_order
    elif reference in current:
        chosen = next(v for v in variants if v.sha256 == current[reference])
    else:
        known = ", ".join(sorted(current))
        raise ValueError(f"unknown reference region {reference!r}; expected {MAJORITY!r} or one of: {known}")
    deviating = tuple(sorted(region for region, sha in current.items() if deviates(sha, chosen.sha256)))
    return RegionComparison(variants, chosen.sha256, reference, deviating)


def _variants(current: Mapping[str, str]) -> tuple[Variant, ...]:
    """The variants of ``current``, in the majority order of the module doc."""
    by_sha: dict[str, list[str]] = {}
    for region, sha in current.items():
        by_sha.setdefault(sha, []).append(region)
    variants = [Variant(sha, tuple(sorted(regions))) for sha, regions in by_sha.items()]
    return tuple(sorted(variants, key=lambda v: majority_order(v.regions)))


class Tally(NamedTuple):
    """A variant counted rather than listed: how many regions serve it, and the alphabetically first of them —
    all the majority order needs (a database counts them without sending every region)."""

    regions: int
    first_region: str

    def order(self) -> tuple[int, str]:
        """The variant's sort key in the majority order: most regions first, then the first region (module doc)."""
        return -self.regions, self.first_region


def majority_order(regions: Collection[str]) -> tuple[int, str]:
    """The sort key of a variant served by ``regions`` (not empty) in the majority order: most regions first,
    then the variant whose alphabetically first region sorts first (module doc)."""
    return Tally(len(regions), min(regions)).order()


def tallied_majority(tallies: Mapping[str, Tally]) -> str:
    """The majority document of ``tallies`` (sha256 -> its :class:`Tally`): the same one :func:`majority` picks
    from the regions themselves. Raises ``ValueError`` when ``tallies`` is empty."""
    if not tallies:
        raise ValueError("no region has a document to compare")
    return min(tallies, key=lambda sha: tallies[sha].order())


def majority(serving: Mapping[str, Collection[str]]) -> str:
    """The majority document of ``serving`` (sha256 -> the regions serving it, none empty): the first in
    :func:`majority_order`. Costs O(documents), and the regions of the documents tied for the most regions
    when there is a tie (the live fleet state asks it after every poll). Raises ``ValueError`` when ``serving``
    is empty."""
    if not serving:
        raise ValueError("no region has a document to compare")
    most = max(len(regions) for regions in serving.values())
    tied = [sha for sha, regions in serving.items() if len(regions) == most]
    return tied[0] if len(tied) == 1 else min(tied, key=lambda sha: majority_order(serving[sha]))


def deviates(document: str | None, reference: str | None) -> bool:
    """Whether a region serving ``document`` (None: no document yet) deviates from the ``reference`` document
    (None: no region has one): only a region with a document other than the reference's does."""
    return document is not None and reference is not None and document != reference
