"""uvicorn on a thread and event loop of its own, so the HTTP side never waits for the daemon's loop.

The socket is bound when the server is made (``port`` 0 picks a free one), so a taken port is an error
at start-up — :class:`OSError` — not in the background. With ``tls`` (an ``ssl.SSLContext``, usually the
guard's :class:`~monitor.web.guard.SwappableContext`) the port speaks HTTPS only.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading

import uvicorn
from starlette.types import ASGIApp

from monitor.web.guard import Guard

BACKLOG = 2048  # uvicorn's default


class WebServer:
    """``start()`` serves ``app`` on ``host:port`` in a thread; ``stop()`` ends it (within a few seconds)."""

    def __init__(self, app: ASGIApp, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP; without
        # it every keep-alive response waited ~40 ms for the client's delayed ACK
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
            # Listen here, not in the server thread: until a socket listens, SO_REUSEADDR lets a second process
            # bind the same port, so a taken port would not be an error at start.
            self._socket.listen(BACKLOG)
        except OSError:
            self._socket.close()
            raise
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=5,
                                timeout_graceful_shutdown=5, log_config=None)  # fmt: skip
        if tls is not None:
            config.load()  # uvicorn builds its own context from files in load(); ours replaces it afterwards
            config.ssl = tls
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, finish open requests briefly, close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()


def guarded_server(app: ASGIApp, host: str, port: int, guard: Guard | None) -> WebServer:
    """The server for ``app``: behind ``guard`` (its middleware and TLS context) when there is one."""
    if guard is None:
        return WebServer(app, host, port)
    return WebServer(guard.middleware(app), host, port, guard.context)
