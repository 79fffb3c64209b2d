"""The Grafana dashboard and provisioning under deploy/grafana/.

Structure (uid, panel ids, grid, data source variables), every PromQL expression naming only metrics the daemon
exports and parsing (``promtool check rules``), the importable copy being generated from the provisioned one,
and the provisioning YAML.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.domain import FailureReason, MetricsDetail, PollResult, Severity, TargetKey
from monitor.judge.kinds.microversion import Microversion
from monitor.judge.kinds.versions import VersionEntry
from monitor.signals.metrics import Metrics
from tests.conftest import promtool
from tests.support.grafana_queries import (
    DASHBOARD,
    GRAFANA_DIR,
    dashboard_expressions,
    dashboard_queries,
    iter_panels,
    load_dashboard,
    raw_queries,
    substitute,
)

DS_REF = {"type": "prometheus", "uid": "${datasource}"}
TARGET_VARIABLES = ("cloud", "region", "schema")
# Change-intelligence metrics per target (the change-intelligence panels must use each of them).
INTELLIGENCE_TARGET_METRICS = {
    "schemadrift_drift_unacknowledged",
    "schemadrift_region_deviates",
    "schemadrift_flapping",
}
# Metrics per (cloud, schema), without a region label: filtered by $cloud and $schema only, since a region
# matcher would drop every series as soon as a region is selected.
GROUP_METRICS = {
    "schemadrift_region_variants",
    "schemadrift_rollout_in_progress",
    "schemadrift_rollout_last_completed_timestamp_seconds",
    "schemadrift_rollout_last_duration_seconds",
}
# Metrics per (cloud, region) of the identity service, without a schema label; region "_discovery" is the
# token that finds a cloud's regions, so the region matcher keeps it.
IDENTITY_METRICS = {
    "schemadrift_auth_requests_total",
    "schemadrift_auth_failures_total",
    "schemadrift_auth_token_expiry_timestamp_seconds",
}
# Metrics of the replicas sharing the targets: per process (``replica`` label) or its view of all of them, without
# cloud/region/schema labels.
REPLICA_METRICS = {
    "schemadrift_replica_info",
    "schemadrift_replica_owned_targets",
    "schemadrift_replica_leader",
    "schemadrift_replicas_live",
    "schemadrift_replicas_expected",
    "schemadrift_targets_unowned",
}
# Metrics per (cloud, region, service) of the Keystone/IAM catalog, without a schema label.
CATALOG_METRICS = {
    "schemadrift_catalog_service",
    "schemadrift_catalog_service_missing",
}
# API-surface metrics per target (with service, version, ... labels): filtered like any per-target metric.
SURFACE_METRICS = {
    "schemadrift_api_max_microversion",
    "schemadrift_api_min_microversion",
    "schemadrift_api_version_info",
    "schemadrift_target_kind",
}
# Metrics per (consumer, region) of the consumer contracts, exported by the leader: filtered by $region only.
CONSUMER_METRICS = {
    "schemadrift_consumer_compatible",
    "schemadrift_consumer_requirement_met",
}
METRIC = re.compile(r"schemadrift_[a-z_]+")
RANGE = re.compile(r"\[([^\]]+)\]")
SELECTOR = re.compile(r"(schemadrift_[a-z_]+)(\{[^}]*\})?")
# Metrics of the monitor itself, without cloud/region/schema labels.
GRID = "Status grid: region \N{MULTIPLICATION SIGN} schema"
MONITOR_METRICS = {
    "schemadrift_db_up",
    "schemadrift_db_errors_total",
    "schemadrift_notifications_total",
    "schemadrift_build_info",
}


def load_make_importable() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_importable", GRAFANA_DIR / "make_importable.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def exported(detail: MetricsDetail) -> set[str]:
    """The sample names the daemon exports under ``detail`` once everything a running fleet creates exists."""
    m = Metrics(CollectorRegistry(), "t", detail)
    m.register_targets([TargetKey("c", "r", "s")])  # also flapping (and under full drift_unacknowledged)
    m.set_drift(TargetKey("c", "r", "s"), {Severity.BREAKING: 1})  # under basic drift appears with its first
    m.register_channels(["x"])
    m.register_identity("c", "r")
    m.set_interval(TargetKey("c", "r", "s"), 300)  # the service sets it for every target at start-up
    m.register_groups([("c", "s")])  # what monitor.fleet.live.Fleet creates for every (cloud, schema)
    # a failure reason's series appears with the first failure of that reason
    m.observe_poll(PollResult(TargetKey("c", "r", "s"), datetime(2026, 1, 1, tzinfo=UTC), 1.0, ok=False,
                              reason=FailureReason.TLS))  # fmt: skip
    # the API surface: a versions target with microversions, and a catalog-derived cloud (monitor.targets.topology)
    versions = TargetKey("c", "r", "compute-versions")
    m.set_kind(versions, "versions", "compute")
    m.set_surface(versions, "compute", [VersionEntry("v2.1", "CURRENT", Microversion(2, 1), Microversion(2, 95))])
    m.set_catalog("c", {"r": ["compute"], "r2": ["compute", "network"]})
    # what monitor.ha.replicas exports at every heartbeat
    m.set_replica("replica-a", owned=1, live=2, leader=True, expected=2, unowned=0)
    # what monitor.fleet.consumers exports on the leader for every judged (consumer, region)
    m.set_consumer("tf", "r", False, {"815d30ea": False, "a1bd707f": True})
    return {s.name for family in m.registry.collect() for s in family.samples}


@pytest.fixture(scope="module")
def exported_names() -> set[str]:
    """Every sample name the daemon can export (metrics.detail: full)."""
    return exported("full")


@pytest.fixture(scope="module")
def exported_families() -> set[str]:
    m = Metrics(CollectorRegistry(), "t", "full")
    return {family.name for family in m.registry.collect()}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(iter_panels(dashboard["panels"]))


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def by_title(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (panel,) = [p for p in panels(dashboard) if p.get("title") == title]
    return panel


# --- structure ---------------------------------------------------------------------------------------------


def test_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "schema-drift-monitor"
    assert dashboard["title"]
    assert 39 <= dashboard["schemaVersion"] <= 41  # Grafana 10.x / 11.x
    assert dashboard.get("id") is None


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(ids) == len(set(ids))


def test_grid_positions_fit_24_columns_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], int] = {}
    for panel in dashboard["panels"]:  # top level: every row here is expanded (no nested panels)
        assert panel.get("panels", []) == [], f"panel {panel['id']}: collapsed rows are not used"
        gp = panel["gridPos"]
        assert gp["x"] >= 0 and gp["y"] >= 0 and gp["w"] >= 1 and gp["h"] >= 1, panel["id"]
        assert gp["x"] + gp["w"] <= 24, f"panel {panel['id']} is wider than the grid"
        for x in range(gp["x"], gp["x"] + gp["w"]):
            for y in range(gp["y"], gp["y"] + gp["h"]):
                assert (x, y) not in taken, f"panels {taken[(x, y)]} and {panel['id']} overlap at {(x, y)}"
                taken[(x, y)] = panel["id"]
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            assert panel["gridPos"]["w"] == 24 and panel["gridPos"]["x"] == 0


def test_every_query_panel_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in panels(dashboard):
        if panel["type"] in ("row", "text"):
            assert not panel.get("targets"), f"{panel['type']} panel {panel['id']} has queries"
            continue
        assert panel["datasource"] == DS_REF, panel["id"]
        assert panel["targets"], f"panel {panel['id']} has no queries"
        for target in panel["targets"]:
            assert target["datasource"] == DS_REF, (panel["id"], target["refId"])
            assert target["expr"].strip(), (panel["id"], target["refId"])
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["id"]


def test_templating_variables(dashboard: dict[str, Any]) -> None:
    v = variables(dashboard)
    assert v["datasource"]["type"] == "datasource" and v["datasource"]["query"] == "prometheus"
    assert v["datasource"]["current"]["value"] == "prometheus"  # the provisioned data source's uid
    expected = {
        "cloud": "label_values(schemadrift_poll_success, cloud)",
        "region": 'label_values(schemadrift_poll_success{cloud=~"$cloud"}, region)',
        "schema": 'label_values(schemadrift_poll_success{cloud=~"$cloud", region=~"$region"}, schema)',
    }
    for name, query in expected.items():
        var = v[name]
        assert var["type"] == "query" and var["datasource"] == DS_REF, name
        assert var["query"] == query and var["definition"] == query, name
        assert var["multi"] is True and var["includeAll"] is True, name
        assert var["allValue"] == ".*", name
    names = [var["name"] for var in dashboard["templating"]["list"]]
    assert names.index("datasource") < names.index("cloud") < names.index("region") < names.index("schema")


def test_per_target_metrics_are_filtered_by_the_target_variables(dashboard: dict[str, Any]) -> None:
    for where, raw in raw_queries(dashboard):
        if where.startswith("variable"):
            continue  # the variables build the filters
        for selector in SELECTOR.finditer(raw):
            name, matchers = selector.group(1), selector.group(2) or ""
            if name in MONITOR_METRICS:
                continue
            if name in REPLICA_METRICS:
                assert not re.search(r"\b(cloud|region|schema)=", matchers), f"{where}: {name} has no target labels"
                continue
            if name in CATALOG_METRICS:
                assert 'cloud=~"$cloud"' in matchers and 'region=~"$region"' in matchers, f"{where}: {name}"
                assert "schema" not in matchers, f"{where}: {name} has no schema label to filter on"
                continue
            if name in IDENTITY_METRICS:
                assert 'cloud=~"$cloud"' in matchers and 'region=~"$region|_discovery"' in matchers, f"{where}: {name}"
                assert "schema" not in matchers, f"{where}: {name} has no schema label to filter on"
                continue
            if name in CONSUMER_METRICS:
                assert 'region=~"$region"' in matchers, f"{where}: {name} is not filtered by $region"
                assert not re.search(r"\b(cloud|schema)=", matchers), f"{where}: {name} has no cloud or schema"
                continue
            if name in GROUP_METRICS:
                assert 'cloud=~"$cloud"' in matchers and 'schema=~"$schema"' in matchers, f"{where}: {name}"
                assert "region" not in matchers, f"{where}: {name} has no region label to filter on"
                continue
            for label in TARGET_VARIABLES:
                assert f'{label}=~"${label}"' in matchers, f"{where}: {name} is not filtered by ${label}"


def test_rate_windows_use_grafana_intervals(dashboard: dict[str, Any]) -> None:
    windows = set()
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            for window in RANGE.findall(target["expr"]):
                assert window in ("$__rate_interval", "$__range"), (panel["id"], window)
                windows.add(window)
    assert windows == {"$__rate_interval", "$__range"}


def test_status_grid_maps_up_failing_and_changed(dashboard: dict[str, Any]) -> None:
    grid = by_title(dashboard, GRID)
    expr = grid["targets"][0]["expr"]
    assert "schemadrift_poll_success" in expr and "schemadrift_last_change_timestamp_seconds" in expr
    assert "4 * max by (cloud, region, schema) (schemadrift_region_deviates{" in expr
    (mapping,) = grid["fieldConfig"]["defaults"]["mappings"]
    options = mapping["options"]
    assert (options["0"]["text"], options["0"]["color"]) == ("Failing", "red")
    assert (options["1"]["text"], options["1"]["color"]) == ("Up", "green")
    assert options["3"]["text"] == "Changed"
    assert options["5"]["text"] == "Deviating"
    # up (1) + changed (2) + deviating (4): every combination has a label
    assert set(options) == {str(value) for value in range(8)}
    assert all("Failing" in options[str(v)]["text"] for v in range(0, 8, 2))
    assert all("Failing" not in options[str(v)]["text"] for v in range(1, 8, 2))
    (matrix,) = grid["transformations"]
    assert matrix["id"] == "groupingToMatrix" and matrix["options"]["columnField"] == "schema"
    timeline = by_title(dashboard, "Target status over time")
    assert timeline["type"] == "state-timeline"


def test_required_panels_exist(dashboard: dict[str, Any]) -> None:
    def exprs(title: str) -> str:
        return "\n".join(t["expr"] for t in by_title(dashboard, title)["targets"])

    assert "schemadrift_poll_success" in exprs("Poll success ratio")
    assert "histogram_quantile(0.95" in exprs("Poll latency")
    assert "schemadrift_poll_duration_seconds_bucket" in exprs("Poll latency")
    assert "sum by (reason) (rate(schemadrift_poll_failures_total" in exprs("Failures by reason")
    assert "sum by (severity) (increase(schemadrift_changes_total" in exprs("Changes by severity")
    assert "schemadrift_db_up" in exprs("Database up")
    assert "schemadrift_db_errors_total" in exprs("Database errors by operation")
    assert "outcome" in exprs("Notifications by outcome")
    assert "schemadrift_build_info" in exprs("Build info")
    assert "schemadrift_auth_failures_total" in exprs("Token requests and failures")
    assert "schemadrift_auth_token_expiry_timestamp_seconds" in exprs("Token time left")


def test_change_intelligence_panels(dashboard: dict[str, Any]) -> None:
    def exprs(title: str) -> str:
        return "\n".join(t["expr"] for t in by_title(dashboard, title)["targets"])

    # No placeholder is left: every panel queries.
    assert [p["id"] for p in panels(dashboard) if p["type"] == "text"] == []
    assert "change-intelligence" not in json.dumps(dashboard)

    drift = by_title(dashboard, "Unacknowledged drift")
    assert drift["type"] == "table"
    severities = [found for t in drift["targets"] for found in re.findall(r'severity="(\w+)"', t["expr"])]
    assert severities == ["breaking", "warning", "info", "cosmetic"]
    assert all("schemadrift_drift_unacknowledged" in t["expr"] for t in drift["targets"])
    assert [t["id"] for t in drift["transformations"]][:2] == ["merge", "filterByValue"]
    assert "sum by (severity)" in exprs("Unacknowledged drift by severity")
    assert 'severity="breaking"' in exprs("Unacknowledged breaking drift")

    rollout = exprs("Rollout progress")
    for name in GROUP_METRICS | {"schemadrift_region_deviates"}:
        assert name in rollout, name
    assert "schemadrift_rollout_in_progress" in exprs("Rollouts in progress")
    assert by_title(dashboard, "Rollouts over time")["type"] == "state-timeline"

    assert "schemadrift_region_variants" in exprs("Documents served per cloud / schema")
    assert "schemadrift_region_deviates" in exprs("Deviating regions")
    assert "schemadrift_region_deviates" in exprs("Region deviation over time")
    assert "schemadrift_flapping" in exprs("Flapping targets")
    assert "schemadrift_flapping" in exprs("Flapping over time")


def test_change_tables_link_each_target_to_the_web_ui(dashboard: dict[str, Any]) -> None:
    ui_url = variables(dashboard)["ui_url"]
    assert ui_url["type"] == "textbox" and ui_url["query"].startswith("http")
    fields = "${__data.fields.cloud}/${__data.fields.region}/${__data.fields.schema}"
    for title in ("Last change per target", "Unacknowledged drift", "Deviating regions"):
        (link,) = by_title(dashboard, title)["fieldConfig"]["defaults"]["links"]
        assert link["url"] == "${ui_url:raw}/ui/targets/" + fields, title  # raw: the base URL is not escaped


def test_prometheus_change_annotations(dashboard: dict[str, Any]) -> None:
    annotations = {a["name"]: a for a in dashboard["annotations"]["list"]}
    changes = annotations["Schema changes"]
    assert changes["datasource"] == DS_REF and changes["enable"] is True
    assert changes["target"]["expr"].startswith("changes(schemadrift_last_change_timestamp_seconds{")
    assert changes["target"]["expr"].endswith("[2m]) > 0")
    for name in ("Schema changes", "Breaking changes"):
        annotation = annotations[name]
        assert annotation["datasource"] == DS_REF
        for label in TARGET_VARIABLES:
            assert "{{" + label + "}}" in annotation["titleFormat"], name
        assert annotation["tagKeys"] == "cloud,region,schema"


def test_postgres_annotation_is_off_by_default_and_reads_the_changes_table(dashboard: dict[str, Any]) -> None:
    (pg,) = [a for a in dashboard["annotations"]["list"] if "PostgreSQL" in a["name"]]
    assert pg["enable"] is False
    assert pg["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "${pg_datasource}"}
    pg_var = variables(dashboard)["pg_datasource"]
    assert pg_var["type"] == "datasource" and pg_var["query"] == "postgres"  # the plugin id, or its alias since 10.3
    sql = pg["target"]["rawSql"]
    for fragment in (
        'c.detected_at AS "time"',
        "AS text",
        "AS tags",
        "FROM changes AS c",
        "JOIN targets AS t ON t.id = c.target_id",
        "$__timeFilter(c.detected_at)",
        "c.path",
        "c.rule",
        "c.severity",
    ):
        assert fragment in sql, fragment
    for label in TARGET_VARIABLES:
        assert f"${{{label}:regex}}" in sql
    assert pg["target"]["format"] == "table" and pg["target"]["rawQuery"] is True
    assert "PostgreSQL" in dashboard["description"] and "SQLite" in dashboard["description"]


def _grafana_sql(sql: str, start: datetime, end: datetime, **regexes: str) -> str:
    """The annotation SQL as Grafana sends it: $__timeFilter expanded, ${var:regex} replaced."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'",
        sql,
    )
    for name, value in regexes.items():
        sql = sql.replace(f"${{{name}:regex}}", value)
    assert "$" not in sql.replace("'^(", "").replace(")$'", ""), sql
    return sql


@pytest.mark.postgres
def test_postgres_annotation_sql_runs_on_the_migrated_schema(dashboard: dict[str, Any], pg_server: str) -> None:
    from sqlalchemy import insert, text

    from monitor.store.engine import make_engine, upgrade
    from monitor.store.tables import ChangeRow, Document, Snapshot, Target
    from tests.conftest import create_pg_database, drop_pg_database

    (pg,) = [a for a in dashboard["annotations"]["list"] if "PostgreSQL" in a["name"]]
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    name = create_pg_database()
    engine = make_engine(pg_server + name)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            for sha in ("a" * 64, "b" * 64):
                conn.execute(insert(Document).values(sha256=sha, body="{}", size=2, properties=0, created_at=now))
            ids = {}
            for region in ("r1", "r2"):
                row = {"cloud": "c", "region": region, "schema": "s", "url": "https://x/", "created_at": now}
                ids[region] = conn.execute(insert(Target).values(**row).returning(Target.id)).scalar_one()
            for region, age in (("r1", 10), ("r2", 20), ("r2", 60 * 24 * 3)):  # minutes ago; the last is old
                at = now - timedelta(minutes=age)
                snapshot = conn.execute(
                    insert(Snapshot)
                    .values(target_id=ids[region], document_sha256="b" * 64, first_seen=at, last_seen=at)
                    .returning(Snapshot.id)
                ).scalar_one()
                conn.execute(
                    insert(ChangeRow).values(
                        target_id=ids[region], snapshot_id=snapshot, from_sha256="a" * 64, to_sha256="b" * 64,
                        path="/properties/id", rule="property-removed", severity="breaking",
                        old_value="1", new_value=None, detected_at=at,
                    )
                )  # fmt: skip
        start, end = now - timedelta(hours=6), now
        everything = {"cloud": ".*", "region": ".*", "schema": ".*"}
        with engine.connect() as conn:
            result = conn.execute(text(_grafana_sql(pg["target"]["rawSql"], start, end, **everything)))
            assert list(result.keys()) == ["time", "text", "tags"]
            rows = result.all()
            only_r1 = _grafana_sql(pg["target"]["rawSql"], start, end, **{**everything, "region": "r1"})
            filtered = conn.execute(text(only_r1)).all()
        assert [r.text for r in rows] == [
            "c/r2/s: breaking property-removed at /properties/id",
            "c/r1/s: breaking property-removed at /properties/id",
        ]
        assert rows[0].tags == "breaking,c,r2,s"
        assert [r.time for r in rows] == sorted(r.time for r in rows)
        assert [r.text.split(":")[0] for r in filtered] == ["c/r1/s"]
    finally:
        engine.dispose()
        drop_pg_database(name)


def test_provisioned_dashboard_has_no_import_inputs() -> None:
    text = DASHBOARD.read_text(encoding="utf-8")
    assert "${DS_" not in text
    assert "__inputs" not in json.loads(text)


def test_provisioned_directory_holds_only_provisionable_dashboards() -> None:
    # Grafana's file provider loads every *.json under the path; a second file with the same uid (such as the
    # importable copy) would make provisioning pick one at random.
    uids = []
    for path in sorted(DASHBOARD.parent.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert "__inputs" not in data, path
        uids.append(data["uid"])
    assert uids and len(uids) == len(set(uids))


# --- the importable copy -----------------------------------------------------------------------------------


def test_importable_copy_is_generated_from_the_provisioned_one() -> None:
    module = load_make_importable()
    assert module.IMPORTABLE.read_text(encoding="utf-8") == module.generate(), (
        "deploy/grafana/schema-drift-monitor.import.json is stale: run python deploy/grafana/make_importable.py"
    )
    assert module.main(["--check"]) == 0


def test_importable_copy_declares_its_data_source_input(dashboard: dict[str, Any]) -> None:
    module = load_make_importable()
    text = module.IMPORTABLE.read_text(encoding="utf-8")
    imported = json.loads(text)
    assert [i["name"] for i in imported["__inputs"]] == ["DS_PROMETHEUS"]
    assert imported["__inputs"][0]["pluginId"] == "prometheus"
    assert set(re.findall(r"\$\{(DS_[A-Z_]+)\}", text)) == {"DS_PROMETHEUS"}
    assert "${datasource}" not in text
    assert imported["uid"] == dashboard["uid"]
    assert "datasource" not in variables(imported)
    for panel in panels(imported):
        if panel["type"] not in ("row", "text"):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    # Same queries as the provisioned copy.
    assert [q for _, q in raw_queries(imported)] == [q for _, q in raw_queries(dashboard)]


def test_make_importable_rejects_other_uses_of_the_variable(dashboard: dict[str, Any]) -> None:
    module = load_make_importable()
    broken = json.loads(json.dumps(dashboard))
    broken["panels"][1]["description"] = "uses ${datasource} in text"
    with pytest.raises(ValueError):
        module.make_importable(broken)


# --- queries -----------------------------------------------------------------------------------------------


def test_expressions_are_fully_substituted() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 30
    for query in queries:
        assert "$" not in query.expr, query.where
    assert dashboard_expressions() == [q.expr for q in queries]
    assert "schemadrift_poll_success" in dashboard_expressions()  # the cloud variable's selector
    assert substitute('x{cloud=~"${cloud}"}[$__range_s]') == 'x{cloud=~".*"}[3600]'
    with pytest.raises(KeyError):
        substitute("rate(x[$__unknown])")


def test_every_query_names_only_exported_metrics(
    dashboard: dict[str, Any], exported_names: set[str], exported_families: set[str]
) -> None:
    assert "schemadrift_notifications_total" in exported_names
    assert "schemadrift_poll_duration_seconds_bucket" in exported_names
    used: set[str] = set()
    for query in dashboard_queries():
        names = set(METRIC.findall(query.expr))
        assert names, f"{query.where} names no schemadrift metric: {query.expr}"
        unknown = names - exported_names
        assert not unknown, f"{query.where} uses metrics the daemon does not export: {sorted(unknown)}"
        used |= names
    # Nothing anywhere in the file (descriptions, text panels) names a metric that does not exist; descriptions may
    # name a histogram by its family name.
    assert set(METRIC.findall(json.dumps(dashboard))) <= exported_names | exported_families
    assert used >= {
        "schemadrift_poll_success",
        "schemadrift_poll_failures_total",
        "schemadrift_poll_duration_seconds_bucket",
        "schemadrift_last_change_timestamp_seconds",
        "schemadrift_changes_total",
        "schemadrift_db_up",
        "schemadrift_db_errors_total",
        "schemadrift_notifications_total",
        "schemadrift_build_info",
        *INTELLIGENCE_TARGET_METRICS,
        *IDENTITY_METRICS,
        *GROUP_METRICS,
        *REPLICA_METRICS,
        *CATALOG_METRICS,
        *SURFACE_METRICS,
        *CONSUMER_METRICS,
    }


def test_under_basic_only_the_panels_that_say_so_lack_their_series(dashboard: dict[str, Any]) -> None:
    """metrics.detail: basic (the default) leaves out the detail series: a query naming one belongs to a panel
    whose description says it needs ``full`` and names the metric; every other query has its series."""
    basic = exported("basic")
    needing_full = set()
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            missing = set(METRIC.findall(target.get("expr", ""))) - basic
            description = panel.get("description", "")
            assert not missing or "metrics.detail: full" in description, f"{panel['title']} needs {missing}"
            assert all(name in description for name in missing), f"{panel['title']}: say which of {missing}"
            if missing:
                needing_full.add(panel["title"])
    assert needing_full == {
        "Staleness",  # its "since the last poll" column
        "Schema properties per target",
        "Response size per target",
        "API versions: status and microversion range",
    }


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    tool = promtool()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:check_{n}", "expr": expr} for n, expr in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    result = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(dashboard_expressions())} rules found" in result.stdout


REPLICA_CASES = yaml.safe_load((Path(__file__).parents[1] / "data" / "grafana_replica_cases.yaml").read_text("utf-8"))


def panel_expr(dashboard: dict[str, Any], title: str, ref: str) -> str:
    """The PromQL of one query of a panel, Grafana's variables substituted."""
    (target,) = [t for t in by_title(dashboard, title)["targets"] if t["refId"] == ref]
    return substitute(target["expr"])


@pytest.mark.parametrize("case", REPLICA_CASES, ids=[f"{c['panel']} {c['ref']}" for c in REPLICA_CASES])
def test_panels_count_each_target_once_with_several_replicas_scraped(
    case: dict[str, Any], dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """promtool evaluates the panel's query over the series several replicas export (cases in
    tests/data/grafana_replica_cases.yaml): each target, region and replica counts once."""
    tool = promtool()
    (tmp_path / "none.yml").write_text("groups: []\n", encoding="utf-8")
    test = {
        "rule_files": ["none.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": series, "values": values} for series, values in case["series"].items()],
            "promql_expr_test": [{"expr": panel_expr(dashboard, case["panel"], case["ref"]), "eval_time": "10m",
                                  "exp_samples": case["expect"]}],
        }],
    }  # fmt: skip
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    result = subprocess.run([tool, "test", "rules", path.name], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, f"{case['why']}:\n{result.stdout}{result.stderr}"


def test_replica_and_surface_rows(dashboard: dict[str, Any]) -> None:
    titles = [p["title"] for p in panels(dashboard) if p["type"] == "row"]
    assert titles[-3:] == ["Replicas", "API surface", "Consumers"]

    def exprs(title: str) -> str:
        return "\n".join(t["expr"] for t in by_title(dashboard, title)["targets"])

    assert "schemadrift_replicas_live" in exprs("Live vs expected replicas")
    assert "schemadrift_replicas_expected" in exprs("Live vs expected replicas")
    assert "max by (replica) (schemadrift_replica_owned_targets)" in exprs("Owned targets per replica")
    assert "schemadrift_targets_unowned" in exprs("Owned targets per replica")
    assert by_title(dashboard, "Leader over time")["type"] == "state-timeline"
    assert "group_right" in exprs("Regions behind the others")
    (matrix,) = by_title(dashboard, "Max microversion by region")["transformations"]
    assert matrix["id"] == "groupingToMatrix" and matrix["options"]["rowField"] == "cloud_region"
    assert "schemadrift_catalog_service_missing" in exprs("Services missing from a region's catalog")
    assert "schemadrift_api_version_info" in exprs("API versions: status and microversion range")
    # The per-target series of these rows are aggregated away from the scrape instance (a handover moves them).
    for title in ("Max microversion by region", "Regions behind the others", "Max microversion over time"):
        assert "max by (cloud, region, service, version" in exprs(title), title


def test_the_consumers_row_is_the_matrix_the_unmet_requirements_and_their_history(dashboard: dict[str, Any]) -> None:
    def exprs(title: str) -> str:
        return "\n".join(t["expr"] for t in by_title(dashboard, title)["targets"])

    matrix = by_title(dashboard, "Consumers \N{MULTIPLICATION SIGN} regions")
    (grouping,) = matrix["transformations"]
    assert grouping["id"] == "groupingToMatrix"
    assert (grouping["options"]["rowField"], grouping["options"]["columnField"]) == ("consumer", "region")
    (mapping,) = matrix["fieldConfig"]["defaults"]["mappings"]
    assert {value: option["text"] for value, option in mapping["options"].items()} == {"0": "Broken", "1": "Compatible"}
    assert "min by (consumer, region) (schemadrift_consumer_compatible{" in exprs(
        "Consumers \N{MULTIPLICATION SIGN} regions"
    )
    assert "min by (consumer, region, requirement) (schemadrift_consumer_requirement_met{" in exprs(
        "Requirements not met"
    )
    assert by_title(dashboard, "Consumers over time")["type"] == "state-timeline"


# --- provisioning ------------------------------------------------------------------------------------------


def test_datasource_provisioning() -> None:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yaml").read_text())
    assert config["apiVersion"] == 1
    sources = {s["type"]: s for s in config["datasources"]}
    prometheus = sources["prometheus"]
    assert prometheus["uid"] == "prometheus" == variables(load_dashboard())["datasource"]["current"]["value"]
    assert prometheus["url"] == "http://prometheus:9090" and prometheus["access"] == "proxy"
    assert prometheus["isDefault"] is True
    postgres = sources["postgres"]
    assert postgres["url"] == "postgres:5432"
    assert postgres["user"] == "grafana_reader"
    assert postgres["jsonData"]["database"] == "schemadrift"
    assert postgres["secureJsonData"] == {"password": "$__env{GRAFANA_PG_PASSWORD}"}
    assert "password" not in postgres and "password" not in postgres["jsonData"]
    assert len({s["uid"] for s in config["datasources"]}) == len(config["datasources"])


def test_dashboard_provisioning() -> None:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yaml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
