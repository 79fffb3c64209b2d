"""The PromQL of the provisioned Grafana dashboard, with Grafana's variables replaced by concrete values.

``dashboard_expressions()`` returns every expression the dashboard sends to Prometheus — panel targets,
Prometheus annotations, and the ``label_values(...)`` variable queries reduced to their series selector — as
plain PromQL that Prometheus (or ``promtool check rules``) accepts. tests/deploy/test_grafana.py checks them; the
end-to-end test evaluates them against a real Prometheus.

Substitutions: ``$__rate_interval`` → 5m, ``$__interval`` → 1m, ``$__range`` → 1h, ``$__range_s`` → 3600, and
the ``cloud``/``region``/``schema`` variables → ``.*`` (their "All" value). Any other variable is an error, so a
new one must be added here first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "schema-drift-monitor.json"

SUBSTITUTIONS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "cloud": ".*",
    "region": ".*",
    "schema": ".*",
}
# $name, ${name} and ${name:format}; \w+ is greedy, so $__range_s is never read as $__range.
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<plain>\w+))")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Query:
    """One PromQL query of the dashboard: where it is, as written, and as sent with variables substituted."""

    where: str
    raw: str
    expr: str


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def substitute(expr: str) -> str:
    """Replace Grafana's variables with the values above; unknown variables raise ``KeyError``."""

    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        if name not in SUBSTITUTIONS:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}: add it to SUBSTITUTIONS")
        return SUBSTITUTIONS[name]

    return _VARIABLE.sub(value, expr)


def variable_selector(query: str) -> str:
    """The series selector of a ``label_values(selector, label)`` variable query (the PromQL it evaluates)."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return match.group("selector")


def _is_prometheus(datasource: Any) -> bool:
    return isinstance(datasource, dict) and datasource.get("type") == "prometheus"


def raw_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL as written) for every Prometheus query of the dashboard."""
    found: list[tuple[str, str]] = []
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if _is_prometheus(target.get("datasource", panel.get("datasource"))) and target.get("expr"):
                found.append((f"panel {panel['id']} {panel.get('title', '')!r} {target['refId']}", target["expr"]))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if _is_prometheus(annotation.get("datasource")):
            expr = annotation.get("target", {}).get("expr") or annotation.get("expr")
            found.append((f"annotation {annotation['name']!r}", expr))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query" and _is_prometheus(variable.get("datasource")):
            query = variable["query"]
            text = query.get("query", "") if isinstance(query, dict) else query
            found.append((f"variable {variable['name']!r}", variable_selector(text)))
    return found


def dashboard_queries(path: Path = DASHBOARD) -> list[Query]:
    """Every Prometheus query of the dashboard at ``path``, with variables substituted."""
    return [Query(where, raw, substitute(raw)) for where, raw in raw_queries(load_dashboard(path))]


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    """Every PromQL expression of the dashboard, variables substituted, ready to evaluate."""
    return [query.expr for query in dashboard_queries(path)]
