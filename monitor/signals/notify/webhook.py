"""Generic JSON webhook: the report as-is, optionally signed with HMAC-SHA256.

With ``secret`` set, ``X-Schemadrift-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from monitor.config import WebhookChannel
from monitor.signals.notify.base import SenderBase, Transport
from monitor.store.records import OutboxItem

SIGNATURE_HEADER = "X-Schemadrift-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender(SenderBase[WebhookChannel]):
    async def deliver(self, transport: Transport, item: OutboxItem, now: datetime) -> datetime | None:
        body = item.payload.encode()
        headers = {}
        if self._channel.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._channel.secret.get_secret_value(), body)
        await transport.post(self._channel.url.get_secret_value(), body, headers, self._settings.request_timeout)
        return None
