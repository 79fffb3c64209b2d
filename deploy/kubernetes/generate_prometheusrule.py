#!/usr/bin/env python3
"""Generate components/prometheus-operator/prometheusrule.yaml from deploy/prometheus/schemadrift.rules.yml.

The Prometheus rules file is the one source of truth: Prometheus (compose, systemd setups) loads it as is, and
the Prometheus Operator gets the same ``groups`` wrapped in a ``PrometheusRule``. Re-run after editing the rules:

    python deploy/kubernetes/generate_prometheusrule.py            # (re)write prometheusrule.yaml
    python deploy/kubernetes/generate_prometheusrule.py --check    # exit 1 if prometheusrule.yaml is out of date

The output is deterministic (same input, same bytes). Needs PyYAML only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
DEFAULT_RULES = DEPLOY / "prometheus" / "schemadrift.rules.yml"
DEFAULT_OUTPUT = HERE / "components" / "prometheus-operator" / "prometheusrule.yaml"

NAME = "schema-drift-monitor"
NAMESPACE = "schema-drift-monitor"
HEADER = (
    "# generated — do not edit.\n"
    "# Source: deploy/prometheus/schemadrift.rules.yml; regenerate with\n"
    "#   python deploy/kubernetes/generate_prometheusrule.py\n"
    "# The Prometheus Operator must select it: add the label your Prometheus's ruleSelector expects\n"
    "# (kube-prometheus-stack: release: <helm release name>) in a kustomize overlay.\n"
)


class RulesError(Exception):
    """The rules file is missing or is not a Prometheus rules file."""


class _Dumper(yaml.SafeDumper):
    """Block style with indented lists; multi-line strings (PromQL) as literal blocks, as in the rules file."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def load_groups(rules_text: str, source: str = "<rules>") -> list[Any]:
    """The ``groups`` of a Prometheus rules file; raises RulesError when there are none."""
    try:
        data = yaml.safe_load(rules_text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list) or not data["groups"]:
        raise RulesError(f"{source}: expected a Prometheus rules file with a non-empty 'groups' list")
    return list(data["groups"])


def build(groups: list[Any]) -> dict[str, Any]:
    """The PrometheusRule object carrying ``groups`` unchanged."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": NAME,
                "app.kubernetes.io/component": "alert-rules",
            },
        },
        "spec": {"groups": groups},
    }


def render(rules_text: str, source: str = "<rules>") -> str:
    """The full text of prometheusrule.yaml for the given rules file text."""
    body = yaml.dump(
        build(load_groups(rules_text, source)),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,  # never fold a line: keeps PromQL and templates readable and grep-able
    )
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES, help="Prometheus rules file (input)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="PrometheusRule manifest (output)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the output is out of date")
    args = parser.parse_args(argv)

    try:
        rules_text = args.rules.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"cannot read the rules file {args.rules}: {exc.strerror}; nothing written", file=sys.stderr)
        return 2
    try:
        text = render(rules_text, str(args.rules))
    except RulesError as exc:
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
