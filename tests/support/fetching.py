"""One fetch of a target from a test, with the real :class:`~monitor.poll.fetch.Fetcher` and no pipeline around it.

:func:`spec_for` makes the spec of one of the simulator's documents (default r1's ``images``, no retries, no
jitter, a 3 s timeout, plain HTTP allowed, the tests' token), any field overridden by keyword;
:func:`credentials_for` gives the credentials a token spec is fetched with; :func:`fetch` fetches a spec once on
a fresh fetcher and returns the body (raising :class:`~monitor.poll.fetch.FetchError` as the fetcher does).
"""

from __future__ import annotations

import asyncio
from typing import Any

from monitor.auth.credentials import StaticToken
from monitor.config.settings import Secret, TokenSettings
from monitor.domain import TargetKey, TargetSpec
from monitor.poll.fetch import Fetcher
from tests.conftest import TOKEN
from tests.support.regions import Simulator


def spec_for(sim: Simulator, region: str = "r1", schema: str = "images", **overrides: Any) -> TargetSpec:
    values: dict[str, Any] = {
        "key": TargetKey("sim", region, schema),
        "url": sim.endpoint_template().replace("{region}", region) + f"/v2/schemas/{schema}",
        "interval": 60.0,
        "timeout": 3.0,
        "jitter": 0.0,
        "max_body_bytes": 5 * 2**20,
        "retries": 0,
        "retry_after_cap": 5.0,
        "allow_http": True,
        "auth": TokenSettings(token=Secret(TOKEN)),
    }
    values.update(overrides)
    return TargetSpec(**values)


def credentials_for(spec: TargetSpec) -> StaticToken | None:
    return StaticToken(spec.auth) if isinstance(spec.auth, TokenSettings) else None


def fetch(spec: TargetSpec) -> bytes:
    async def go() -> bytes:
        fetcher = Fetcher()
        try:
            return (await fetcher.fetch(spec, credentials_for(spec))).body
        finally:
            await fetcher.aclose()

    return asyncio.run(go())
