"""``GET /api/targets`` a page at a time, over real HTTP on SQLite and PostgreSQL: ``limit``, the opaque cursor
``after`` and the ``next`` link.

The pipeline is the polled one of ``test_api.py`` (13 targets, r1's ``images`` deviating), plus regions the
database learns without a poll (as discovery adds them: registered, never polled), so pages mix targets with and
without documents.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.domain import TargetKey
from monitor.read.model import ReadModel
from monitor.web.models import DEFAULT_TARGETS, MAX_TARGETS
from tests.conftest import REGIONS, TOKEN, fresh_database, migrate
from tests.support.live_api import R1_IMAGES, Live, error, start_live
from tests.support.regions import Simulator

SCHEMAS = ("image", "images", "member", "members")
Key = tuple[str, str, str]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One polled pipeline per backend, plus regions ``x00``..``x09`` of cloud ``sim`` registered unpolled."""
    directory = tmp_path_factory.mktemp("paging")
    with Simulator(REGIONS, token=TOKEN) as simulator, fresh_database(request, request.param, directory) as url:
        instance = start_live(simulator, migrate(url))
        try:
            add_targets(instance, [f"x{i:02d}" for i in range(10)])
            yield instance
        finally:
            instance.close()


def add_targets(live: Live, regions: list[str], schemas: tuple[str, ...] = SCHEMAS, cloud: str = "sim") -> None:
    """Register ``regions`` x ``schemas`` of ``cloud`` in the database (as discovery does), without polling."""
    keys = [(TargetKey(cloud, region, schema), f"http://127.0.0.1:1/{region}/{schema}") for region in regions
            for schema in schemas]  # fmt: skip
    live.parts.database.repository.ensure_targets(keys)


def read_model(live: Live) -> ReadModel:
    return ReadModel(live.parts.config, live.parts.database)


def labels(target: dict[str, Any]) -> Key:
    return target["cloud"], target["region"], target["schema"]


def walk(live: Live, path: str) -> list[list[dict[str, Any]]]:
    """Every page from ``path`` on, by the ``next`` links."""
    pages = []
    following: str | None = path
    while following is not None:
        body = live.get(following)
        assert set(body) == {"targets", "next"}
        pages.append(body["targets"])
        following = body["next"]
    return pages


def test_walking_the_next_links_lists_every_target_once_in_label_order(live: Live) -> None:
    pages = walk(live, "/api/targets?limit=7")
    listed = [labels(t) for page in pages for t in page]
    assert all(len(page) == 7 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 7
    assert len(listed) == len(set(listed)) and listed == sorted(listed)
    assert set(listed) == {(k.cloud, k.region, k.schema) for k in read_model(live).known()}
    assert len(listed) >= 13 + 40


def test_the_pages_say_what_the_whole_listing_says(live: Live) -> None:
    """The page's answers — deviation, standing, drift, state — are those of the unpaged read model (the web UI's
    overview), though a page reads only its own targets and counts the references in the database."""
    paged = {labels(t): t for page in walk(live, "/api/targets?limit=5") for t in page}
    whole = {(v.key.cloud, v.key.region, v.key.schema): v for v in read_model(live).targets()}
    assert set(paged) == set(whole)
    for key, view in whole.items():
        answer = paged[key]
        assert answer["deviates"] is view.deviates, key
        assert answer["standing"] == (view.standing.value if view.standing else None), key
        assert answer["sha256"] == (view.state.document.sha256 if view.state.document else None), key
        assert answer["unacknowledged"] == {s.value: n for s, n in view.unacknowledged.items()}, key
    r1 = paged[(R1_IMAGES.cloud, R1_IMAGES.region, R1_IMAGES.schema)]
    assert r1["deviates"] is True and r1["standing"] == "ahead of the fleet"  # its change opened a rollout
    assert paged[("sim", "r2", "images")]["deviates"] is False
    assert paged[("sim", "x00", "images")]["sha256"] is None and paged[("sim", "x00", "images")]["standing"] is None


def test_a_walk_sees_each_target_once_while_targets_are_added(live: Live) -> None:
    before = {labels(t) for page in walk(live, "/api/targets?limit=1000") for t in page}
    first = live.get("/api/targets", limit=6)
    seen = [labels(t) for t in first["targets"]]
    # added behind the cursor (before r1 of sim: never listed by this walk) and ahead of it (listed)
    add_targets(live, ["a-behind"])
    add_targets(live, ["w-ahead"])
    seen += [labels(t) for page in walk(live, first["next"]) for t in page]
    assert len(seen) == len(set(seen)) and seen == sorted(seen)
    assert before <= set(seen)
    assert {("sim", "w-ahead", schema) for schema in SCHEMAS} <= set(seen)
    assert not {("sim", "a-behind", schema) for schema in SCHEMAS} & set(seen)


def test_a_page_skips_targets_the_configuration_no_longer_watches_and_still_fills(live: Live) -> None:
    # 30 targets of a schema no cloud watches (a schema removed from the configuration), in one label run
    add_targets(live, [f"m{i:02d}" for i in range(30)], schemas=("gone",))
    pages = walk(live, "/api/targets?limit=4")
    listed = [labels(t) for page in pages for t in page]
    assert not [key for key in listed if key[2] == "gone"]
    assert all(len(page) == 4 for page in pages[:-1])


def test_the_next_link_keeps_the_limit_and_the_last_page_has_none(live: Live) -> None:
    body = live.get("/api/targets", limit=3)
    assert body["next"].startswith("/api/targets?") and "limit=3" in body["next"] and "after=" in body["next"]
    assert len(live.get(body["next"])["targets"]) == 3
    everything = live.get("/api/targets")
    assert everything["next"] is None and len(everything["targets"]) <= DEFAULT_TARGETS
    assert live.get("/api/targets", limit=MAX_TARGETS)["next"] is None


def test_limit_must_be_within_its_bounds(live: Live) -> None:
    assert error(live.http.get("/api/targets?limit=0"), 400) == "limit must be at least 1"
    assert error(live.http.get(f"/api/targets?limit={MAX_TARGETS + 1}"), 400) == f"limit must be at most {MAX_TARGETS}"
    assert "limit" in error(live.http.get("/api/targets?limit=ten"), 400)
    assert len(live.get("/api/targets", limit=1)["targets"]) == 1


@pytest.mark.parametrize("bad", ["not-a-cursor!", "", "padded==", "a" * 401])
def test_a_value_not_in_the_form_of_a_cursor_is_a_clear_400(live: Live, bad: str) -> None:
    message = error(live.http.get("/api/targets", params={"after": bad}), 400)
    assert message == "after must be the cursor of a next link: 1 to 400 letters, digits, - and _", message


def unpadded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "bad",
    [
        "abc",  # base64url, not UTF-8
        unpadded(b"[1, 2, 3]"),  # JSON, not three labels
        unpadded(b'["sim", "r1"]'),  # two labels
        unpadded(b'["sim", "", "images"]'),  # an empty label
        unpadded(b'{"cloud": "sim"}'),  # not a list
        unpadded(b"\xff\xfe"),  # not UTF-8
    ],
)
def test_a_cursor_that_no_page_gave_names_no_page_404(live: Live, bad: str) -> None:
    """In the form of a cursor, but not one: no page starts there (as no change has an unknown id)."""
    message = error(live.http.get("/api/targets", params={"after": bad}), 404)
    assert message.startswith("after names no page: pass the cursor of a next link"), message


def test_a_repeated_or_unknown_parameter_is_refused(live: Live) -> None:
    assert "given twice" in error(live.http.get("/api/targets?limit=2&limit=3"), 400)
    assert "unknown query parameter" in error(live.http.get("/api/targets?before_id=3"), 400)


def test_a_cursor_past_the_last_target_is_an_empty_last_page(live: Live) -> None:
    past = unpadded(b'["zzz","zzz","zzz"]')
    assert live.get("/api/targets", after=past) == {"targets": [], "next": None}


def test_the_openapi_document_describes_limit_after_and_next(live: Live) -> None:
    document = live.get("/api/openapi.json")
    parameters = {p["name"]: p for p in document["paths"]["/api/targets"]["get"]["parameters"]}
    assert set(parameters) == {"limit", "after"}
    limit = parameters["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, MAX_TARGETS, DEFAULT_TARGETS)
    assert "cursor" in parameters["after"]["description"] and parameters["after"]["required"] is False
    assert parameters["after"]["schema"]["anyOf"][0]["pattern"] == "^[A-Za-z0-9_-]{1,400}$"
    assert {"200", "400", "404"} <= set(document["paths"]["/api/targets"]["get"]["responses"])
    listing = document["components"]["schemas"]["TargetList"]
    assert set(listing["required"]) == {"targets", "next"}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_page_sees_a_new_document_and_a_retired_target_at_once(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    """The references a page uses are counted once and kept: a new snapshot anywhere, or a target retired, makes
    the next page count again (``monitor.read.references``)."""
    with Simulator(REGIONS, token=TOKEN) as sim, fresh_database(request, backend, tmp_path) as url:
        live = start_live(sim, migrate(url))
        try:
            before = {labels(t): t for t in live.get("/api/targets", limit=100)["targets"]}
            assert before[("sim", "r1", "images")]["deviates"] and not before[("sim", "r3", "images")]["deviates"]
            sim.set_document("r2", "images", sim.document("r1", "images"))  # r1's document is the majority now
            live.poll(TargetKey("sim", "r2", "images"))
            after = {labels(t): t for t in live.get("/api/targets", limit=100)["targets"]}
            assert not after[("sim", "r1", "images")]["deviates"] and after[("sim", "r3", "images")]["deviates"]
            live.parts.database.repository.retire_targets([TargetKey("sim", "r1", "images")])
            retired = {labels(t): t for t in live.get("/api/targets", limit=100)["targets"]}
            assert ("sim", "r1", "images") not in retired  # and r2 alone no longer outvotes r3: a tie, r2 sorts first
            assert not retired[("sim", "r2", "images")]["deviates"] and retired[("sim", "r3", "images")]["deviates"]
        finally:
            live.close()
