"""Cross-region grouping: variants, the reference (majority or a region), deviations, and the matrices."""

from __future__ import annotations

import itertools

import pytest

from monitor.compare import RegionComparison, Variant, compare_regions, comparison_json, matrix_markdown, matrix_text

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


def test_matrix_text_marks_the_reference_and_the_served_variant_per_region() -> None:
    result = compare_regions({"cn-north-4": A, "ap-southeast-1": A, "cn-east-3": B})

    assert matrix_text(result, ["cn-north-4", "cn-east-3", "ap-southeast-1", "la-south-2"]) == (
        "region          V1*           V2            status\n"
        "                aaaaaaaaaaaa  bbbbbbbbbbbb\n"
        "cn-north-4      ●             ·             matches\n"
        "cn-east-3       ·             ●             deviates\n"
        "ap-southeast-1  ●             ·             matches\n"
        "la-south-2      ·             ·             no document\n"
        "* reference: majority (V1, 2 of 3 regions)\n"
    )


def test_matrix_text_marks_a_chosen_reference_wherever_its_variant_sits() -> None:
    result = compare_regions({"r1": A, "r2": A, "r3": B}, reference="r3")

    lines = matrix_text(result).splitlines()

    assert lines[0].split() == ["region", "V1", "V2*", "status"]
    assert lines[-1] == "* reference: r3 (V2, 1 of 3 regions)"


def test_matrix_text_ascii_only_uses_plain_ascii() -> None:
    text = matrix_text(compare_regions({"r1": A, "r2": B}), ascii_only=True)

    assert text.isascii()
    assert text.splitlines()[2].split() == ["r1", "X", ".", "matches"]


def test_matrix_markdown_is_a_table_with_short_shas_in_the_header() -> None:
    result = compare_regions({"eu_west-0": A, "r2": B})

    assert matrix_markdown(result, ["eu_west-0", "r2", "r3"]) == (
        "| region | V1\\* `aaaaaaaaaaaa` | V2 `bbbbbbbbbbbb` | status |\n"
        "| --- | :-: | :-: | --- |\n"
        "| eu\\_west-0 | ● |  | matches |\n"
        "| r2 |  | ● | deviates |\n"
        "| r3 |  |  | no document |\n"
        "\n"
        "\\* reference: majority (V1, 1 of 2 regions)\n"
    )


def test_comparison_json_names_variants_reference_and_each_region() -> None:
    result = compare_regions({"r1": A, "r2": B, "r3": A}, reference="r2")

    assert comparison_json(result, ["r1", "r2", "r4"]) == {
        "reference": {"label": "r2", "sha256": B, "variant": "V2"},
        "variants": [
            {"id": "V1", "sha256": A, "regions": ["r1", "r3"], "reference": False},
            {"id": "V2", "sha256": B, "regions": ["r2"], "reference": True},
        ],
        "deviating": ["r1", "r3"],
        "regions": [
            {"region": "r1", "variant": "V1", "sha256": A, "deviates": True},
            {"region": "r2", "variant": "V2", "sha256": B, "deviates": False},
            {"region": "r4", "variant": None, "sha256": None, "deviates": False},
        ],
    }


def test_renderings_default_to_every_compared_region_sorted() -> None:
    result = compare_regions({"r2": A, "r1": B})

    assert [row["region"] for row in comparison_json(result)["regions"]] == ["r1", "r2"]
    assert [line.split()[0] for line in matrix_text(result).splitlines()[2:4]] == ["r1", "r2"]
