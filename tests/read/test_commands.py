"""The commands layer (acknowledge, approve, expect) over the real store, on SQLite and PostgreSQL, and its
fingerprint rule as a pure function."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.app import Components, build
from monitor.config import parse_config
from monitor.domain import Change, Severity, TargetKey, utcnow
from monitor.read.checks import Invalid
from monitor.read.commands import MAX_SPAN, Commands, Conflict, NotFound, resolve_fingerprints
from monitor.read.model import DriftItem, ReadModel
from tests.conftest import config_data
from tests.support.regions import Simulator, mutate_breaking

IMAGES = TargetKey("sim", "r1", "images")
UNPOLLED = TargetKey("sim", "r2", "members")


@dataclass
class Setup:
    parts: Components
    read: ReadModel
    commands: Commands


@pytest.fixture
def setup(simulator: Simulator, migrated_db_url: str) -> Iterator[Setup]:
    """Every target but ``sim/r2/members`` polled; r1's images then changed (breaking + warning) and polled."""
    config = parse_config(config_data(simulator, migrated_db_url, confirm_reads=1), "test")
    parts = build(config)
    loop = asyncio.new_event_loop()
    try:
        for spec in parts.specs:
            if spec.key != UNPOLLED:
                loop.run_until_complete(parts.service.poll(spec))
        simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
        loop.run_until_complete(parts.service.poll(next(s for s in parts.specs if s.key == IMAGES)))
        read = ReadModel(config, parts.database)
        yield Setup(parts, read, Commands(config, read, parts.database.drift))
    finally:
        loop.run_until_complete(parts.aclose())
        loop.close()


def pending(setup: Setup, key: TargetKey = IMAGES) -> dict[str, str]:
    return {item.change.rule: item.fingerprint for item in setup.read.drift(key) if not item.acknowledged}


def test_a_prefix_acknowledges_the_one_change_it_starts(setup: Setup) -> None:
    removed = pending(setup)["property-removed"]
    done = setup.commands.acknowledge(IMAGES, [removed[:8].upper(), removed], comment="known", by="al",
                                      expires_in=3600)  # fmt: skip
    assert done.acknowledged == (removed,) and done.not_pending == ()
    assert done.expires_at is not None and done.expires_at - utcnow() <= timedelta(seconds=3600)
    assert set(pending(setup)) == {"enum-value-added"}
    assert done.sentence().startswith("sim/r1/images: acknowledged 1 change(s) until ")


def test_a_full_fingerprint_is_stored_even_when_not_pending_and_said_so(setup: Setup) -> None:
    removed = pending(setup)["property-removed"]
    setup.commands.acknowledge(IMAGES, [removed], comment="first", by="al")
    again = setup.commands.acknowledge(IMAGES, [removed, "f" * 64], comment="again", by="al")
    assert again.acknowledged == (removed, "f" * 64) and again.not_pending == (removed, "f" * 64)
    assert again.as_json()["not_pending"] == [removed, "f" * 64]


def test_a_prefix_that_starts_no_change_is_not_found_and_a_malformed_one_invalid(setup: Setup) -> None:
    with pytest.raises(NotFound, match="no change in the drift of sim/r1/images has a fingerprint starting 00000000"):
        setup.commands.acknowledge(IMAGES, ["00000000"], comment="x", by="al")
    for bad in ("abc1234", "g" * 8, "a" * 65, ""):
        with pytest.raises(Invalid, match="must be 8 to 64 hexadecimal characters"):
            setup.commands.acknowledge(IMAGES, [bad], comment="x", by="al")
    with pytest.raises(Invalid, match="give at least one fingerprint"):
        setup.commands.acknowledge(IMAGES, [], comment="x", by="al")


def test_comment_by_and_expiry_follow_the_api_limits(setup: Setup) -> None:
    fp = pending(setup)["property-removed"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"comment": " \t"}, "comment must be text that is not blank and has no NUL character"),
        ({"comment": "a\x00b"}, "comment must be text that is not blank"),
        ({"comment": "c" * 2001}, "comment must be at most 2000 characters, got 2001"),
        ({"by": "b" * 129}, "by must be at most 128 characters"),
        ({"expires_in": 0.0}, "the expiry must be more than 0 and at most 315360000 seconds"),
        ({"expires_in": MAX_SPAN + 1.0}, "the expiry must be more than 0"),
        ({"expires_in": float("nan")}, "the expiry must be more than 0"),
    ]
    for change, sentence in cases:
        arguments = {"comment": "ok", "by": "al", "expires_in": None, **change}
        with pytest.raises(Invalid) as refused:
            setup.commands.acknowledge(IMAGES, [fp], **arguments)
        assert str(refused.value).startswith(sentence), change
    assert set(pending(setup)) == {"property-removed", "enum-value-added"}  # nothing was stored


def test_approving_moves_the_baseline_and_needs_a_snapshot(setup: Setup) -> None:
    done = setup.commands.approve(IMAGES, comment="on purpose", by="al")
    assert done.approved_snapshot_id == setup.read.snapshots(IMAGES)[-1].id
    assert pending(setup) == {}
    with pytest.raises(Conflict, match=r"^sim/r2/members has no snapshot to approve yet$"):
        setup.commands.approve(UNPOLLED, comment="x", by="al")
    with pytest.raises(Conflict, match="has no snapshot yet"):
        setup.commands.acknowledge(UNPOLLED, ["0" * 64], comment="x", by="al")
    with pytest.raises(Invalid, match="an expiry applies to acknowledged fingerprints"):
        setup.commands.approve(IMAGES, comment="x", by="al", expires_in=60)


def test_an_expected_window_is_stored_and_refused_when_it_names_nothing_or_has_ended(setup: Setup) -> None:
    now = utcnow()
    done = setup.commands.expect("sim", "images", duration=7200, comment="CHG-9", by="al", now=now)
    assert (done.window.starts_at, done.window.ends_at) == (now, now + timedelta(hours=2))
    assert any(w.comment == "CHG-9" for w in setup.parts.database.drift.windows(now))
    with pytest.raises(Invalid, match=r"^cloud 'nope' is not in the configuration; cloud must be one of: sim$"):
        setup.commands.expect("nope", None, duration=60, comment="x", by="al")
    with pytest.raises(Invalid, match=r"^schema 'x' is not in the configuration; schema must be one of: image, "):
        setup.commands.expect("sim", "x", duration=60, comment="x", by="al")
    with pytest.raises(Conflict, match="has ended already; give a later start or a longer duration"):
        setup.commands.expect("sim", None, duration=60, start=now - timedelta(hours=1), comment="x", by="al")
    late = setup.commands.expect("sim", None, duration=MAX_SPAN, start=datetime(9999, 12, 31, tzinfo=UTC),
                                 comment="far", by="al")  # fmt: skip
    assert late.window.ends_at == datetime.max.replace(tzinfo=UTC)
    naive = setup.commands.expect("sim", None, duration=60, start=datetime(2999, 1, 1), comment="naive", by="al")
    assert naive.window.starts_at == datetime(2999, 1, 1, tzinfo=UTC)


def drift_item(fingerprint: str) -> DriftItem:
    return DriftItem(fingerprint, Change("/x", "type-changed", Severity.BREAKING, 1, 2), False)


def test_an_ambiguous_prefix_lists_the_changes_it_starts() -> None:
    items = [drift_item("abcdef01" + "0" * 56), drift_item("abcdef01" + "1" * 56), drift_item("12345678" + "0" * 56)]
    with pytest.raises(Invalid) as refused:
        resolve_fingerprints(["ABCDEF01"], items, IMAGES)
    assert str(refused.value) == (
        "fingerprint abcdef01 is the start of 2 changes in the drift of sim/r1/images "
        "(abcdef0100000000, abcdef0111111111); give more of it"
    )
    assert resolve_fingerprints(["abcdef011", "12345678", "12345678" + "0" * 56], items, IMAGES) == [
        "abcdef01" + "1" * 56, "12345678" + "0" * 56
    ]  # fmt: skip
    with pytest.raises(Invalid, match="give at most 1000 fingerprints at once, got 1001"):
        resolve_fingerprints(["12345678"] * 1001, items, IMAGES)
