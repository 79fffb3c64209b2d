"""The region-by-document matrix: text, ASCII, Markdown and JSON renderings of a comparison."""

from __future__ import annotations

from monitor.judge.regions import compare_regions
from monitor.read.matrix import comparison_json, matrix_markdown, matrix_text

A, B, C = "a" * 64, "b" * 64, "c" * 64


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
