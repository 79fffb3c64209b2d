"""End to end with the real tools, all on loopback: simulator → daemon → Prometheus (shipped rules) →
Alertmanager 0.25 → a webhook receiver run by the test; plus the daemon's own Alertmanager push.

Needs Debian's ``prometheus`` and ``prometheus-alertmanager``. Without them the test skips, unless
``SDM_REQUIRE_ALERTING=1`` (set by ``.ci/run``), which makes it fail instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.types import parse_duration
from tests.conftest import TOKEN, config_data, require_tool
from tests.support.grafana_queries import dashboard_expressions
from tests.support.process import Daemon, free_port, wait_for
from tests.support.prometheus import Process, prom_query
from tests.support.regions import Simulator, mutate_breaking

pytestmark = pytest.mark.slow  # real Prometheus and Alertmanager

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "schemadrift.rules.yml"
FOR_SCALE = 60  # every `for:` shrinks from minutes to seconds, keeping the alerts' order (10m → 10s)


def binary(name: str) -> str:
    return require_tool(name, "SDM_REQUIRE_ALERTING", "prometheus prometheus-alertmanager")


class Receiver:
    """Records every Alertmanager webhook notification."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def alerts(self, alertname: str, status: str) -> list[dict[str, Any]]:
        return [
            alert
            for n in self.notifications
            for alert in n["alerts"]
            if alert["labels"].get("alertname") == alertname and alert["status"] == status
        ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def short_rules(target: Path) -> None:
    """The shipped rules with every ``for:`` divided by FOR_SCALE, so the test does not wait 15 minutes.

    Scaling (rather than one short value for all) keeps their relations: RegionDown (10m) still fires
    before TargetFailing (15m) would, so a region outage must not leak per-target pages.
    """
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{max(2, round(parse_duration(rule['for']) / FOR_SCALE))}s"
    target.write_text(yaml.safe_dump(rules, sort_keys=False))


@pytest.fixture
def stack(simulator: Simulator, tmp_path: Path) -> Iterator[dict[str, Any]]:
    prometheus_bin, alertmanager_bin = binary("prometheus"), binary("prometheus-alertmanager")
    receiver = Receiver()
    am_port, prom_port, daemon_port = free_port(), free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "test",
                    "group_by": ["alertname", "cloud", "region", "schema"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "test", "webhook_configs": [{"url": receiver.url, "send_resolved": True}]}],
            }
        )
    )
    started = [
        Process(
            [
                alertmanager_bin,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # no gossip: one test instance
            ],
            tmp_path / "alertmanager.log",
        )
    ]
    short_rules(tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "schema-drift-monitor", "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}]}
                ],
            }
        )
    )
    started.append(
        Process(
            [
                prometheus_bin,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp_path / "prometheus.log",
        )
    )
    data = config_data(simulator, f"sqlite:///{tmp_path / 'monitor.db'}", interval="1s", timeout="1s", jitter="0s")
    data["http"]["listen"] = f"127.0.0.1:{daemon_port}"
    data["notifications"] = {
        "grouping_window": "1s",
        "channels": [
            {"name": "am-push", "type": "alertmanager", "url": f"http://127.0.0.1:{am_port}",
             "active_for": "15s", "resend_interval": "5s"}
        ],
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    daemon = Daemon(tmp_path / "config.yaml", daemon_port, tmp_path / "daemon.log")
    try:
        yield {"receiver": receiver, "prometheus": f"http://127.0.0.1:{prom_port}", "daemon": daemon, "tmp": tmp_path}
    finally:
        daemon.stop()
        for process in started:
            process.stop()
        receiver.close()


def test_alerts_reach_a_webhook_through_prometheus_and_alertmanager(
    stack: dict[str, Any], simulator: Simulator
) -> None:
    prometheus, receiver = stack["prometheus"], stack["receiver"]
    wait_for(lambda: prom_query(prometheus, 'up{job="schema-drift-monitor"} == 1').get("data", {}).get("result"), 60)
    wait_for(lambda: prom_query(prometheus, "schemadrift_poll_success == 1").get("data", {}).get("result"), 30)

    # 1. a breaking change in one region
    simulator.set_document("r1", "images", mutate_breaking(simulator.document("r1", "images")))
    [alert] = wait_for(lambda: receiver.alerts("SchemaDriftBreakingChange", "firing"), timeout=60)
    labels = alert["labels"]
    assert (labels["cloud"], labels["region"], labels["schema"], labels["severity"]) == (
        "sim", "r1", "images", "critical",
    )  # fmt: skip
    assert alert["annotations"]["runbook_url"].endswith("#schemadriftbreakingchange")

    # the daemon's own push: an alert with an alertname, re-sent while active, resolved after active_for
    pushed = wait_for(lambda: receiver.alerts("SchemaDriftChangeDetected", "firing"), timeout=30)
    assert pushed[0]["labels"]["region"] == "r1" and pushed[0]["labels"]["severity"] == "critical"
    wait_for(lambda: receiver.alerts("SchemaDriftChangeDetected", "resolved"), timeout=60)

    # 2. a whole region fails: one RegionDown alert, not one per target
    simulator.set_fault("r2", "status", code=503)
    down = wait_for(lambda: receiver.alerts("SchemaDriftRegionDown", "firing"), timeout=60)
    assert {(a["labels"]["cloud"], a["labels"]["region"]) for a in down} == {("sim", "r2")}
    assert not [a for a in receiver.alerts("SchemaDriftTargetFailing", "firing") if a["labels"]["region"] == "r2"]

    # 3. the region recovers: the resolved notification arrives
    simulator.set_fault("r2", None)
    resolved = wait_for(lambda: receiver.alerts("SchemaDriftRegionDown", "resolved"), timeout=120)
    assert resolved[0]["labels"]["region"] == "r2"

    # every PromQL expression of the rules and the dashboard evaluates without error on this Prometheus
    rules = yaml.safe_load(RULES.read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    expressions += dashboard_expressions()
    errors = {}
    for expr in expressions:
        answer = prom_query(prometheus, expr)
        if answer.get("status") != "success":
            errors[expr] = answer.get("error")
    assert errors == {}
    assert TOKEN not in (stack["tmp"] / "daemon.log").read_text()
