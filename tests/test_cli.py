"""The command line in-process (``main``) over a real pipeline on SQLite, beside the read API over real HTTP on
the same database: option values and labels are checked as the API checks them, ``ack`` and ``expect`` give
the API's answers and sentences, every command that prints data takes ``--json``, every ``--help`` starts
with its one line.

State (module-wide): every target polled but ``sim/r3/members`` (registered, no snapshot); then r1's
``images`` changed (a breaking and a warning change), r2's ``member`` and r3's ``image`` each given a property
(info), and those polled again.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import yaml

from monitor.app import Components, build
from monitor.cli import COMMANDS, build_parser, main
from monitor.config import parse_config
from monitor.domain import TargetKey, utcnow
from monitor.read.model import ReadModel
from monitor.web.api import ApiContext
from monitor.web.app import create_app
from monitor.web.server import WebServer
from tests.conftest import REGIONS, TOKEN, config_data, migrate
from tests.support.consumers import Rig, nova, surface_at
from tests.support.consumers import config_data as consumers_config
from tests.support.regions import Simulator, mutate_breaking
from tests.support.surface import Document as SurfaceDocument
from tests.support.surface import SurfaceSimulator

API_TOKEN = "cli-test-api-token-5b2a"
IMAGES = TargetKey("sim", "r1", "images")
MEMBER = TargetKey("sim", "r2", "member")
IMAGE = TargetKey("sim", "r3", "image")
UNPOLLED = TargetKey("sim", "r3", "members")


def add_property(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "properties": {**document["properties"], "zz_added": {"type": "string"}}}


@dataclass
class World:
    config_path: Path
    parts: Components
    http: httpx.Client
    directory: Path

    def cli(self, *args: str) -> tuple[int, str]:
        """``main`` with ``--config`` after the command (and its action, for ``export git`` / ``db upgrade``)."""
        split = 2 if args[0] in ("export", "db", "config") else 1
        out = io.StringIO()
        code = main([*args[:split], "--config", str(self.config_path), *args[split:]], out=out)
        return code, out.getvalue()

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Authorization": f"Bearer {API_TOKEN}"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("cli")
    with Simulator(REGIONS, token=TOKEN) as simulator:
        data = config_data(simulator, migrate(f"sqlite:///{directory / 'monitor.db'}"), confirm_reads=1)
        data["api"] = {"token": API_TOKEN}
        config_path = directory / "config.yaml"
        config_path.write_text(yaml.safe_dump(data))
        config = parse_config(data, "test")
        parts = build(config)
        loop = asyncio.new_event_loop()

        def poll(keys: set[TargetKey]) -> None:
            for spec in [s for s in parts.specs if s.key in keys]:
                loop.run_until_complete(parts.service.poll(spec))

        poll({s.key for s in parts.specs} - {UNPOLLED})
        simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
        for key in (MEMBER, IMAGE):
            simulator.set_document(key.region, key.schema, add_property(simulator.document(key.region, key.schema)))
        poll({IMAGES, MEMBER, IMAGE})
        context = ApiContext(config, ReadModel(config, parts.database), parts.database.drift)
        context.set_targets(parts.specs)
        server = WebServer(create_app(parts.metrics, lambda: {"scheduler": True}, context), "127.0.0.1", 0)
        server.start()
        http = httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10)
        try:
            yield World(config_path, parts, http, directory)
        finally:
            http.close()
            server.stop()
            loop.run_until_complete(parts.aclose())
            loop.close()


def target_args(key: TargetKey) -> tuple[str, ...]:
    return ("--cloud", key.cloud, "--region", key.region, "--schema", key.schema)


def api_path(key: TargetKey, action: str) -> str:
    return f"/api/targets/{key.cloud}/{key.region}/{key.schema}/{action}"


def drift(world: World, key: TargetKey) -> dict[str, str]:
    """rule → fingerprint of the target's drift, from the CLI."""
    code, out = world.cli("drift", *target_args(key), "--json")
    assert code == 0, out
    return {item["rule"]: item["fingerprint"] for item in json.loads(out)}


def refused(world: World, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Runs the CLI, asserts exit code 2 (a usage error), returns what it said on stderr."""
    capsys.readouterr()
    if args[0] in ("demo",):
        with pytest.raises(SystemExit) as stopped:
            main(list(args), out=io.StringIO())
        code = stopped.value.code
    else:
        try:
            code, _ = world.cli(*args)
        except SystemExit as exc:  # argparse: a bad option value
            code = exc.code
    assert code == 2, args
    return capsys.readouterr().err


# --- ack and expect: one layer, the API's rules and sentences (17.4, 18.7) ---------------------------------


def test_ack_takes_a_fingerprint_prefix_on_the_command_line_and_in_the_api(world: World) -> None:
    fingerprints = drift(world, IMAGES)
    removed, added = fingerprints["property-removed"], fingerprints["enum-value-added"]
    code, out = world.cli("ack", *target_args(IMAGES), "--fingerprint", removed[:10].upper(), "--comment", "known",
                          "--by", "al", "--json")  # fmt: skip
    assert code == 0, out
    by_cli = json.loads(out)
    response = world.post(api_path(IMAGES, "ack"), {"fingerprints": [added[:8]], "comment": "known", "by": "al"})
    assert response.status_code == 200, response.text
    by_api = response.json()
    assert by_cli["acknowledged"] == [removed] and by_api["acknowledged"] == [added]
    assert set(by_cli) == set(by_api) and by_cli["not_pending"] == by_api["not_pending"] == []
    assert {item["fingerprint"]: item["acknowledged"] for item in json.loads(world.cli(
        "drift", *target_args(IMAGES), "--json")[1])} == {removed: True, added: True}  # fmt: skip


def test_a_full_fingerprint_not_in_the_drift_is_stored_and_reported_not_pending_by_both(world: World) -> None:
    unknown = "0" * 64
    code, out = world.cli("ack", *target_args(MEMBER), "--fingerprint", unknown, "--comment", "ahead")
    assert code == 0
    assert out == f"{MEMBER}: acknowledged 1 change(s); not pending (not in the drift now, or acknowledged already): "\
        f"{unknown[:16]}\n"  # fmt: skip
    answer = world.post(api_path(MEMBER, "ack"), {"fingerprints": [unknown], "comment": "ahead"}).json()
    assert answer["acknowledged"] == answer["not_pending"] == [unknown]


BAD_FINGERPRINTS = {
    "abc": "fingerprint 'abc' must be 8 to 64 hexadecimal characters: a fingerprint from drift, or its start",
    "zzzzzzzz": "fingerprint 'zzzzzzzz' must be 8 to 64 hexadecimal characters",
    "ffffffffff": "no change in the drift of sim/r2/member has a fingerprint starting ffffffffff; see its drift",
}


@pytest.mark.parametrize("given", sorted(BAD_FINGERPRINTS))
def test_cli_and_api_refuse_a_bad_fingerprint_with_the_same_rule(
    world: World, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    said = refused(world, capsys, "ack", *target_args(MEMBER), "--fingerprint", given, "--comment", "x")
    assert f"schema-drift-monitor: {BAD_FINGERPRINTS[given]}" in said
    answer = world.post(api_path(MEMBER, "ack"), {"fingerprints": [given], "comment": "x"})
    assert answer.status_code == (404 if given.startswith("f") else 400)
    rule = BAD_FINGERPRINTS[given].split(" must be ")[-1]
    assert rule in answer.json()["error"]
    assert "list[" not in answer.json()["error"] and "pattern" not in answer.json()["error"]


def test_approving_a_target_without_a_snapshot_is_refused_alike(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    said = refused(world, capsys, "ack", *target_args(UNPOLLED), "--approve", "--comment", "x")
    answer = world.post(api_path(UNPOLLED, "ack"), {"approve": True, "comment": "x"})
    assert answer.status_code == 409
    assert said.endswith(f"schema-drift-monitor: {answer.json()['error']}\n")
    assert answer.json()["error"] == "sim/r3/members has no snapshot to approve yet"


def test_ack_and_approve_print_the_api_answer_with_json(world: World) -> None:
    code, out = world.cli("ack", *target_args(IMAGE), "--approve", "--comment", "rolled out", "--json")
    assert code == 0
    answer = json.loads(out)
    latest = json.loads(world.cli("snapshots", *target_args(IMAGE), "--json")[1])[-1]["id"]
    assert answer == {"cloud": "sim", "region": "r3", "schema": "image", "acknowledged": [], "not_pending": [],
                      "approved_snapshot_id": latest, "expires_at": None}  # fmt: skip


def test_expect_is_a_cli_command_and_an_api_route_with_the_same_answer(world: World) -> None:
    code, out = world.cli("expect", "--cloud", "sim", "--schema", "images", "--for", "2h", "--start",
                          "2999-01-01T00:00:00Z", "--comment", "CHG-1", "--by", "al", "--json")  # fmt: skip
    assert code == 0, out
    by_cli = json.loads(out)
    body = {"cloud": "sim", "schema": "images", "duration_seconds": 7200, "starts_at": "2999-01-01T00:00:00Z",
            "comment": "CHG-1", "by": "al"}  # fmt: skip
    response = world.post("/api/expect", body)
    assert response.status_code == 200, response.text
    by_api = response.json()
    assert by_cli["starts_at"].startswith("2999-01-01T00:00:00") and by_cli["ends_at"].startswith("2999-01-01T02:00")
    assert (
        {k: v for k, v in by_cli.items() if not k.endswith("_at")}
        == {k: v for k, v in by_api.items() if not k.endswith("_at")}
        == {"cloud": "sim", "schema": "images", "comment": "CHG-1", "by": "al"}
    )
    code, text = world.cli("expect", "--cloud", "sim", "--for", "1h", "--comment", "CHG-2")
    assert code == 0 and text.startswith("changes to sim (all schemas) are expected from ")
    windows = world.parts.database.drift.windows(utcnow())
    assert {(w.schema, w.comment) for w in windows} >= {("images", "CHG-1"), (None, "CHG-2")}


def test_expect_refuses_alike_on_both_surfaces(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (("--cloud", "nosuch"), {"cloud": "nosuch"}, 400,
         "cloud 'nosuch' is not in the configuration; cloud must be one of: sim"),
        (("--cloud", "sim", "--schema", "nope"), {"cloud": "sim", "schema": "nope"}, 400,
         "schema 'nope' is not in the configuration; schema must be one of: image, images, member, members"),
        (("--cloud", "sim", "--start", "2001-01-01"), {"cloud": "sim", "starts_at": "2001-01-01T00:00:00Z"}, 409,
         "the window from 2001-01-01 00:00 to 2001-01-01 01:00 UTC has ended already"),
    ]  # fmt: skip
    for options, body, status, sentence in cases:
        said = refused(world, capsys, "expect", *options, "--for", "1h", "--comment", "x")
        answer = world.post("/api/expect", {"duration_seconds": 3600, "comment": "x", **body})
        assert answer.status_code == status, answer.text
        assert sentence in said and sentence in answer.json()["error"]
        assert "has the monitor polled it" not in said


# --- option values and labels (18.8) ----------------------------------------------------------------------


NUMERIC_OPTIONS = [
    (("history", "--limit", "-5"), "argument --limit: must be a whole number from 1 to 1000000, got '-5'"),
    (("history", "--limit", "0"), "argument --limit: must be a whole number from 1 to 1000000, got '0'"),
    (("history", "--limit", "ten"), "argument --limit: must be a whole number"),
    (("history", "--since", "yesterday"), "argument --since: must be a duration ago (24h, 7d) or an ISO 8601"),
    (("diff", *target_args(IMAGES), "--from", "0"), "argument --from: must be a whole number from 1 to"),
    (("diff", *target_args(IMAGES), "--to", "-1"), "argument --to: must be a whole number from 1 to"),
    (("ack", *target_args(IMAGES), "--fingerprint", "0" * 64, "--comment", "x", "--expires", "0"),
     "argument --expires: must be more than 0, got '0'"),
    (("ack", *target_args(IMAGES), "--fingerprint", "0" * 64, "--comment", "x", "--expires", "20y"),
     "argument --expires: must be a duration like 90s, 15m, 2h or 7d, got '20y'"),
    (("expect", "--cloud", "sim", "--for", "0s", "--comment", "x"), "argument --for: must be more than 0"),
    (("expect", "--cloud", "sim", "--for", "11000d", "--comment", "x"), "argument --for: must be at most"),
    (("expect", "--cloud", "sim", "--for", "1h", "--start", "soon", "--comment", "x"), "argument --start: must be"),
    (("demo", "--interval", "0"), "argument --interval: must be more than 0"),
    (("demo", "--change-after=-1s"), "argument --change-after: must be a duration like"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "sentence"), NUMERIC_OPTIONS, ids=[" ".join(args) for args, _ in NUMERIC_OPTIONS])
def test_a_bad_numeric_or_time_option_is_a_usage_error(
    world: World, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], sentence: str
) -> None:
    said = refused(world, capsys, *args)
    assert sentence in said and "usage:" in said


def test_an_unknown_label_is_named_on_every_command_that_takes_one(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = "cloud 'nosuch' is not in the configuration; cloud must be one of: sim"
    for args in (("history", "--cloud", "nosuch"), ("surface", "--cloud", "nosuch"),
                 ("compare", "--cloud", "nosuch", "--schema", "images"),
                 ("compare", "--cloud", "sim", "--schema", "images", "--with-cloud", "nosuch"),
                 ("export", "git", str(world.directory / "never"), "--cloud", "nosuch")):  # fmt: skip
        assert expected in refused(world, capsys, *args), args
    assert not (world.directory / "never").exists()
    for api in ("/api/changes?cloud=nosuch", "/api/surface?cloud=nosuch", "/api/compare?cloud=nosuch&schema=images"):
        answer = world.http.get(api)
        assert answer.status_code == 400 and expected in answer.json()["error"], api
    region = "region 'r9' is not in the configuration; region must be one of: r1, r2, r3"
    assert region in refused(world, capsys, "history", "--region", "r9")
    target = refused(world, capsys, "drift", "--cloud", "nosuch", "--region", "r1", "--schema", "images")
    assert target.splitlines()[-1] == (
        "schema-drift-monitor: no configured target nosuch/r1/images: cloud 'nosuch' is not in the configuration "
        "(clouds: sim)"
    )
    assert "cloud sim has no region 'r9' (regions: r1, r2, r3)" in refused(
        world, capsys, "snapshots", "--cloud", "sim", "--region", "r9", "--schema", "images")  # fmt: skip
    assert "has the monitor polled it" not in world.http.get("/api/targets/nosuch/r1/images/drift").text


def test_history_says_whether_nothing_matched_or_nothing_was_recorded(world: World) -> None:
    code, out = world.cli("history", "--since", "2999-01-01")
    assert code == 0 and out == "no changes recorded that match\n"
    code, out = world.cli("history", "--limit", "1", "--json")
    assert code == 0 and len(json.loads(out)) == 1


# --- discoverability (18.9) ---------------------------------------------------------------------------------


def leaf_parsers() -> dict[str, tuple[Any, str]]:
    """Each (sub)command's parser and its one line, by its full name."""
    root = build_parser()
    found: dict[str, tuple[Any, str]] = {}
    top = next(a for a in root._actions if a.dest == "command")
    for command in COMMANDS:
        parser = top.choices[command.name]  # type: ignore[index]
        found[command.name] = (parser, command.about)
        for action in command.actions:
            sub = next(a for a in parser._actions if a.dest == f"{command.name}_command")
            found[f"{command.name} {action.name}"] = (sub.choices[action.name], action.about)
    return found


def test_every_subcommand_help_starts_with_its_one_line_description(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # one line in an 80-column terminal
    parsers = leaf_parsers()
    assert {"history", "ack", "expect", "export git", "db upgrade", "config check", "demo"} <= set(parsers)
    for name, (parser, about) in parsers.items():
        lines = parser.format_help().splitlines()
        first = lines.index("") + 1  # usage, a blank line, then the description
        assert lines[first] == about and lines[first + 1] == "", name


def test_every_command_that_prints_data_takes_json(world: World) -> None:
    parsers = leaf_parsers()
    without = {name for name, (parser, _) in parsers.items() if "--json" not in parser.format_help()}
    assert without == {"run", "demo", "healthcheck", "export", "db", "config"}  # daemons, the probe, groups of actions
    code, out = world.cli("config", "check", "--json")
    checked = json.loads(out)
    assert code == 0 and len(checked["targets"]) == 12 and checked["clouds"][0]["name"] == "sim"
    assert TOKEN not in out
    code, out = world.cli("export", "git", str(world.directory / "history"), "--schema", "images", "--json")
    exported = json.loads(out)
    assert code == 0 and exported["scope"] == "*/*/images" and exported["added"] == 4
    code, out = world.cli("db", "upgrade", "--json")
    upgraded = json.loads(out)
    assert code == 0 and upgraded["revision"] == upgraded["revision_before"]


# --- consumers: the matrix, its formats and exit codes; check's CI formats (issue 19) -----------------------


@dataclass
class ConsumerWorld:
    """Real documents at three levels (tests/support/consumers.py), polled once into SQLite; ``glance/r2/images``
    answers 503 from the start, so openstacksdk-downloads is unknown in r2."""

    config_path: Path
    directory: Path
    surface: SurfaceSimulator

    def cli(self, *args: str, config: Path | None = None) -> tuple[int, str]:
        out = io.StringIO()
        code = main([args[0], "--config", str(config or self.config_path), *args[1:]], out=out)
        return code, out.getvalue()


@pytest.fixture(scope="module")
def consumer_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumerWorld]:
    directory = tmp_path_factory.mktemp("consumers")
    with surface_at() as surface:
        surface.serve("r2", "image", SurfaceDocument(503, {}, {"error": "down"}), "/v2/schemas/images")
        url = migrate(f"sqlite:///{directory / 'monitor.db'}")
        rig = Rig(surface, url)
        rig.poll()
        rig.close()
        path = directory / "config.yaml"
        path.write_text(yaml.safe_dump(consumers_config(surface, url)))
        yield ConsumerWorld(path, directory, surface)


def test_consumers_prints_the_matrix_and_exits_3_when_a_pair_is_broken(consumer_world: ConsumerWorld) -> None:
    code, out = consumer_world.cli("consumers")
    assert code == 3
    lines = out.splitlines()
    assert lines[0] == ("terraform-openstack (terraform-provider-openstack 3.x, the infra pipelines): 3 region(s): "
                        "2 compatible, 1 broken, 0 unknown")  # fmt: skip
    assert "  r1  BROKEN     compute-versions: v2.1 serves microversion 2.96 [" in out
    assert "]: max microversion 2.95 < required 2.96" in out
    assert "  r2  unknown    images: /properties/images/items/properties/os_hash_algo exists [" in out
    assert "the polls of glance/r2/images are failing (http_503)" in out


def test_consumers_json_has_the_documented_shape(consumer_world: ConsumerWorld) -> None:
    code, out = consumer_world.cli("consumers", "--format", "json")
    found = json.loads(out)
    assert code == 3
    assert [c["name"] for c in found["consumers"]] == ["terraform-openstack", "openstacksdk-downloads", "legacy-v2"]
    terraform = found["consumers"][0]
    assert set(terraform) == {"name", "description", "clouds", "requirements", "regions"}
    [r1, r2, r3] = terraform["regions"]
    assert set(r1) == {"region", "clouds", "compatible", "broken", "unknown"}
    microversion = terraform["requirements"][0]["id"]
    assert r1 == {
        "region": "r1",
        "clouds": ["openstack"],
        "compatible": False,
        "unknown": [],
        "broken": [{"requirement": microversion, "reason": "max microversion 2.95 < required 2.96"}],
    }
    assert (r2["compatible"], r3["compatible"]) == (True, True)
    downloads = {r["region"]: r["compatible"] for r in found["consumers"][1]["regions"]}
    assert downloads == {"r1": True, "r2": None, "r3": False}
    assert consumer_world.cli("consumers", "--json")[1] == out


def test_consumers_junit_is_valid_junit_xml_with_a_failure_per_broken_requirement(
    consumer_world: ConsumerWorld,
) -> None:
    code, out = consumer_world.cli("consumers", "--format", "junit")
    assert code == 3
    root = ElementTree.fromstring(out.encode())  # a real XML parser (expat)
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert root.tag == "testsuites" and root.get("failures") == "2" and root.get("skipped") == "2"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert list(suites) == ["terraform-openstack", "openstacksdk-downloads", "legacy-v2"]
    terraform = suites["terraform-openstack"]
    assert (terraform.get("tests"), terraform.get("failures"), terraform.get("skipped")) == ("6", "1", "0")
    [failed] = [case for case in terraform.findall("testcase") if case.find("failure") is not None]
    assert failed.get("classname") == "terraform-openstack.r1"
    assert re.fullmatch(
        r"r1: compute-versions: v2\.1 serves microversion 2\.96 \[[0-9a-f]{8}\]", failed.get("name", "")
    )
    failures = failed.findall("failure")
    assert len(failures) == 1 and failures[0].get("message") == "max microversion 2.95 < required 2.96"
    for suite in suites.values():
        for case in suite.findall("testcase"):
            assert len(case.findall("failure")) + len(case.findall("skipped")) <= 1
    skipped = [c for c in suites["openstacksdk-downloads"].findall("testcase") if c.find("skipped") is not None]
    assert [c.get("classname") for c in skipped] == ["openstacksdk-downloads.r2"] * 2
    code, strict = consumer_world.cli("consumers", "--format", "junit", "--strict")
    assert code == 3 and ElementTree.fromstring(strict.encode()).get("failures") == "4"


def test_consumers_markdown_is_a_table_and_the_lists_of_what_fails(consumer_world: ConsumerWorld) -> None:
    code, out = consumer_world.cli("consumers", "--format", "markdown")
    assert code == 3
    lines = out.splitlines()
    assert lines[:5] == [
        "| consumer | r1 | r2 | r3 |", "| --- | --- | --- | --- |",
        "| terraform-openstack | **broken** | compatible | compatible |",
        "| openstacksdk-downloads | compatible | unknown | **broken** |",
        "| legacy-v2 | compatible | compatible | compatible |",
    ]  # fmt: skip
    assert "**Broken**" in lines and "**Unknown**" in lines
    assert any(line.startswith("- terraform-openstack in r1: compute-versions: v2.1 serves") for line in lines)


def test_consumers_exit_codes_follow_the_filters_and_strict(consumer_world: ConsumerWorld) -> None:
    assert consumer_world.cli("consumers", "--consumer", "legacy-v2")[0] == 0
    assert consumer_world.cli("consumers", "--region", "r2")[0] == 0  # unknown does not fail ...
    assert consumer_world.cli("consumers", "--region", "r2", "--strict")[0] == 3  # ... unless --strict
    code, out = consumer_world.cli("consumers", "--consumer", "terraform-openstack", "--region", "r3", "--json")
    assert code == 0 and [r["region"] for r in json.loads(out)["consumers"][0]["regions"]] == ["r3"]


def test_consumers_refuses_unknown_names_and_a_config_without_consumers(
    consumer_world: ConsumerWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    assert consumer_world.cli("consumers", "--consumer", "nope")[0] == 2
    assert "no consumer 'nope' (consumers: terraform-openstack, openstacksdk-downloads, legacy-v2)" in (
        capsys.readouterr().err
    )
    assert consumer_world.cli("consumers", "--region", "r9")[0] == 2
    assert "no consumer is judged in region 'r9' (regions: r1, r2, r3)" in capsys.readouterr().err
    bare = yaml.safe_load(consumer_world.config_path.read_text())
    del bare["consumers"]
    path = consumer_world.directory / "bare.yaml"
    path.write_text(yaml.safe_dump(bare))
    assert consumer_world.cli("consumers", config=path)[0] == 2
    assert "declares no consumers: add a consumers: section (see docs/consumers.md)" in capsys.readouterr().err


def test_consumers_exits_1_when_the_database_cannot_be_read(
    consumer_world: ConsumerWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(consumer_world.config_path.read_text())
    garbage = consumer_world.directory / "garbage.db"
    garbage.write_bytes(b"this is no SQLite database, but a file someone put there" * 100)
    data["database"]["url"] = f"sqlite:///{garbage}"
    path = consumer_world.directory / "nodb.yaml"
    path.write_text(yaml.safe_dump(data))
    assert consumer_world.cli("consumers", config=path)[0] == 1
    assert "cannot open database" in capsys.readouterr().err


def test_check_writes_junit_and_markdown_for_ci(consumer_world: ConsumerWorld, tmp_path: Path) -> None:
    data = yaml.safe_load(consumer_world.config_path.read_text())
    data["database"]["url"] = f"sqlite:///{tmp_path / 'check.db'}"
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(data))
    code, out = consumer_world.cli("check", "--format", "junit", config=path)
    root = ElementTree.fromstring(out.encode())
    assert code == 1  # glance/r2/images answers 503
    [suite] = root.findall("testsuite")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert len(cases) == 6 and suite.get("failures") == "1"
    failure = cases["glance/r2/images"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("poll failed (http_503)")
    consumer_world.surface.set_document("r2", "compute", nova("2.90"))
    try:
        code, out = consumer_world.cli("check", "--format", "junit", "--fail-on", "breaking", config=path)
        assert code == 3
        gated = ElementTree.fromstring(out.encode()).find("testsuite/testcase[@name='openstack/r2/compute-versions']")
        assert gated is not None
        message = gated.find("failure")
        assert message is not None and "breaking max-microversion-lowered /versions/v2.1/max_version" in (
            message.get("message") or ""
        )
        code, out = consumer_world.cli("check", "--format", "markdown", config=path)
    finally:
        consumer_world.surface.set_document("r2", "compute", nova("2.96"))
    assert code == 1
    lines = out.splitlines()
    assert lines[:3] == ["| target | outcome | details |", "| --- | --- | --- |",
                         "| glance/r2/images | failed | poll failed (http\\_503): HTTP 503 |"]  # fmt: skip


def test_healthcheck_without_a_config_file_asks_the_default_address(tmp_path: Path) -> None:
    """The image's HEALTHCHECK names the mounted config; ``demo`` has none, so the default address is asked."""
    from monitor.cli import _health_address

    args = build_parser().parse_args(["healthcheck", "--config", str(tmp_path / "absent.yaml")])
    assert _health_address(args) == ("127.0.0.1:9478", None)
    web = tmp_path / "web.yml"
    args = build_parser().parse_args(["healthcheck", "--config", str(tmp_path / "absent.yaml"),
                                      "--web.config.file", str(web)])  # fmt: skip
    assert _health_address(args) == ("127.0.0.1:9478", str(web))
    printed = io.StringIO()
    code = main(["healthcheck", "--config", str(tmp_path / "absent.yaml"), "--web.config.file", str(web)], printed)
    assert code == 1  # the web configuration named does not exist: unhealthy, one line, never a traceback
    assert printed.getvalue().startswith("unhealthy: ") and printed.getvalue().count("\n") == 1
