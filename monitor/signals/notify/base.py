"""What every channel shares: the delivery error and an HTTP POST that classifies the response."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from monitor.config import ChangesConfig, ChannelSettings, NotificationsConfig
from monitor.domain import Severity
from monitor.signals.notify.report import report_json
from monitor.store.records import GroupRequest, OutboxItem


class DeliveryError(Exception):
    """A delivery failed; ``permanent`` says whether retrying can help. The text holds no URL or secret."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    """Carries a notification body to a receiver (:class:`monitor.signals.notify.transport.HttpTransport`)."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
        """POST ``body`` (JSON); returns on success, raises DeliveryError."""
        ...


class Channel(Protocol):
    """A notification channel: how it groups changes and how it delivers one outbox entry."""

    name: str

    def group_request(self) -> GroupRequest: ...

    async def deliver(self, transport: Transport, item: OutboxItem, now: datetime) -> datetime | None:
        """Deliver ``item``; returns when to send it again (None: done). Raises DeliveryError."""
        ...


def report_group_request(
    name: str,
    min_severity: str,
    settings: NotificationsConfig,
    active_for: float | None = None,
    changes: ChangesConfig | None = None,
) -> GroupRequest:
    """Group a channel's changes at ``min_severity`` or worse into one report per grouping window.

    A change that breaks a consumer (docs/consumers.md) is sent whatever ``min_severity`` says. Ignored changes
    and changes inside an expected-change window are never notified.
    """
    threshold = Severity(min_severity).rank
    changes = changes or ChangesConfig()
    return GroupRequest(
        channel=name,
        window=settings.grouping_window,
        keep=lambda r: (r.severity.rank >= threshold or bool(r.breaks)) and not r.ignored and not r.expected,
        build=lambda records, now, flapping: report_json(records, now, settings.link_template, flapping),
        active_for=active_for,
        flapping_window=changes.flapping_window,
        flapping_threshold=changes.flapping_threshold,
    )


C = TypeVar("C", bound=ChannelSettings)


class SenderBase(Generic[C]):
    """What every sender shares: its channel settings and how its changes are grouped."""

    active_for: float | None = None  # only Alertmanager alerts stay active for a while

    def __init__(self, channel: C, settings: NotificationsConfig, changes: ChangesConfig | None = None) -> None:
        self.name = channel.name
        self._channel = channel
        self._settings = settings
        self._changes = changes

    def group_request(self) -> GroupRequest:
        return report_group_request(
            self.name, self._channel.min_severity, self._settings, self.active_for, self._changes
        )
