"""The daemon's status listener over a real loopback socket: every response announces the close."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from monitor.httpserver import StatusServer
from monitor.metrics import Metrics


@pytest.fixture
def status_url() -> Iterator[str]:
    server = StatusServer("127.0.0.1", 0, Metrics(), lambda: {"scheduler": True})
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_every_response_says_the_connection_closes_and_a_keep_alive_client_carries_on(status_url: str) -> None:
    """The handler closes after each response (HTTP/1.0); a client reusing its pool must never be caught
    sending on the closing socket."""
    with httpx.Client(base_url=status_url, timeout=5.0) as client:
        for _ in range(50):
            answers = [client.get("/healthz"), client.get("/nowhere"), client.post("/metrics", content=b"x")]
            assert [(r.status_code, r.headers.get("connection")) for r in answers] == [
                (200, "close"),
                (404, "close"),
                (405, "close"),
            ]
