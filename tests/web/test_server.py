"""The daemon's HTTP server over a real loopback socket: a keep-alive client survives errors and closes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from monitor.signals.metrics import Metrics
from monitor.web.app import create_app
from monitor.web.server import WebServer


@pytest.fixture
def status_url() -> Iterator[str]:
    server = WebServer(create_app(Metrics(), lambda: {"scheduler": True}), "127.0.0.1", 0)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.mark.slow
def test_a_keep_alive_client_carries_on_after_errors(status_url: str) -> None:
    """Errors (404, 405) keep the connection usable or announce its close: no request lands on a closing socket."""
    with httpx.Client(base_url=status_url, timeout=5.0) as client:
        for _ in range(50):
            answers = [client.get("/healthz"), client.get("/nowhere"), client.post("/metrics", content=b"x")]
            assert [r.status_code for r in answers] == [200, 404, 405]


def test_a_taken_port_is_an_error_at_start(status_url: str) -> None:
    port = int(status_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        WebServer(create_app(Metrics(), lambda: {"scheduler": True}), "127.0.0.1", port)
