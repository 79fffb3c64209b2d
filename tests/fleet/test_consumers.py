"""Consumer contracts live, against real documents served on loopback (tests/support/consumers.py says which and
how the other regions' documents are derived): judged after each poll, exported as metrics, a breaking change
marked in its notification (webhook), its log line and the history; the read side says what the live side says.
On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from monitor.judge.consumers import RegionVerdict
from monitor.read.records import HistoryFilter
from monitor.store.tables import ChangeRow
from tests.support.consumers import (
    GLANCE,
    HASH_ALGO,
    IMS,
    Rig,
    compute,
    glance_without,
    images,
    nova,
    serve_images,
    surface_at,
)
from tests.support.receiver import Receiver
from tests.support.surface import Document, SurfaceSimulator

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TERRAFORM = "terraform-openstack"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture
def surface() -> Iterator[SurfaceSimulator]:
    with surface_at(maxima=("2.95", "2.96", "2.100"), images=(GLANCE, GLANCE, IMS)) as simulator:
        yield simulator


@pytest.fixture
def rig(surface: SurfaceSimulator, migrated_db_url: str, receiver: Receiver) -> Iterator[Rig]:
    monitor = Rig(surface, migrated_db_url, receiver)
    monitor.poll()
    monitor.notify()  # the channel's cursor starts after the first snapshots
    yield monitor
    monitor.close()


def states(verdicts: list[RegionVerdict], consumer: str) -> dict[str, bool | None]:
    return {v.region: v.compatible for v in verdicts if v.consumer == consumer}


def live(rig: Rig) -> list[RegionVerdict]:
    return rig.parts.intelligence.consumers.verdicts()


def as_read(rig: Rig) -> list[RegionVerdict]:
    return [verdict for view in rig.read().consumers().consumers for verdict in view.regions]


def test_a_consumer_needing_2_96_is_broken_in_exactly_the_2_95_region_with_both_numbers(rig: Rig) -> None:
    assert states(live(rig), TERRAFORM) == {"r1": False, "r2": True, "r3": True}
    [r1] = [v for v in live(rig) if (v.consumer, v.region) == (TERRAFORM, "r1")]
    assert [(v.requirement.describe(), v.reason) for v in r1.broken] == [
        ("compute-versions: v2.1 serves microversion 2.96", "max microversion 2.95 < required 2.96")
    ]
    assert rig.sample("schemadrift_consumer_compatible", consumer=TERRAFORM, region="r1") == 0
    assert rig.sample("schemadrift_consumer_compatible", consumer=TERRAFORM, region="r2") == 1
    assert rig.sample("schemadrift_consumer_compatible", consumer=TERRAFORM, region="r3") == 1
    requirement = r1.broken[0].requirement.id
    met = {r: rig.sample("schemadrift_consumer_requirement_met", consumer=TERRAFORM, region=r, requirement=requirement)
           for r in ("r1", "r2", "r3")}  # fmt: skip
    assert met == {"r1": 0, "r2": 1, "r3": 1}
    assert as_read(rig) == live(rig)  # the read side judges the same way on the same query
    # only the leader exports: a replica that loses the lead drops the series and keeps judging
    rig.parts.intelligence.set_leader(False)
    assert rig.sample("schemadrift_consumer_compatible", consumer=TERRAFORM, region="r2") is None
    assert states(live(rig), TERRAFORM)["r2"] is True
    rig.parts.intelligence.set_leader(True)
    assert rig.sample("schemadrift_consumer_compatible", consumer=TERRAFORM, region="r2") == 1


def test_upgrading_the_broken_region_turns_it_compatible_within_one_poll(rig: Rig, surface: SurfaceSimulator) -> None:
    surface.set_document("r1", "compute", nova("2.96"))  # the later release's maximum
    [result] = rig.poll(compute("r1"))
    assert [(c.rule, c.breaks) for c in result.changes] == [("max-microversion-raised", ())]
    assert states(live(rig), TERRAFORM) == {"r1": True, "r2": True, "r3": True}
    assert rig.sample("schemadrift_consumer_compatible", consumer=TERRAFORM, region="r1") == 1


def test_lowering_a_region_breaks_it_there_and_the_change_says_so_everywhere(
    rig: Rig, surface: SurfaceSimulator, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    surface.set_document("r3", "compute", nova("2.95"))
    with caplog.at_level(logging.WARNING, logger="monitor.fleet"):
        [result] = rig.poll(compute("r3"))
    [change] = result.changes
    assert (change.rule, change.severity.value) == ("max-microversion-lowered", "breaking")
    assert [(m.consumer, m.reason) for m in change.breaks] == [(TERRAFORM, "max microversion 2.95 < required 2.96")]
    assert states(live(rig), TERRAFORM)["r3"] is False
    assert any("breaks consumer terraform-openstack in r3" in r.getMessage() for r in caplog.records)
    # history (the database), then the notification built from it
    [record] = rig.read().history(HistoryFilter(region="r3"))
    assert [m.as_json()["consumer"] for m in record.breaks] == [TERRAFORM]
    assert record.as_json()["breaks"][0]["reason"] == "max microversion 2.95 < required 2.96"
    with rig.parts.database.engine.connect() as conn:  # stored with the change, as JSON text
        [(rule, text)] = list(conn.execute(select(ChangeRow.rule, ChangeRow.breaks)))
    assert rule == "max-microversion-lowered" and '"consumer": "terraform-openstack"' in (text or "")
    assert as_read(rig) == live(rig)
    rig.notify()
    [report] = receiver.delivered()
    assert report["summary"].endswith("; breaks terraform-openstack in r3")
    [target] = report["targets"]
    assert target["breaks"] == [TERRAFORM]
    assert target["changes"][0]["breaks"][0]["description"] == "compute-versions: v2.1 serves microversion 2.96"


def test_a_change_below_the_channels_min_severity_is_sent_when_it_breaks_a_consumer(
    rig: Rig, surface: SurfaceSimulator, receiver: Receiver
) -> None:
    surface.set_document("r2", "compute", nova("2.96", v20_status="DEPRECATED"))  # a warning; the channel: breaking
    [result] = rig.poll(compute("r2"))
    assert [(c.rule, c.severity.value, [m.consumer for m in c.breaks]) for c in result.changes] == [
        ("version-status-changed", "warning", ["legacy-v2"])
    ]
    rig.notify()
    [report] = receiver.delivered()
    assert report["worst_severity"] == "warning"
    assert report["summary"].endswith("breaks legacy-v2 in r2")


def test_a_change_that_breaks_nothing_stays_below_the_channels_min_severity(
    rig: Rig, surface: SurfaceSimulator, receiver: Receiver
) -> None:
    surface.set_document("r3", "compute", nova("2.100", v20_status="DEPRECATED"))
    surface.set_document("r2", "compute", nova("2.96", v20_status="DEPRECATED"))
    rig.poll(compute("r2"))  # breaks legacy-v2 in r2: sent
    rig.notify()
    rig.poll(compute("r3"))  # breaks legacy-v2 in r3 too: sent
    rig.notify()
    surface.set_document("r3", "compute", nova("2.100", v20_status="CURRENT"))  # info, breaks nothing: not sent
    rig.poll(compute("r3"))
    rig.notify()
    assert [r["summary"].rsplit("; ", 1)[-1] for r in receiver.delivered()] == [
        "breaks legacy-v2 in r2",
        "breaks legacy-v2 in r3",
    ]


def test_a_glance_schema_without_os_hash_algo_breaks_the_consumer_needing_it(
    rig: Rig, surface: SurfaceSimulator, receiver: Receiver
) -> None:
    downloads = "openstacksdk-downloads"
    assert states(live(rig), downloads) == {"r1": True, "r2": True, "r3": False}  # r3 serves IMS's schema
    [r3] = [v for v in as_read(rig) if (v.consumer, v.region) == (downloads, "r3")]
    assert [v.reason for v in r3.broken] == ["no os_hash_algo in /properties/images/items/properties"]
    serve_images(surface, "r2", glance_without(HASH_ALGO))
    [result] = rig.poll(images("r2"))
    [change] = result.changes
    assert (change.rule, change.path, [m.consumer for m in change.breaks]) == (
        "property-removed",
        HASH_ALGO,
        [downloads],
    )
    assert states(live(rig), downloads) == states(as_read(rig), downloads) == {"r1": True, "r2": False, "r3": False}
    assert rig.sample("schemadrift_consumer_compatible", consumer=downloads, region="r2") == 0
    rig.notify()
    [report] = receiver.delivered()
    assert report["targets"][0]["changes"][0]["breaks"][0]["consumer"] == downloads


def test_a_mark_goes_on_the_changes_touching_the_requirement_only(rig: Rig, surface: SurfaceSimulator) -> None:
    serve_images(surface, "r1", IMS)  # the IMS schema differs from Glance's in many places
    [result] = rig.poll(images("r1"))
    marked = [(c.rule, c.path) for c in result.changes if c.breaks]
    assert len(result.changes) > 10
    assert marked == [("property-removed", HASH_ALGO)]


def test_acknowledging_a_breaking_change_works_as_for_any_change(rig: Rig, surface: SurfaceSimulator) -> None:
    surface.set_document("r3", "compute", nova("2.95"))
    [result] = rig.poll(compute("r3"))
    key = compute("r3")
    [(fingerprint, _)] = rig.parts.intelligence.unacknowledged(key)
    rig.read()  # the commands layer is what ack uses
    from monitor.read.commands import Commands

    Commands(rig.config, rig.read(), rig.parts.database.drift).acknowledge(
        key, [fingerprint], comment="rollback planned", by="test"
    )
    rig.refresh(T0 + timedelta(minutes=1))
    assert rig.parts.intelligence.unacknowledged(key) == []
    assert rig.sample("schemadrift_drift_unacknowledged", cloud="openstack", region="r3",
                      schema="compute-versions", severity="breaking") == 0  # fmt: skip
    assert states(live(rig), TERRAFORM)["r3"] is False, "an acknowledgement does not make the client work"
    assert result.changes[0].breaks


def test_a_failing_target_makes_its_consumers_unknown_and_drops_their_series(
    rig: Rig, surface: SurfaceSimulator
) -> None:
    served = surface.answer("r1", "compute", "/")
    assert served is not None
    surface.serve("r1", "compute", Document(503, {"Content-Type": "application/json"}, {"error": "maintenance"}))
    [result] = rig.poll(compute("r1"))
    assert not result.ok
    rig.refresh(T0 + timedelta(minutes=1))  # failures reach the consumers at the next refresh
    assert states(live(rig), TERRAFORM)["r1"] is None
    assert rig.sample("schemadrift_consumer_compatible", consumer=TERRAFORM, region="r1") is None
    [r1] = [v for v in as_read(rig) if (v.consumer, v.region) == (TERRAFORM, "r1")]
    assert r1.compatible is None
    assert {v.reason for v in r1.unknown} == {"the polls of openstack/r1/compute-versions are failing (http_503)"}
    surface.serve("r1", "compute", Document(served.status, served.headers, nova("2.96")))
    rig.poll(compute("r1"))
    assert states(live(rig), TERRAFORM)["r1"] is True  # the next success, at once
