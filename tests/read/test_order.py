"""Breaking first, everywhere changes are listed: one poll finds five changes of every severity, and each surface
that lists them — the log line, ``history``, ``diff``, ``drift`` and ``compare`` on the command line and in the
read API, the UI's tables, the notification report and its Slack and Alertmanager renderings, the git export's
commit message — lists them worst first, then by JSON Pointer (:func:`monitor.domain.change_order`).

The pipeline is the real one on SQLite (``tests.web.test_api.Live``); the changes are made so that their
classification order (by path) puts the info change first and a breaking one last.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.domain import Change, Severity, TargetKey, change_order, worst_first
from monitor.read.model import poll_order
from monitor.signals.gitexport import commit_message
from monitor.signals.notify.alertmanager import alerts_for
from monitor.signals.notify.report import build_report, change_lines
from monitor.signals.notify.slack import slack_message
from monitor.store.records import ChangeRecord, ExportCursor, ExportedChange, ExportedSnapshot, HistoryFilter
from tests.conftest import REGIONS, TOKEN
from tests.support.live_api import Live, api_config
from tests.support.regions import Simulator, mutate_breaking

R1 = TargetKey("sim", "r1", "images")
ITEM = "/properties/images/items/properties"
EXPECTED = [  # worst first, then by path
    ("breaking", "property-removed", f"{ITEM}/min_disk"),
    ("breaking", "max-length-decreased", f"{ITEM}/name/maxLength"),
    ("warning", "enum-value-added", f"{ITEM}/disk_format/enum"),
    ("info", "property-added", "/properties/aaa_added"),
    ("cosmetic", "description-changed", f"{ITEM}/name/description"),
]
RULES = [rule for _, rule, _ in EXPECTED]


def mixed(document: dict[str, Any]) -> dict[str, Any]:
    """The demo's breaking change plus one change of each other kind (see ``EXPECTED``)."""
    changed = mutate_breaking(document)
    name = changed["properties"]["images"]["items"]["properties"]["name"]
    name["maxLength"], name["description"] = 100, "The image's name"
    changed["properties"] = {"aaa_added": {"type": "string"}, **changed["properties"]}
    return changed


def listed(text: str) -> list[str]:
    """The rules of ``EXPECTED`` in the order ``text`` first names them (each must occur)."""
    missing = [rule for rule in RULES if rule not in text]
    assert not missing, f"{missing} not in {text[:3000]}"
    return sorted(RULES, key=text.index)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, list[str]]]:
    """Every target polled, then r1's images changed in five ways and polled again; the log lines of that."""
    directory = tmp_path_factory.mktemp("order")
    lines = Lines()
    logger = logging.getLogger("monitor.poll")
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    with Simulator(REGIONS, token=TOKEN) as simulator:
        instance = Live(api_config(simulator, f"sqlite:///{directory / 'monitor.db'}"))
        try:
            instance.poll()
            simulator.set_document("r1", "images", mixed(simulator.document("r1", "images")))
            instance.poll(R1)
            logger.removeHandler(lines)
            logger.setLevel(level)
            yield instance, lines.messages
        finally:
            logger.removeHandler(lines)
            logger.setLevel(level)
            instance.close()


def cli(live: Live, tmp_path: Path, *args: str) -> str:
    config = live.parts.config
    data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["database"]["url"] = config.database.url.get_secret_value()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    out = io.StringIO()
    assert main([*args[:1], "--config", str(path), *args[1:]], out=out) == 0
    return out.getvalue()


def records(live: Live) -> list[ChangeRecord]:
    """r1's stored changes as the repository returns them (by id)."""
    return live.parts.database.repository.history(HistoryFilter(cloud="sim", region="r1", schema="images"))


def test_the_changes_are_the_five_expected(live: tuple[Live, list[str]]) -> None:
    assert sorted((r.severity.value, r.rule, r.path) for r in records(live[0])) == sorted(EXPECTED)


def test_the_log_line_names_the_breaking_changes_first(live: tuple[Live, list[str]]) -> None:
    (line,) = [message for message in live[1] if "schema changed" in message]
    assert "5 change(s), worst breaking: property-removed" in line
    assert listed(line) == RULES


def test_the_command_line_lists_breaking_first(live: tuple[Live, list[str]], tmp_path: Path) -> None:
    labels = ("--cloud", "sim", "--region", "r1", "--schema", "images")
    assert listed(cli(live[0], tmp_path, "history", *labels)) == RULES
    assert listed(cli(live[0], tmp_path, "diff", *labels)) == RULES
    assert listed(cli(live[0], tmp_path, "diff", *labels, "--format", "markdown")) == RULES
    assert listed(cli(live[0], tmp_path, "drift", *labels)) == RULES
    assert listed(cli(live[0], tmp_path, "compare", "--cloud", "sim", "--schema", "images")) == RULES


def rules(changes: list[dict[str, Any]]) -> list[str]:
    return [change["rule"] for change in changes]


def test_the_read_api_lists_breaking_first(live: tuple[Live, list[str]]) -> None:
    api = live[0]
    assert rules(api.get("/api/changes", cloud="sim", region="r1", schema="images")["changes"]) == RULES
    assert rules(api.get("/api/targets/sim/r1/images/diff", format="json")[0]["changes"]) == RULES
    assert rules(api.get("/api/targets/sim/r1/images/drift")["changes"]) == RULES
    (deviation,) = api.get("/api/compare", cloud="sim", schema="images")["deviations"]
    assert rules(deviation["changes"]) == RULES


def test_pages_of_the_api_history_split_a_poll_worst_first(
    live: tuple[Live, list[str]],
) -> None:
    api = live[0]
    first = api.get("/api/changes", cloud="sim", region="r1", schema="images", limit=3)
    ids = sorted((r.id for r in records(api)), reverse=True)
    assert [c["id"] for c in first["changes"]] == ids[:3]  # the newest three by id ...
    assert [c["rule"] for c in first["changes"]] == RULES[:3]  # ... are the worst three: stored worst last
    assert first["next"].endswith(f"before_id={ids[2]}")
    rest = api.get(first["next"])
    assert [c["id"] for c in rest["changes"]] == ids[3:] and rest["next"] is None
    assert [c["rule"] for c in rest["changes"]] == RULES[3:]


def test_the_ui_tables_list_breaking_first(live: tuple[Live, list[str]]) -> None:
    api = live[0]
    for path in ("/ui/targets/sim/r1/images/diff", "/ui/targets/sim/r1/images/baseline",
                 "/ui/targets/sim/r1/images/against/sim/r2", "/ui/compare/sim/images"):  # fmt: skip
        html = api.http.get(path).text
        table = html[html.index('<table class="changes">') :]
        assert listed(table[: table.index("</table>")]) == RULES, path
    target = api.http.get("/ui/targets/sim/r1/images").text
    for section in ("drift", "changes"):
        part = target[target.index(f'<section aria-label="{section}">') :]
        assert listed(part[: part.index("</section>")]) == RULES, section


def test_notifications_list_breaking_first(live: tuple[Live, list[str]]) -> None:
    stored = records(live[0])
    report = build_report(stored, datetime.now(UTC), "https://x.example/ui/changes/{change_id}")
    (target,) = report["targets"]
    assert [c["rule"] for c in target["changes"]] == RULES
    (worst,) = [r for r in stored if r.rule == RULES[0]]
    assert target["link"] == f"https://x.example/ui/changes/{worst.id}"  # the permalink of the worst change
    assert listed(slack_message(report)["text"]) == RULES
    (alert,) = alerts_for(report, datetime.now(UTC) + timedelta(hours=1))
    assert listed(alert["annotations"]["description"]) == RULES


def test_a_queued_report_in_the_old_order_is_rendered_breaking_first() -> None:
    changes = [{"severity": s, "rule": r, "path": p} for s, r, p in reversed(EXPECTED)]
    assert [line.split()[1] for line in change_lines({"changes": changes})] == RULES


def test_the_git_export_message_lists_breaking_first(live: tuple[Live, list[str]]) -> None:
    (snapshot,) = [s for s in live[0].parts.database.export.snapshots() if s.target == R1 and s.changes]
    message = commit_message(snapshot, False, ExportCursor(snapshot.first_seen, snapshot.id, snapshot.id)).decode()
    assert listed(message) == RULES


# --- the order itself ------------------------------------------------------------------------------------


def record(change_id: int, snapshot: int, severity: str, path: str, region: str = "r1") -> ChangeRecord:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return ChangeRecord(change_id, TargetKey("sim", region, "images"), snapshot, at, path, "rule",
                        Severity(severity), None, None, "a", "b")  # fmt: skip


def test_the_order_is_severity_then_path_then_rule() -> None:
    changes = [Change("/b", "z", Severity.INFO), Change("/a", "z", Severity.COSMETIC), Change("/b", "a", Severity.INFO),
               Change("/z", "x", Severity.BREAKING), Change("/c", "y", Severity.WARNING)]  # fmt: skip
    assert [(c.path, c.rule) for c in worst_first(changes)] == [("/z", "x"), ("/c", "y"), ("/b", "a"), ("/b", "z"),
                                                                ("/a", "z")]  # fmt: skip
    assert sorted(changes, key=change_order) == worst_first(changes)


def test_history_keeps_polls_in_time_order_and_each_poll_worst_first() -> None:
    stored = [record(1, 10, "info", "/a"), record(2, 10, "breaking", "/b"), record(3, 20, "warning", "/c", "r2"),
              record(4, 30, "cosmetic", "/a"), record(5, 30, "breaking", "/z")]  # fmt: skip
    assert [r.id for r in poll_order(reversed(stored))] == [2, 1, 3, 5, 4]
    assert [r.id for r in poll_order(stored, newest_first=True)] == [5, 4, 3, 2, 1]
    assert poll_order([]) == []


def test_changes_stored_in_another_order_are_still_listed_worst_first() -> None:
    """Changes stored before the poll sorted them (ids in path order) are sorted where they are listed."""
    stored = [record(i + 1, 10, severity, path) for i, (severity, _, path) in enumerate(sorted(EXPECTED, key=str))]
    worst = [path for _, _, path in EXPECTED]
    assert [r.path for r in poll_order(stored)] == worst
    report = build_report(stored, datetime.now(UTC))
    assert [c["path"] for c in report["targets"][0]["changes"]] == worst
    exported = tuple(ExportedChange(rule, Severity(sev), path) for sev, rule, path in sorted(EXPECTED, key=str))
    snapshot = ExportedSnapshot(7, R1, datetime.now(UTC), "ab" * 32, "{}", exported)
    assert listed(commit_message(snapshot, False, ExportCursor(snapshot.first_seen, 7, 7)).decode()) == RULES


def test_a_report_lists_the_worst_target_first() -> None:
    stored = [record(1, 10, "info", "/a", "r2"), record(2, 11, "breaking", "/b", "r3"), record(3, 12, "info", "/c")]
    report = build_report(stored, datetime.now(UTC))
    assert [t["region"] for t in report["targets"]] == ["r3", "r2", "r1"]
