"""Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): a text message with the report."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from monitor.config import SlackChannel
from monitor.signals.notify.base import SenderBase, Transport
from monitor.signals.notify.report import change_lines
from monitor.store.records import OutboxItem

MAX_TARGETS = 20


def slack_message(report: dict[str, Any]) -> dict[str, str]:
    """The ``{"text": ...}`` body for a report (mrkdwn; at most MAX_TARGETS targets listed)."""
    lines = [f"*{report['summary']}* (worst: {report['worst_severity']})"]
    for target in report["targets"][:MAX_TARGETS]:
        title = f"{target['cloud']}/{target['region']}/{target['schema']}"
        if target.get("link"):
            title = f"<{target['link']}|{title}>"
        flapping = " (flapping)" if target.get("flapping") else ""
        lines.append(f"• {title} — {target['worst_severity']}{flapping}")
        lines.extend(f"    {line}" for line in change_lines(target, limit=10))
    if len(report["targets"]) > MAX_TARGETS:
        lines.append(f"… and {len(report['targets']) - MAX_TARGETS} more target(s)")
    return {"text": "\n".join(lines)}


class SlackSender(SenderBase[SlackChannel]):
    async def deliver(self, transport: Transport, item: OutboxItem, now: datetime) -> datetime | None:
        body = json.dumps(slack_message(json.loads(item.payload)), ensure_ascii=False).encode()
        await transport.post(self._channel.url.get_secret_value(), body, {}, self._settings.request_timeout)
        return None
