"""Cross-region grouping: variants, the reference (majority or a region), deviations."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.judge.regions import RegionComparison, Tally, Variant, compare_regions, majority, tallied_majority

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_regions_serving_the_same_document_form_one_variant() -> None:
    result = compare_regions({"r2": A, "r1": A, "r3": B})

    assert result.variants == (Variant(A, ("r1", "r2")), Variant(B, ("r3",)))


def test_all_regions_on_one_document_means_one_variant_and_no_deviation() -> None:
    result = compare_regions({"r1": A, "r2": A, "r3": A})

    assert result == RegionComparison((Variant(A, ("r1", "r2", "r3")),), A, "majority", ())


def test_majority_reference_is_the_document_most_regions_serve() -> None:
    result = compare_regions({"r1": B, "r2": A, "r3": A, "r4": C})

    assert (result.reference, result.reference_label) == (A, "majority")
    assert result.deviating == ("r1", "r4")


def test_variants_are_ordered_by_region_count_then_by_their_first_region() -> None:
    result = compare_regions({"z": A, "y": A, "m": B, "b": C, "n": B, "c": A})

    assert [v.regions for v in result.variants] == [("c", "y", "z"), ("m", "n"), ("b",)]


@pytest.mark.parametrize("order", list(itertools.permutations(["r4", "r3", "r2", "r1"])))
def test_majority_tie_goes_to_the_variant_whose_first_region_sorts_first(order: tuple[str, ...]) -> None:
    shas = {"r1": B, "r2": A, "r3": B, "r4": A}  # two regions each: r1 < r2, so r1's document wins

    result = compare_regions({region: shas[region] for region in order})

    assert result.reference == B
    assert result.deviating == ("r2", "r4")


def test_a_reference_region_makes_its_document_the_reference_even_in_the_minority() -> None:
    result = compare_regions({"r1": A, "r2": A, "r3": B}, reference="r3")

    assert (result.reference, result.reference_label) == (B, "r3")
    assert result.deviating == ("r1", "r2")
    assert result.variants[0] == Variant(A, ("r1", "r2"))  # ordering stays by region count


def test_an_unknown_reference_region_raises_value_error_listing_the_regions() -> None:
    with pytest.raises(ValueError, match=r"unknown reference region 'r9'.*r1, r2"):
        compare_regions({"r1": A, "r2": B}, reference="r9")


def test_no_region_with_a_document_raises_value_error() -> None:
    with pytest.raises(ValueError, match="no region"):
        compare_regions({})


def test_cloud_qualified_labels_compare_across_clouds() -> None:
    result = compare_regions({"huawei/cn-north-4": A, "openstack/RegionOne": B}, reference="openstack/RegionOne")

    assert result.deviating == ("huawei/cn-north-4",)
    assert result.variant_of("openstack/RegionOne") == Variant(B, ("openstack/RegionOne",))
    assert result.variant_of("huawei/la-south-2") is None


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d-1", "r10", "r2", "Z"]), st.sampled_from(["x", "y", "z"]),
                       min_size=1))  # fmt: skip
def test_the_majority_from_counts_is_the_majority_from_the_regions(current: dict[str, str]) -> None:
    """What a database counts (how many regions serve each document, and the first of them) picks the same
    majority as the regions themselves, ties included."""
    serving: dict[str, set[str]] = {}
    for region, sha in current.items():
        serving.setdefault(sha, set()).add(region)
    tallies = {sha: Tally(len(regions), min(regions)) for sha, regions in serving.items()}
    assert tallied_majority(tallies) == majority(serving)


def test_the_majority_from_counts_needs_a_document() -> None:
    with pytest.raises(ValueError, match="no region has a document"):
        tallied_majority({})
