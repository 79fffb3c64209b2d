"""The daemon's HTTP listener: ``/metrics``, ``/healthz``, ``/readyz`` and the read API under ``/api/``.

It runs in its own threads (stdlib ``ThreadingHTTPServer``). The status endpoints answer from memory only, so
they keep answering promptly during a database or network outage, and while the event loop is busy; the
API (``monitor.api``, when given) also reads the database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from monitor.api import Api
from monitor.metrics import CONTENT_TYPE, Metrics


class StatusServer:
    """Serves the metrics and health endpoints on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        ready: Callable[[], dict[str, bool]],
        api: Api | None = None,
    ):
        handler = _make_handler(metrics, ready, api)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _make_handler(
    metrics: Metrics, ready: Callable[[], dict[str, bool]], api: Api | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "schema-drift-monitor"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if api is not None and path.startswith("/api/"):
                self._serve_api()
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE, metrics.exposition())
            elif path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            elif path == "/readyz":
                checks = ready()
                status = 200 if checks.get("scheduler") else 503
                self._send(status, "application/json", json.dumps(checks).encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz, /readyz\n")

        def do_POST(self) -> None:
            if api is not None and self.path.startswith("/api/"):
                self._serve_api()
            else:
                self._send(405, "text/plain; charset=utf-8", b"method not allowed\n", (("Allow", "GET"),))

        do_PUT = do_PATCH = do_DELETE = do_POST

        def _serve_api(self) -> None:
            assert api is not None
            headers = {name.lower(): value for name, value in self.headers.items()}
            response = api.handle(self.command, self.path, headers, self.rfile.read)
            self._send(response.status, response.content_type, response.body, response.headers)

        def _send(self, status: int, content_type: str, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            # HTTP/1.0 handler: the connection closes after every response. Say so, so that no client
            # sends its next request on a socket being closed.
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every 15 s would drown the log

    return Handler
