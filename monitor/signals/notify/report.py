"""The grouped change report every channel renders: one JSON document per notification.

Schema (``schema_version`` 1)::

    {"schema_version": 1, "group_id": "<first change id>-<last change id>", "created_at": ISO-8601,
     "summary": "...", "worst_severity": "breaking", "counts": {"breaking": n, "warning": n, ...},
     "targets": [{"cloud", "region", "schema", "detected_at", "snapshot_id", "worst_severity", "flapping", "link",
                  "breaks": ["<consumer>", ...],
                  "changes": [{"path", "rule", "severity", "old", "new", "old_present", "new_present",
                               "breaks": [{"consumer", "requirement", "description", "reason"}]}],
                  "changes_truncated": n}]}

Targets are listed worst first (then in the order their changes were detected), and each target's changes
worst first, then by path (:func:`~monitor.domain.change_order`), so a truncated list keeps the worst.

A change that breaks a consumer (docs/consumers.md) lists the requirements in its ``breaks``; its target lists
the consumers, and the summary ends with ``breaks <consumer> in <region>``. Such a change is sent whatever the
channel's ``min_severity`` says (:func:`monitor.signals.notify.base.report_group_request`).

``group_id`` is stable for the same changes, so a receiver can drop a duplicate delivery. ``link`` is
``link_template`` with ``{cloud}``, ``{region}``, ``{schema}``, ``{snapshot_id}`` and ``{change_id}`` (the id of
the target's worst change in the group, the first listed, as the UI's ``/ui/changes/<id>`` permalink wants it)
filled in, or null.
"""

from __future__ import annotations

import json
from collections.abc import Sequence, Set
from datetime import datetime
from typing import Any

from monitor.domain import Severity, TargetKey, change_json, order_key, worst_first
from monitor.store.records import ChangeRecord

MAX_CHANGES_PER_TARGET = 100


def build_report(
    records: Sequence[ChangeRecord],
    now: datetime,
    link_template: str | None = None,
    flapping: Set[TargetKey] = frozenset(),
) -> dict[str, Any]:
    """The report for ``records`` (at least one), grouped by target and snapshot; ``flapping`` targets are
    marked so a receiver can tell a flapping document from a one-off change."""
    groups: dict[tuple[str, str, str, int], list[ChangeRecord]] = {}
    for record in sorted(records, key=lambda r: r.id):
        key = (record.target.cloud, record.target.region, record.target.schema, record.snapshot_id)
        groups.setdefault(key, []).append(record)
    # the worst target first (then as detected), each target's changes worst first: a truncated list keeps them
    ordered = sorted((worst_first(group) for group in groups.values()), key=lambda group: -group[0].severity.rank)
    counts = {s.value: sum(1 for r in records if r.severity is s) for s in Severity}
    worst = Severity.worst(*(r.severity for r in records))
    return {
        "schema_version": 1,
        "group_id": f"{min(r.id for r in records)}-{max(r.id for r in records)}",
        "created_at": now.isoformat(),
        "summary": _summary(len(groups), counts) + _breaks_summary(records),
        "worst_severity": worst.value,
        "counts": counts,
        "targets": [_target(group, link_template, flapping) for group in ordered],
    }


def _summary(targets: int, counts: dict[str, int]) -> str:
    parts = ", ".join(f"{n} {severity}" for severity, n in counts.items() if n)
    return f"schema changes in {targets} target(s): {parts}"


def _breaks_summary(records: Sequence[ChangeRecord]) -> str:
    """``; breaks terraform-openstack in r2, …`` for the consumers the changes break (empty when none)."""
    broken = dict.fromkeys(f"{mark.consumer} in {r.target.region}" for r in records for mark in r.breaks)
    return f"; breaks {', '.join(broken)}" if broken else ""


def _change(record: ChangeRecord) -> dict[str, Any]:
    return {**change_json(record), "breaks": [mark.as_json() for mark in record.breaks]}


def _target(records: list[ChangeRecord], link_template: str | None, flapping: Set[TargetKey]) -> dict[str, Any]:
    first = records[0]
    fields = {
        "cloud": first.target.cloud,
        "region": first.target.region,
        "schema": first.target.schema,
        "snapshot_id": first.snapshot_id,
    }
    return {
        **fields,
        "detected_at": first.detected_at.isoformat(),
        "worst_severity": Severity.worst(*(r.severity for r in records)).value,
        "flapping": first.target in flapping,
        "link": link_template.format(**fields, change_id=first.id) if link_template else None,
        "breaks": list(dict.fromkeys(mark.consumer for r in records for mark in r.breaks)),
        "changes": [_change(r) for r in records[:MAX_CHANGES_PER_TARGET]],
        "changes_truncated": max(0, len(records) - MAX_CHANGES_PER_TARGET),
    }


def _breaks_line(change: dict[str, Any], target: dict[str, Any]) -> str:
    consumers = dict.fromkeys(mark["consumer"] for mark in change.get("breaks", ()))
    return f" (breaks {', '.join(consumers)} in {target['region']})" if consumers else ""


def report_json(
    records: Sequence[ChangeRecord],
    now: datetime,
    link_template: str | None = None,
    flapping: Set[TargetKey] = frozenset(),
) -> str:
    return json.dumps(build_report(records, now, link_template, flapping), ensure_ascii=False, sort_keys=True)


def change_lines(target: dict[str, Any], limit: int = 20) -> list[str]:
    """Human-readable lines for a report target's changes (Slack, Alertmanager descriptions), worst first (a
    report queued before that order was the rule is sorted here too)."""
    changes = sorted(target["changes"], key=lambda c: order_key(Severity(c["severity"]), c["path"], c["rule"]))
    lines = [f"{c['severity']}: {c['rule']} {c['path']}{_breaks_line(c, target)}" for c in changes[:limit]]
    hidden = len(target["changes"]) - limit + target.get("changes_truncated", 0)
    if hidden > 0:
        lines.append(f"… and {hidden} more")
    return lines
