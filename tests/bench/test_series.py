"""bench/series.py: series per target read from an exposition text."""

from __future__ import annotations

import pytest

from bench.series import OTHER, TOTAL, format_table, sample_labels, series_per_target

EXPOSITION = """\
# HELP schemadrift_poll_success 1 if the last poll of the target succeeded, else 0.
# TYPE schemadrift_poll_success gauge
schemadrift_poll_success{cloud="c",region="r1",schema="s"} 1.0
schemadrift_poll_success{cloud="c",region="r2",schema="s"} 0.0
# TYPE schemadrift_changes_total counter
schemadrift_changes_total{cloud="c",region="r1",schema="s",severity="breaking"} 0.0
schemadrift_changes_total{cloud="c",region="r1",schema="s",severity="warning"} 0.0
schemadrift_changes_total{cloud="c",region="r2",schema="s",severity="breaking"} 0.0
schemadrift_changes_total{cloud="c",region="r2",schema="s",severity="warning"} 2.0
schemadrift_changes_total{cloud="c",region="r2",schema="s",severity="info"} 1.0
schemadrift_poll_duration_seconds_count{cloud="c"} 7.0
schemadrift_region_variants{cloud="c",schema="s"} 1.0
schemadrift_db_up 1.0
schemadrift_consumer_compatible{consumer="a,schema=\\"x\\"",region="r1"} 1.0
"""


def test_it_counts_the_samples_with_the_target_labels_per_target() -> None:
    assert series_per_target(EXPOSITION, 2) == {
        "schemadrift_changes_total": 2.5,
        "schemadrift_poll_success": 1.0,
        TOTAL: 3.5,
        OTHER: 4.0,  # per cloud, per (cloud, schema), the process, per consumer: counted once, not divided
    }


def test_a_label_value_that_looks_like_a_label_is_not_one() -> None:
    name, labels = sample_labels('schemadrift_consumer_compatible{consumer="a,schema=\\"x\\"",region="r1"} 1.0')
    assert (name, labels) == ("schemadrift_consumer_compatible", frozenset({"consumer", "region"}))
    assert sample_labels("schemadrift_db_up 1.0") == ("schemadrift_db_up", frozenset())


def test_it_refuses_a_fleet_of_no_targets() -> None:
    with pytest.raises(ValueError, match="targets must be positive"):
        series_per_target(EXPOSITION, 0)


def test_the_table_prints_one_family_a_line() -> None:
    lines = format_table(series_per_target(EXPOSITION, 2)).splitlines()
    assert lines[0].split() == ["schemadrift_changes_total", "2.5"]
    assert lines[2].split() == [TOTAL, "3.5"]
    assert len(lines) == 4
