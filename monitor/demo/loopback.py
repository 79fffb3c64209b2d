"""Loopback HTTP server plumbing: the demo's region server (:mod:`monitor.demo.server`) and the test
simulators (``tests/sim``) are built on it.

:class:`TrackingServer` is a :class:`~http.server.ThreadingHTTPServer` that knows its open connections, so
stopping can cut idle keep-alive ones and join the handler threads; its handlers reach the object that
owns it as ``server.owner``. :class:`LoopbackServer` is the owner's side: a base class with the lifecycle
(:meth:`~LoopbackServer.start`, :meth:`~LoopbackServer.stop`, use as a context manager) and
:attr:`~LoopbackServer.base_url`, optionally serving HTTPS. :class:`LoopbackHandler` is the request
handlers' base: HTTP/1.1 keep-alive, no access log, and ``Connection: close`` on every response after
which the connection is closed.

Standard library only.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Final, Generic, Self, TypeVar

STOP_GRACE_S: Final = 1.0
"""How long :meth:`LoopbackServer.stop` waits for handler threads, and then for the serving thread."""

_POLL_INTERVAL_S: Final = 0.05

OwnerT = TypeVar("OwnerT")


class TrackingServer(ThreadingHTTPServer, Generic[OwnerT]):
    """Tracks its connections so the owner's ``stop()`` can cut idle keep-alive ones and join handler threads.

    Handler threads are daemons and closing the server does not wait for them (``block_on_close`` is
    False): :meth:`abort_connections` joins them with a deadline instead. Errors raised by handlers are
    swallowed (:meth:`handle_error`). Binds and listens in the constructor (raises OSError when the
    address cannot be bound), with a listen backlog of ``queue_size``.
    """

    daemon_threads = True
    block_on_close = False  # abort_connections() joins with a deadline instead

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[BaseHTTPRequestHandler],
        owner: OwnerT,
        queue_size: int,
    ) -> None:
        self.owner: OwnerT = owner
        """The object serving through this server, for the handlers (``self.server.owner``)."""
        self.request_queue_size = queue_size  # read by server_activate(), called by the constructor below
        self._conn_lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        super().__init__(address, handler_class)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        current = threading.current_thread()
        with self._conn_lock:
            self._connections[current] = request
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.pop(current, None)

    def abort_connections(self, timeout: float) -> None:
        """Shut down every open connection and wait up to ``timeout`` s for the handlers to end."""
        with self._conn_lock:
            connections = dict(self._connections)
        for conn in connections.values():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for worker in connections:
            worker.join(max(deadline - time.monotonic(), 0))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay silent: a loopback server's own hiccups must not clutter output (nor show request data)."""


class LoopbackHandler(BaseHTTPRequestHandler):
    """Base request handler: HTTP/1.1 keep-alive, no access log, no Python version in ``Server``.

    Whenever the connection is to be closed after the response (``close_connection`` is True when the
    headers end), the response says ``Connection: close``. Without it a keep-alive client would send its
    next request on a socket the server is closing, and get no answer (a race that a loaded machine
    loses). A client that went away (OSError) ends the connection quietly.
    """

    protocol_version = "HTTP/1.1"  # keep-alive and hand-made chunked encoding
    disable_nagle_algorithm = True  # headers and body go out in separate writes; avoid delayed-ACK stalls
    sys_version = ""
    _connection_announced = False

    def version_string(self) -> str:
        """``Server`` header value without the Python version."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Never write access logs to stderr."""

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # client went away (BrokenPipe, ConnectionReset) or stop() cut the socket
            self.close_connection = True

    def send_response_only(self, code: int, message: str | None = None) -> None:
        self._connection_announced = False  # a new response: no Connection header sent yet
        super().send_response_only(code, message)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection":
            self._connection_announced = True
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        """End the headers, adding ``Connection: close`` when the connection closes after this response."""
        if self.close_connection and not self._connection_announced:
            self.send_header("Connection", "close")
        super().end_headers()


class LoopbackServer:
    """Base class of an object that serves HTTP through a :class:`TrackingServer` of its own.

    Subclasses set :attr:`handler_class` (whose handlers reach the subclass instance as
    ``self.server.owner``; cast ``self.server`` to ``TrackingServer[Subclass]``), :attr:`thread_name`,
    :attr:`queue_size` and :attr:`server_label`, and call ``super().__init__(host, port, tls=...)``.
    Handlers that wait or stream for long should watch ``self._release`` (captured per request): it is a
    fresh event at each :meth:`start` and is set by :meth:`stop`.

    Thread-safe: :meth:`start` and :meth:`stop` are serialized; :meth:`stop` can be followed by another
    :meth:`start` (on the same host and port setting; with ``port=0`` a new free port is picked).
    """

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    """The request handler class; required."""
    thread_name: ClassVar[str] = "loopback-server"
    """Name of the serving thread."""
    queue_size: ClassVar[int] = 128
    """Listen backlog: how many connections may wait to be accepted."""
    server_label: ClassVar[str] = "server"
    """What the RuntimeError of :attr:`base_url` calls this server (``"<label> is not started"``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        """Nothing is bound until :meth:`start`. ``tls`` (a server-side context) serves HTTPS instead of
        HTTP; the handshake happens in the request's thread, so a client that never completes it holds
        no one."""
        self._host = host
        self._port = port
        self._tls = tls
        self._lifecycle = threading.Lock()
        self._release = threading.Event()
        self._server: TrackingServer[Self] | None = None
        self._thread: threading.Thread | None = None

    def start(self: Self) -> None:
        """Bind and serve in a daemon thread. Does nothing if already started; raises OSError if the
        port cannot be bound."""
        with self._lifecycle:
            if self._server is not None:
                return
            self._release = threading.Event()
            server = TrackingServer((self._host, self._port), self.handler_class, self, self.queue_size)
            if self._tls is not None:
                try:
                    server.socket = self._tls.wrap_socket(
                        server.socket, server_side=True, do_handshake_on_connect=False
                    )
                except BaseException:
                    server.server_close()
                    raise
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL_S},
                name=self.thread_name,
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop serving and close the socket. The release event is set, so handlers waiting on it (hanging,
        trickling, delayed responses) give up, and open connections are cut; returns within about a
        second (:data:`STOP_GRACE_S` for the handlers, as much again for the serving thread). Does
        nothing if not started."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            self._server = self._thread = None
            self._release.set()
            server.shutdown()
            server.abort_connections(STOP_GRACE_S)
            server.server_close()
            thread.join(STOP_GRACE_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` (``https://`` when serving TLS) of the running server; raises RuntimeError
        before :meth:`start`."""
        server = self._server
        if server is None:
            raise RuntimeError(f"{self.server_label} is not started")
        host, port = server.server_address[:2]
        return f"{'https' if self._tls is not None else 'http'}://{host!s}:{port}"
