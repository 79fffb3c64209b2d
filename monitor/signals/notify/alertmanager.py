"""Direct Alertmanager push: ``POST <url>/api/v2/alerts``, one alert per changed target.

Each alert (``alertname="SchemaDriftChangeDetected"`` — Alertmanager 0.25 accepts alerts without one, so it
is always set) carries ``cloud``, ``region``, ``schema`` and ``severity`` (breaking → critical, warning →
warning, info/cosmetic → info) and stays active for ``active_for``: the outbox entry is re-sent every
``resend_interval`` while active, and a last time with the past ``endsAt`` to resolve it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from monitor.config import AlertmanagerChannel, ChangesConfig, NotificationsConfig
from monitor.signals.notify.base import SenderBase, Transport
from monitor.signals.notify.report import change_lines
from monitor.store.records import OutboxItem

ALERTNAME = "SchemaDriftChangeDetected"
ALERT_SEVERITY = {"breaking": "critical", "warning": "warning", "info": "info", "cosmetic": "info"}


def alerts_for(report: dict[str, Any], ends_at: datetime) -> list[dict[str, Any]]:
    """The Alertmanager v2 alert objects for a report, active until ``ends_at``."""
    alerts = []
    for target in report["targets"]:
        alert: dict[str, Any] = {
            "labels": {
                "alertname": ALERTNAME,
                "cloud": target["cloud"],
                "region": target["region"],
                "schema": target["schema"],
                "severity": ALERT_SEVERITY[target["worst_severity"]],
                # one alert per change event: an older notification's resolve must not end a newer one
                "snapshot_id": str(target["snapshot_id"]),
                "service": "schema-drift-monitor",
            },
            "annotations": {
                "summary": "An API schema changed." + (" The document is flapping." if target.get("flapping") else ""),
                "description": f"{target['cloud']}/{target['region']}/{target['schema']}: "
                + "; ".join(change_lines(target, limit=10)),
            },
            "startsAt": target["detected_at"],
            "endsAt": ends_at.isoformat(),
        }
        if target.get("link"):
            alert["generatorURL"] = target["link"]
        alerts.append(alert)
    return alerts


class AlertmanagerSender(SenderBase[AlertmanagerChannel]):
    def __init__(
        self, channel: AlertmanagerChannel, settings: NotificationsConfig, changes: ChangesConfig | None = None
    ):
        super().__init__(channel, settings, changes)
        self.active_for = channel.active_for

    async def deliver(self, transport: Transport, item: OutboxItem, now: datetime) -> datetime | None:
        ends_at = item.ends_at or item.created_at + timedelta(seconds=self._channel.active_for)
        body = json.dumps(alerts_for(json.loads(item.payload), ends_at)).encode()
        url = self._channel.url.get_secret_value().rstrip("/") + "/api/v2/alerts"
        await transport.post(url, body, {}, self._settings.request_timeout)
        if now >= ends_at:
            return None  # that was the resolving send
        return min(now + timedelta(seconds=self._channel.resend_interval), ends_at)
