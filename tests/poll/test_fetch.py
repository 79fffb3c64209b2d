"""Fetching over real loopback sockets against the simulator: every failure gets its fixed reason."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from monitor.config.settings import Secret, TokenSettings
from monitor.domain import FailureReason, TargetKey, TargetSpec, TlsSettings
from monitor.poll.fetch import Fetcher, FetchError, _Clients, _parse_retry_after
from tests.conftest import TOKEN
from tests.support.fetching import fetch, spec_for
from tests.support.regions import Simulator


def failure(spec: TargetSpec) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(spec)
    return info.value


def test_it_fetches_the_document(simulator: Simulator) -> None:
    body = fetch(spec_for(simulator))
    assert json.loads(body) == simulator.document("r1", "images")


@pytest.mark.parametrize("code", [400, 401, 403, 404, 500, 503])
def test_each_documented_error_code_has_its_own_reason(simulator: Simulator, code: int) -> None:
    simulator.set_fault("r1", "status", code=code)
    error = failure(spec_for(simulator))
    assert error.reason == FailureReason(f"http_{code}")
    assert error.status == code


def test_an_unlisted_status_is_http_other(simulator: Simulator) -> None:
    simulator.set_fault("r1", "status", code=418)
    assert failure(spec_for(simulator)).reason is FailureReason.HTTP_OTHER


def test_a_wrong_token_is_http_401_and_not_retried(simulator: Simulator) -> None:
    spec = spec_for(simulator, auth=TokenSettings(token=Secret("wrong")), retries=3)
    before = simulator.requests("r1")
    assert failure(spec).reason is FailureReason.HTTP_401
    assert simulator.requests("r1") - before == 1


def test_a_hanging_server_times_out_within_the_deadline(simulator: Simulator) -> None:
    simulator.set_fault("r1", "hang")
    started = time.monotonic()
    error = failure(spec_for(simulator, timeout=1.0))
    assert error.reason is FailureReason.TIMEOUT
    assert time.monotonic() - started < 3.0


def test_a_trickling_server_is_ended_by_the_whole_poll_deadline(simulator: Simulator) -> None:
    simulator.set_fault("r1", "trickle", interval=0.2)  # each read is fast; the whole body takes minutes
    started = time.monotonic()
    assert failure(spec_for(simulator, timeout=1.0)).reason is FailureReason.TIMEOUT
    assert time.monotonic() - started < 3.0


def test_a_refused_connection_is_connect() -> None:
    spec = TargetSpec(
        key=TargetKey("sim", "r1", "images"), url="http://127.0.0.1:9/v2/schemas/images", interval=60,
        timeout=2, jitter=0, max_body_bytes=1000, retries=0, retry_after_cap=1, allow_http=True,
        auth=TokenSettings(token=Secret(TOKEN)),
    )  # fmt: skip
    assert failure(spec).reason is FailureReason.CONNECT


@pytest.mark.parametrize("mode", ["content_length", "chunked", "close"])
def test_an_oversized_body_stops_at_the_limit(simulator: Simulator, mode: str) -> None:
    simulator.set_fault("r1", "oversized", size=3 * 2**20, mode=mode)
    error = failure(spec_for(simulator, max_body_bytes=2**20))
    assert error.reason is FailureReason.TOO_LARGE


def test_a_gzip_bomb_is_limited_on_the_decompressed_size(simulator: Simulator) -> None:
    simulator.set_fault("r1", "gzip_bomb", size=200 * 2**20)
    assert failure(spec_for(simulator, max_body_bytes=2**20)).reason is FailureReason.TOO_LARGE


def test_a_gzip_response_within_the_limit_is_decoded(simulator: Simulator) -> None:
    body = fetch(spec_for(simulator))  # the simulator compresses when asked for gzip
    assert json.loads(body)["name"] == "images"


@pytest.mark.parametrize("fault", ["html"])
def test_an_html_page_is_invalid_json(simulator: Simulator, fault: str) -> None:
    simulator.set_fault("r1", fault)
    assert failure(spec_for(simulator)).reason is FailureReason.INVALID_JSON


def test_a_redirect_to_another_host_is_not_followed_and_gets_no_token(simulator: Simulator) -> None:
    with _RecordingServer() as other:
        simulator.set_fault("r1", "redirect", location=f"http://localhost:{other.port}/steal")
        error = failure(spec_for(simulator))
    assert error.reason is FailureReason.REDIRECT
    assert other.seen_tokens == []


def test_a_same_host_redirect_is_followed(simulator: Simulator) -> None:
    target = simulator.endpoint_template().replace("{region}", "r2") + "/v2/schemas/images"
    simulator.set_fault("r1", "redirect", location=target)
    assert json.loads(fetch(spec_for(simulator)))["name"] == "images"


def test_a_redirect_loop_is_bounded(simulator: Simulator) -> None:
    simulator.set_fault("r1", "redirect_loop")
    before = simulator.requests("r1")
    assert failure(spec_for(simulator)).reason is FailureReason.REDIRECT
    assert simulator.requests("r1") - before <= 6


@pytest.mark.slow
def test_transient_failures_are_retried(simulator: Simulator) -> None:
    simulator.set_fault("r1", "flaky", failures=2)
    body = fetch(spec_for(simulator, retries=2))
    assert json.loads(body)["name"] == "images"


def test_retry_after_is_honoured(simulator: Simulator) -> None:
    simulator.set_fault("r1", "flaky", failures=1, retry_after=1)
    started = time.monotonic()
    fetch(spec_for(simulator, retries=1, retry_after_cap=5.0))
    assert time.monotonic() - started >= 0.9


def test_retry_after_is_capped(simulator: Simulator) -> None:
    simulator.set_fault("r1", "flaky", failures=1, retry_after=30)
    started = time.monotonic()
    fetch(spec_for(simulator, retries=1, retry_after_cap=1.0, timeout=10.0))
    assert 0.9 <= time.monotonic() - started < 8.0  # waited the 1 s cap, not the 30 s asked for


def test_retry_after_beyond_the_deadline_fails_without_waiting(simulator: Simulator) -> None:
    simulator.set_fault("r1", "status", code=429, retry_after=120)
    started = time.monotonic()
    error = failure(spec_for(simulator, retries=2, retry_after_cap=60.0, timeout=2.0))
    assert error.reason is FailureReason.HTTP_429
    assert time.monotonic() - started < 1.0


def test_permanent_failures_are_not_retried(simulator: Simulator) -> None:
    simulator.set_fault("r1", "status", code=404)
    before = simulator.requests("r1")
    failure(spec_for(simulator, retries=3))
    assert simulator.requests("r1") - before == 1


def test_https_to_a_plain_http_server_is_a_tls_failure(simulator: Simulator) -> None:
    url = simulator.base_url.replace("http://", "https://") + "/r1/v2/schemas/images"
    assert failure(spec_for(simulator, url=url)).reason is FailureReason.TLS


def test_retry_after_parses_seconds_and_dates() -> None:
    assert _parse_retry_after("7") == 7.0
    assert _parse_retry_after(None) is None
    assert _parse_retry_after("soon") is None
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_a_non_json_content_type_is_refused_without_reading_the_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=b"{}")

    async def go() -> None:
        fetcher = Fetcher()
        fetcher._clients[TlsSettings()] = _Clients(lambda: httpx.MockTransport(handler))
        spec = TargetSpec(
            key=TargetKey("c", "r", "s"), url="https://example.invalid/x", interval=1, timeout=1, jitter=0,
            max_body_bytes=100, retries=0, retry_after_cap=1, allow_http=False,
            auth=TokenSettings(token=Secret("t")),
        )  # fmt: skip
        with pytest.raises(FetchError) as info:
            await fetcher.fetch(spec)
        assert info.value.reason is FailureReason.INVALID_JSON
        await fetcher.aclose()

    asyncio.run(go())


class _RecordingServer:
    """A loopback server that records the X-Auth-Token of every request it gets."""

    def __init__(self) -> None:
        self.seen_tokens: list[str | None] = []
        seen = self.seen_tokens

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.headers.get("X-Auth-Token"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]

    def __enter__(self) -> _RecordingServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_an_unreadable_token_file_is_auth_and_sends_nothing(simulator: Simulator, tmp_path: Any) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    spec = spec_for(simulator, auth=TokenSettings(token_file=token_file))
    assert json.loads(fetch(spec))["name"] == "images"  # the file is read at each poll
    token_file.unlink()
    before = simulator.requests("r1")
    error = failure(spec)
    assert error.reason is FailureReason.AUTH and "token_file" in str(error)
    assert simulator.requests("r1") == before


@pytest.mark.slow
def test_a_connect_that_hangs_times_out(tmp_path: Any) -> None:
    """A listener whose accept backlog is full drops new SYNs: the connect hangs until the deadline."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(8):  # fill the backlog (never accepted)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        spec = TargetSpec(
            key=TargetKey("sim", "r1", "images"), url=f"http://127.0.0.1:{port}/v2/schemas/images", interval=60,
            timeout=1.5, jitter=0, max_body_bytes=1000, retries=0, retry_after_cap=1, allow_http=True,
            auth=TokenSettings(token=Secret(TOKEN)),
        )  # fmt: skip
        started = time.monotonic()
        error = failure(spec)
        elapsed = time.monotonic() - started
        for filler in fillers:
            filler.close()
    assert error.reason is FailureReason.TIMEOUT
    assert elapsed < 4.0


def test_a_token_file_with_inner_whitespace_is_auth_and_not_echoed(simulator: Simulator, tmp_path: Any) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("secret part two")
    spec = spec_for(simulator, auth=TokenSettings(token_file=token_file))
    error = failure(spec)
    assert error.reason is FailureReason.AUTH
    assert "secret part" not in str(error)


def test_clients_are_reused_by_origin_and_made_only_when_none_is_idle() -> None:
    made: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        made.append(httpx.AsyncClient())
        return made[-1]

    async def go() -> None:
        clients = _Clients(make)
        async with clients.borrow("https://a:443") as first, clients.borrow("https://b:443") as second:
            assert first is not second  # two requests in flight: two clients
        async with clients.borrow("https://b:443") as again:
            assert again is second  # the one whose connection is open to b
        async with clients.borrow("https://c:443") as third:
            assert third is first  # none served c: the one idle longest
        assert len(made) == 2 and clients.all == made
        for client in made:
            await client.aclose()

    asyncio.run(go())
