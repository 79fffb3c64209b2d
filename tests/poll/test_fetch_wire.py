"""The fetcher's HTTP engine (httpx on aiohttp) on real loopback sockets: what the engine could change.

Each test covers an edge where aiohttp behaves differently from httpx's own transport unless told: the
environment's proxies, cookies, connections kept open, how a broken answer is reported, a header HTTP
forbids. The failure reasons are the ones ``tests/test_fetching.py`` holds for httpx's transport.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from monitor.auth.credentials import Credentials, RequestSigner
from monitor.config.auth import TokenAuth
from monitor.domain import FailureReason, TargetKey, TargetSpec
from monitor.poll.fetch import Fetched, Fetcher, FetchError
from tests.conftest import TOKEN
from tests.support.fetching import credentials_for, fetch, spec_for
from tests.support.regions import Simulator

TCP_ESTABLISHED = "01"


def spec_at(url: str, **overrides: Any) -> TargetSpec:
    values: dict[str, Any] = {
        "key": TargetKey("wire", "r1", "images"), "url": url, "interval": 60.0, "timeout": 3.0, "jitter": 0.0,
        "max_body_bytes": 2**20, "retries": 0, "retry_after_cap": 1.0, "allow_http": True,
        "auth": TokenAuth(type="token", token=TOKEN),  # type: ignore[arg-type]
    }  # fmt: skip
    values.update(overrides)
    return TargetSpec(**values)


async def fetch_all(fetcher: Fetcher, specs: list[TargetSpec], at_once: int | None = None) -> list[Fetched]:
    """Every spec fetched concurrently; ``at_once`` bounds the fetches in flight as the poll service does."""
    gate = asyncio.Semaphore(at_once or len(specs) or 1)

    async def one(spec: TargetSpec) -> Fetched:
        async with gate:
            return await fetcher.fetch(spec, credentials_for(spec))

    return list(await asyncio.gather(*(one(spec) for spec in specs)))


def failure_of(spec: TargetSpec, credentials: Credentials | None = None) -> FetchError:
    async def go() -> None:
        fetcher = Fetcher()
        try:
            await fetcher.fetch(spec, credentials or credentials_for(spec))
        finally:
            await fetcher.aclose()

    with pytest.raises(FetchError) as info:
        asyncio.run(go())
    return info.value


# --- servers -------------------------------------------------------------------------------------------


class KeepAliveServer:
    """An HTTP/1.1 server that keeps connections open, answers ``{}`` with a cookie and records each request's
    Cookie header and how many connections it accepted."""

    def __init__(self) -> None:
        self.cookies: list[str | None] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_GET(self) -> None:
                server.cookies.append(self.headers.get("Cookie"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.send_header("Set-Cookie", "session=abc123; Path=/")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v2/schemas/images"

    def __enter__(self) -> KeepAliveServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class ScriptedServer:
    """Answers every connection with ``reply`` (raw bytes) once the request head has arrived, then closes it."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v2/schemas/images"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (data := conn.recv(4096)):
                    head += data
                conn.sendall(self._reply)

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()


def established_to(ports: set[int]) -> int:
    """Connections in state ESTABLISHED from a local socket to one of ``ports`` on 127.0.0.1 (the kernel's
    view: a connection the fetcher closed is not counted, whatever the server has noticed yet)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        remote_port, state = int(fields[2].split(":")[1], 16), fields[3]
        count += state == TCP_ESTABLISHED and remote_port in ports
    return count


# --- the tests -----------------------------------------------------------------------------------------


def test_proxies_from_the_environment_are_ignored(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with KeepAliveServer() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert b'"images"' in fetch(spec_for(simulator))
    assert proxy.connections == 0


def test_cookies_a_server_sets_are_never_sent_back() -> None:
    with KeepAliveServer() as server:
        spec = spec_at(server.url.replace("127.0.0.1", "localhost"))  # a jar may refuse cookies of an IP address

        async def go() -> None:
            fetcher = Fetcher()
            try:
                for _ in range(3):
                    await fetcher.fetch(spec, credentials_for(spec))
            finally:
                await fetcher.aclose()

        asyncio.run(go())
    assert server.cookies == [None, None, None]


def test_a_connection_is_kept_for_the_next_poll_of_the_same_origin() -> None:
    with KeepAliveServer() as server:
        spec = spec_at(server.url)

        async def go() -> int:
            fetcher = Fetcher()
            try:
                for _ in range(5):
                    await fetcher.fetch(spec, credentials_for(spec))
                return established_to({server.port})
            finally:
                await fetcher.aclose()

        assert asyncio.run(go()) == 1
        assert server.connections == 1
        assert established_to({server.port}) == 0  # aclose closed it


@pytest.fixture
def origins() -> Iterator[list[KeepAliveServer]]:
    servers = [KeepAliveServer() for _ in range(5)]
    for server in servers:
        server.__enter__()
    yield servers
    for server in servers:
        server.__exit__()


def test_connections_open_never_exceed_the_fetches_in_flight_across_origins(origins: list[KeepAliveServer]) -> None:
    """aiohttp's connector bounds the connections in use, not the idle ones; the fetcher bounds both by the
    fetches its caller lets run at once."""
    ports = {server.port for server in origins}
    specs = [spec_at(server.url) for server in origins]

    async def go() -> list[int]:
        fetcher = Fetcher()
        try:
            seen = []
            for shift in range(4):  # every origin, in a different order each round
                await fetch_all(fetcher, specs[shift:] + specs[:shift], at_once=2)
                seen.append(established_to(ports))
            return seen
        finally:
            await fetcher.aclose()

    open_after_each_round = asyncio.run(go())
    assert all(1 <= count <= 2 for count in open_after_each_round), open_after_each_round
    assert sum(server.connections for server in origins) > 2  # origins changed hands: old connections closed


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"", id="closed without an answer"),
        pytest.param(b"NOT HTTP AT ALL\r\n\r\n", id="garbage status line"),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", id="garbage header line"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}", id="body cut short"
        ),
    ],
)
def test_a_broken_answer_is_connect_and_transient_as_with_httpx_own_transport(reply: bytes) -> None:
    with ScriptedServer(reply) as server:
        error = failure_of(spec_at(server.url))
    assert error.reason is FailureReason.CONNECT, str(error)
    assert error.transient
    assert "url=" not in str(error) and not str(error).startswith("400")  # not aiohttp's text, not an HTTP 400


def ok_with_header(value: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-Big: " + value + b"\r\n\r\n{}"


def test_a_response_header_up_to_8_kib_is_read_and_a_longer_one_refused() -> None:
    """aiohttp's limit, nginx's and Apache's too: 8190 bytes a header line (httpx took 100 KiB in all)."""
    with ScriptedServer(ok_with_header(b"a" * 8000)) as server:
        spec = spec_at(server.url)

        async def go() -> Fetched:
            fetcher = Fetcher()
            try:
                return await fetcher.fetch(spec)
            finally:
                await fetcher.aclose()

        assert asyncio.run(go()).headers["x-big"] == "a" * 8000
    with ScriptedServer(ok_with_header(b"a" * 9000)) as server:
        error = failure_of(spec_at(server.url))
    assert error.reason is FailureReason.CONNECT and "8190" in str(error)


class _InjectingSigner(RequestSigner):
    def headers(self, method: str, url: str) -> dict[str, str]:
        return {"X-Auth-Token": "secret-token-1\r\nX-Injected: secret-token-2"}


class _Injecting(Credentials):
    async def acquire(self) -> RequestSigner:
        return _InjectingSigner()


def test_a_header_http_forbids_is_refused_without_echoing_it(simulator: Simulator) -> None:
    before = simulator.requests("r1")
    error = failure_of(spec_for(simulator), _Injecting())
    assert error.reason is FailureReason.CONNECT
    assert "secret-token" not in str(error)
    assert simulator.requests("r1") == before  # nothing was sent
