#!/usr/bin/env python3
"""Generate the importable dashboard from the provisioned one (stdlib only).

The provisioned dashboard (``dashboards/schema-drift-monitor.json``) is the single source of truth: its panels
use the ``datasource`` template variable, which file provisioning resolves. Dashboards shared for
*Dashboards → New → Import* instead declare their data source as an input (``__inputs``) that Grafana asks for
on import. This script derives that copy, ``schema-drift-monitor.import.json``, next to this file — outside the
provisioned ``dashboards/`` directory, because file provisioning would load it too (same uid, unresolved
``${DS_PROMETHEUS}``).

    python deploy/grafana/make_importable.py           # rewrite the importable copy
    python deploy/grafana/make_importable.py --check   # exit 1 if it is out of date (tests/deploy/test_grafana.py too)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROVISIONED = HERE / "dashboards" / "schema-drift-monitor.json"
IMPORTABLE = HERE / "schema-drift-monitor.import.json"

VARIABLE = "datasource"
VARIABLE_REF = "${" + VARIABLE + "}"
INPUT = "DS_PROMETHEUS"
INPUT_REF = "${" + INPUT + "}"
GRAFANA_VERSION = "10.4.0"
PANEL_NAMES = {
    "bargauge": "Bar gauge",
    "stat": "Stat",
    "state-timeline": "State timeline",
    "table": "Table",
    "text": "Text",
    "timeseries": "Time series",
}


def _replace_refs(node: Any) -> Any:
    """Point every Prometheus data source reference at the import input instead of the variable."""
    if isinstance(node, dict):
        if node.get("type") == "prometheus" and node.get("uid") == VARIABLE_REF:
            return {**node, "uid": INPUT_REF}
        return {key: _replace_refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace_refs(item) for item in node]
    return node


def _panel_types(panels: list[dict[str, Any]]) -> set[str]:
    types: set[str] = set()
    for panel in panels:
        if panel.get("type") != "row":
            types.add(panel["type"])
        types |= _panel_types(panel.get("panels", []))
    return types


def make_importable(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The importable form of a provisioned dashboard: ``__inputs``/``__requires`` and ``${DS_PROMETHEUS}``."""
    body = _replace_refs(copy.deepcopy(dashboard))
    templating = body.get("templating", {}).get("list", [])
    body["templating"]["list"] = [var for var in templating if var.get("name") != VARIABLE]
    body["id"] = None
    if VARIABLE_REF in json.dumps(body):
        raise ValueError(f"{VARIABLE_REF} is used outside a Prometheus data source reference")
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ]
    requires += [
        {"type": "panel", "id": kind, "name": PANEL_NAMES.get(kind, kind), "version": ""}
        for kind in sorted(_panel_types(body.get("panels", [])))
    ]
    inputs = [
        {
            "name": INPUT,
            "label": "Prometheus",
            "description": "The Prometheus that scrapes schema-drift-monitor",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    return {"__inputs": inputs, "__elements": {}, "__requires": requires, **body}


def render(dashboard: dict[str, Any]) -> str:
    """The file text: two-space JSON, UTF-8 kept as is, trailing newline."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def generate(provisioned: Path = PROVISIONED) -> str:
    """The importable file's expected text, from the provisioned dashboard on disk."""
    return render(make_importable(json.loads(provisioned.read_text(encoding="utf-8"))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the importable copy is out of date")
    args = parser.parse_args(argv)
    text = generate()
    current = IMPORTABLE.read_text(encoding="utf-8") if IMPORTABLE.exists() else None
    if args.check:
        if current != text:
            print(f"{IMPORTABLE} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        IMPORTABLE.write_text(text, encoding="utf-8")
        print(f"wrote {IMPORTABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
