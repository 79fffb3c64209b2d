#!/usr/bin/env python3
"""Generate the dashboard ConfigMap (components/grafana-dashboard/) from deploy/grafana/dashboards/'s JSON.

The provisioned dashboard is the one source of truth: compose's Grafana loads the file as is, and in Kubernetes
Grafana's dashboard sidecar (kube-prometheus-stack's Grafana has it) loads every ConfigMap labelled
``grafana_dashboard: "1"``; this ConfigMap carries the file's text unchanged. Re-run after editing the dashboard:

    python deploy/kubernetes/generate_dashboard_configmap.py            # (re)write dashboard-configmap.yaml
    python deploy/kubernetes/generate_dashboard_configmap.py --check    # exit 1 if it is out of date

The output is deterministic (same input, same bytes). Needs PyYAML only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
DEFAULT_DASHBOARD = DEPLOY / "grafana" / "dashboards" / "schema-drift-monitor.json"
DEFAULT_OUTPUT = HERE / "components" / "grafana-dashboard" / "dashboard-configmap.yaml"

NAME = "schema-drift-monitor-dashboard"
NAMESPACE = "schema-drift-monitor"
KEY = "schema-drift-monitor.json"  # the file name the sidecar writes for Grafana
SIDECAR_LABEL = ("grafana_dashboard", "1")  # kube-prometheus-stack's default sidecar.dashboards.label/labelValue
HEADER = (
    "# generated — do not edit.\n"
    "# Source: deploy/grafana/dashboards/schema-drift-monitor.json; regenerate with\n"
    "#   python deploy/kubernetes/generate_dashboard_configmap.py\n"
    "# Grafana's dashboard sidecar picks it up by the label grafana_dashboard: \"1\". kube-prometheus-stack's\n"
    "# sidecar looks in Grafana's own namespace only, unless grafana.sidecar.dashboards.searchNamespace is ALL (or\n"
    "# lists schema-drift-monitor).\n"
)


class DashboardError(Exception):
    """The dashboard file is missing or is not a Grafana dashboard."""


class _Dumper(yaml.SafeDumper):
    """Block style with indented lists; multi-line strings (the dashboard JSON) as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def check_dashboard(text: str, source: str = "<dashboard>") -> None:
    """Raises DashboardError unless ``text`` is a Grafana dashboard's JSON (an object with a uid and panels)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DashboardError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data.get("uid") or not isinstance(data.get("panels"), list):
        raise DashboardError(f"{source}: expected a Grafana dashboard (a JSON object with 'uid' and 'panels')")


def build(dashboard_text: str) -> dict[str, Any]:
    """The ConfigMap carrying ``dashboard_text`` unchanged."""
    label, value = SIDECAR_LABEL
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                label: value,
                "app.kubernetes.io/name": "schema-drift-monitor",
                "app.kubernetes.io/component": "dashboard",
            },
        },
        "data": {KEY: dashboard_text},
    }


def render(dashboard_text: str, source: str = "<dashboard>") -> str:
    """The full text of dashboard-configmap.yaml for the given dashboard file text."""
    check_dashboard(dashboard_text, source)
    body = yaml.dump(
        build(dashboard_text),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,
    )
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD, help="dashboard JSON (input)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="ConfigMap manifest (output)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the output is out of date")
    args = parser.parse_args(argv)

    try:
        dashboard_text = args.dashboard.read_text(encoding="utf-8")
        text = render(dashboard_text, str(args.dashboard))
    except OSError as exc:
        print(f"cannot read the dashboard {args.dashboard}: {exc.strerror}; nothing written", file=sys.stderr)
        return 2
    except DashboardError as exc:
        print(f"{exc}; nothing written", file=sys.stderr)
        return 2

    try:
        current = args.output.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = None
    if args.check:
        if current != text:
            print(f"{args.output} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
