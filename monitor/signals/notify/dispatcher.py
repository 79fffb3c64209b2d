"""The notification loop: group new changes into the outbox, deliver due entries, retry with backoff.

It runs as its own asyncio task with its own database thread, so a slow or failing receiver never delays
a poll. Every attempt is counted in ``schemadrift_notifications_total{channel,outcome}``: ``sent``,
``retried`` (a transient failure, tried again after an exponential backoff) or ``failed`` (a permanent
failure such as a 4xx, or ``max_attempts`` reached). Logs name the channel, never its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar

from monitor.config import AlertmanagerChannel, ChangesConfig, NotificationsConfig, SlackChannel, WebhookChannel
from monitor.domain import exponential_backoff, in_thread, utcnow
from monitor.signals.metrics import Metrics
from monitor.signals.notify.alertmanager import AlertmanagerSender
from monitor.signals.notify.base import Channel, DeliveryError
from monitor.signals.notify.slack import SlackSender
from monitor.signals.notify.transport import HttpTransport
from monitor.signals.notify.webhook import WebhookSender
from monitor.store.outbox import OutboxStore
from monitor.store.records import OutboxItem, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
TICK_SECONDS = 1.0
CLAIM_BATCH = 5


def build_channels(settings: NotificationsConfig, changes: ChangesConfig | None = None) -> list[Channel]:
    """One sender per configured channel (``changes`` sets the flapping window its reports use)."""
    channels: list[Channel] = []
    for channel in settings.channels:
        if isinstance(channel, WebhookChannel):
            channels.append(WebhookSender(channel, settings, changes))
        elif isinstance(channel, SlackChannel):
            channels.append(SlackSender(channel, settings, changes))
        elif isinstance(channel, AlertmanagerChannel):
            channels.append(AlertmanagerSender(channel, settings, changes))
    return channels


class Dispatcher:
    """Turns stored changes into delivered notifications; ``tick`` does one round, ``run`` loops."""

    def __init__(
        self,
        settings: NotificationsConfig,
        store: OutboxStore,
        metrics: Metrics,
        channels: Sequence[Channel],
        transport: HttpTransport | None = None,
        leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._channels = {channel.name: channel for channel in channels}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notify")
        self._transport = transport or HttpTransport()
        self._leader = leader  # with replicas, one delivers: the leader
        self._prepared = False
        metrics.register_channels(self._channels)

    async def _db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await in_thread(self._executor, fn, *args, **kwargs)

    async def tick(self, now: datetime | None = None) -> None:
        """Group what is ready and deliver what is due; database errors are counted and retried next tick.

        ``now`` pins the clock (tests); otherwise each delivery is timed with the current time.
        """
        if not self._leader():
            return
        pinned, now = now, now or utcnow()
        try:
            if not self._prepared:
                await self._db(self._store.ensure_cursors, list(self._channels))
                self._prepared = True
            for channel in self._channels.values():
                await self._db(self._store.group_pending, channel.group_request(), now)
            # A small batch, each entry's lease covering every delivery before it in the batch.
            lease = self._settings.request_timeout * (CLAIM_BATCH + 1)
            due = await self._db(self._store.due, now, lease, CLAIM_BATCH)
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            log.error("notifications: database error: %s", exc)
            return
        for item in due:
            await self._deliver(item, pinned or utcnow())

    async def _deliver(self, item: OutboxItem, now: datetime) -> None:
        channel = self._channels.get(item.channel)
        if channel is None:
            return  # a channel removed from the config: its entries wait in case it comes back
        try:
            resend_at = await channel.deliver(self._transport, item, now)
        except DeliveryError as exc:
            await self._failed(item, exc, now)
            return
        self._metrics.notification(item.channel, "sent")
        log.info("notification %d delivered via %s", item.id, item.channel)
        await self._record(self._store.mark_sent, item.id, now, resend_at)

    async def _failed(self, item: OutboxItem, exc: DeliveryError, now: datetime) -> None:
        attempts = item.attempts + 1
        if exc.permanent or attempts >= self._settings.max_attempts:
            self._metrics.notification(item.channel, "failed")
            log.error("notification %d via %s failed for good after %d attempt(s): %s", item.id, item.channel,
                      attempts, exc)  # fmt: skip
            await self._record(self._store.mark_failed, item.id, attempts, str(exc))
            return
        delay = exponential_backoff(attempts, self._settings.retry_backoff, self._settings.retry_backoff_max)
        self._metrics.notification(item.channel, "retried")
        log.warning("notification %d via %s failed (%s); retry in %.0fs", item.id, item.channel, exc, delay)
        await self._record(self._store.mark_retry, item.id, attempts, now + timedelta(seconds=delay), str(exc))

    async def _record(self, fn: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await self._db(fn, *args, **kwargs)
        except StoreError as exc:
            self._metrics.db_result(False, exc.operation)
            log.error("notifications: could not record a delivery: %s", exc)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every second until ``stop`` is set; an unexpected error is logged, never fatal."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("notification tick raised")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)

    async def aclose(self) -> None:
        await self._transport.aclose()
        self._executor.shutdown(wait=True)
