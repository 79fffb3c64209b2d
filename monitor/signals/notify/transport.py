"""How notifications travel: the one place in ``monitor.signals.notify`` that knows httpx.

Channels only see :class:`Transport`: ``post(url, body, headers, timeout)`` returns on a 2xx answer and
raises :class:`~monitor.signals.notify.base.DeliveryError` otherwise, telling whether a retry may help. The
error text names the status or the kind of network failure, never the URL (webhook URLs carry secrets).
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from monitor import __version__
from monitor.signals.notify.base import DeliveryError

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class HttpTransport:
    """POSTs over one pooled httpx client (no redirects, no proxy settings from the environment)."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, headers={"User-Agent": f"schema-drift-monitor/{__version__}"}
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
        """POST ``body`` as JSON; raises DeliveryError (transient for 408/425/429/5xx and network errors)."""
        try:
            response = await self._client.post(
                url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=timeout
            )
        except httpx.TimeoutException:
            raise DeliveryError("timeout", permanent=False) from None
        except httpx.TransportError as exc:
            raise DeliveryError(f"transport error: {type(exc).__name__}", permanent=False) from None
        if not 200 <= response.status_code < 300:
            permanent = response.status_code not in TRANSIENT_STATUSES
            raise DeliveryError(f"HTTP {response.status_code}", permanent=permanent)

    async def aclose(self) -> None:
        await self._client.aclose()
