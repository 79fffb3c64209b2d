"""The IMS simulator over real loopback sockets: normal service, auth, every fault, the control API."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import httpx
import pytest

import monitor.demo
from tests.support.regions import FAULTS, SCHEMAS, Simulator, UnknownRegionError, mutate_breaking

REGIONS = ("cn-north-4", "ap-southeast-1")
TOKEN = "sim-test-token"
AUTH = {"X-Auth-Token": TOKEN}
DOCUMENTS = Path(monitor.demo.__file__).parent / "documents"
MIB = 1024 * 1024
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def packaged(schema: str) -> dict[str, Any]:
    """The document the demo package ships for ``schema``, read from its file."""
    data: dict[str, Any] = json.loads((DOCUMENTS / f"{schema}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(REGIONS, token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers=AUTH, timeout=5.0, follow_redirects=False) as http:
        yield http


def schema_url(sim: Simulator, schema: str = "images", region: str = REGIONS[0]) -> str:
    return sim.endpoint_template().format(region=region) + f"/v2/schemas/{schema}"


def schema_path(schema: str = "images", region: str = REGIONS[0]) -> str:
    return f"/{region}/v2/schemas/{schema}"


def raw_exchange(sim: Simulator, path: str, extra: str = "", timeout: float = 5.0) -> tuple[str, bytes]:
    """Send one GET on a fresh socket (Connection: close) and read to EOF; returns (head, raw body)."""
    port = int(sim.base_url.rsplit(":", 1)[1])
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {TOKEN}\r\nConnection: close\r\n{extra}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request.encode())
        data = bytearray()
        while chunk := conn.recv(256 * 1024):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def header(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def dechunk(body: bytes) -> bytes:
    """Decode HTTP/1.1 chunked transfer coding strictly (fails on any framing error)."""
    out, pos = bytearray(), 0
    while True:
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end], 16)
        start = line_end + 2
        if size == 0:
            assert body[start:] == b"\r\n"
            return bytes(out)
        out += body[start : start + size]
        assert body[start + size : start + size + 2] == b"\r\n"
        pos = start + size + 2


def sorted_enums(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: sorted_enums(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [sorted_enums(v) for v in value]
        return sorted(items) if key == "enum" else items
    return value


def wait_for_requests(sim: Simulator, count: int, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while sim.requests() < count:
        assert time.monotonic() < deadline, "request never reached the simulator"
        time.sleep(0.01)


# -- documents --------------------------------------------------------------------------------------


def test_the_packaged_image_is_the_items_schema_of_images() -> None:
    items = packaged("images")["properties"]["images"]["items"]
    image = packaged("image")
    assert image["name"] == "image"
    for key in ("properties", "additionalProperties", "links"):
        assert image[key] == items[key]


def test_the_packaged_members_wraps_member_like_glance() -> None:
    member, members = packaged("member"), packaged("members")
    assert member["name"] == "member" and members["name"] == "members"
    assert member["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    assert "READ-ONLY" in member["properties"]["created_at"]["description"]
    assert members["properties"]["members"] == {"items": member, "type": "array"}
    assert "schema" in members["properties"]


def test_mutate_breaking_removes_min_disk_and_adds_vhdx_without_touching_its_argument() -> None:
    original = packaged("images")
    changed = mutate_breaking(original)
    properties = changed["properties"]["images"]["items"]["properties"]
    assert "min_disk" not in properties
    assert properties["disk_format"]["enum"][-1] == "vhdx"
    assert original == packaged("images")
    assert mutate_breaking(changed) == changed


# -- normal service and auth ------------------------------------------------------------------------


@pytest.mark.parametrize("schema", SCHEMAS)
def test_it_serves_the_packaged_document_in_every_region(sim: Simulator, client: httpx.Client, schema: str) -> None:
    for region in REGIONS:
        response = client.get(schema_url(sim, schema, region))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json; charset=UTF-8"
        assert response.json() == packaged(schema)
    assert sim.requests() == len(REGIONS)
    assert sim.requests(REGIONS[1]) == 1


def test_it_sends_identity_with_content_length_unless_gzip_is_accepted(sim: Simulator) -> None:
    head, body = raw_exchange(sim, schema_path())
    assert header(head, "Content-Length") == str(len(body))
    assert header(head, "Content-Encoding") is None
    assert json.loads(body) == packaged("images")

    head, body = raw_exchange(sim, schema_path(), extra="Accept-Encoding: gzip\r\n")
    assert header(head, "Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(body)) == packaged("images")


def test_unknown_region_or_schema_is_an_ims_404(sim: Simulator, client: httpx.Client) -> None:
    for url in (schema_url(sim, "images", "xx-nowhere-1"), schema_url(sim, "tasks")):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "IMG.0001"
    assert sim.requests() == 0


def test_a_missing_or_wrong_token_is_401_and_still_counted(sim: Simulator) -> None:
    url = schema_url(sim)
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-Auth-Token": "wrong"}).status_code == 401
    assert httpx.get(url, headers=AUTH).status_code == 200
    assert sim.requests(REGIONS[0]) == 3


def test_without_a_token_configured_no_header_is_needed() -> None:
    with Simulator(["r1"]) as simulator:
        assert httpx.get(schema_url(simulator, "member", "r1")).json() == packaged("member")


def test_set_document_changes_the_served_document_and_document_returns_a_copy(
    sim: Simulator, client: httpx.Client
) -> None:
    sim.set_document(REGIONS[1], "member", {"name": "member", "properties": {}})
    assert client.get(schema_url(sim, "member", REGIONS[1])).json() == {"name": "member", "properties": {}}
    assert client.get(schema_url(sim, "member", REGIONS[0])).json() == packaged("member")
    copy = sim.document(REGIONS[1], "member")
    copy["properties"]["x"] = {}
    assert sim.document(REGIONS[1], "member") == {"name": "member", "properties": {}}


def test_invalid_arguments_are_refused(sim: Simulator) -> None:
    with pytest.raises(UnknownRegionError):
        sim.set_fault("xx-nowhere-1", "html")
    with pytest.raises(ValueError, match="unknown fault"):
        sim.set_fault(REGIONS[0], "explode")
    with pytest.raises(ValueError, match="no option"):
        sim.set_fault(REGIONS[0], "html", code=500)
    with pytest.raises(ValueError, match="mode"):
        sim.set_fault(REGIONS[0], "oversized", mode="zip")
    with pytest.raises(ValueError, match="wrong type"):
        sim.set_fault(REGIONS[0], "status", code="500")
    with pytest.raises(ValueError, match="schema"):
        sim.set_document(REGIONS[0], "tasks", {})
    with pytest.raises(ValueError, match="duplicate"):
        Simulator(["a", "a"])


# -- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [400, 401, 403, 404, 429, 500, 502, 503, 504])
def test_status_fault_answers_the_code_with_an_ims_error(sim: Simulator, client: httpx.Client, code: int) -> None:
    sim.set_fault(REGIONS[0], "status", code=code, retry_after=7)
    for schema in SCHEMAS:
        response = client.get(schema_url(sim, schema))
        assert response.status_code == code
        assert response.headers["retry-after"] == "7"
        assert set(response.json()["error"]) == {"message", "code"}
    assert client.get(schema_url(sim, "images", REGIONS[1])).status_code == 200
    sim.set_fault(REGIONS[0], None)
    assert client.get(schema_url(sim)).status_code == 200


def test_flaky_fails_the_next_n_requests_then_recovers(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "flaky", failures=2)
    codes = [client.get(schema_url(sim)).status_code for _ in range(4)]
    assert codes == [503, 503, 200, 200]


def test_html_fault_is_a_200_html_page(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "html")
    response = client.get(schema_url(sim))
    assert (response.status_code, response.headers["content-type"]) == (200, "text/html; charset=UTF-8")
    assert response.text == "<html><body>Service maintenance</body></html>"


def test_html_as_json_fault_labels_html_as_json(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "html_as_json")
    response = client.get(schema_url(sim))
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.startswith("<html>")


def test_truncated_fault_cuts_the_body_in_half_with_a_matching_length(sim: Simulator) -> None:
    sim.set_fault(REGIONS[0], "truncated")
    head, body = raw_exchange(sim, schema_path())
    full = len(json.dumps(packaged("images"), indent=4, ensure_ascii=False).encode())
    assert header(head, "Content-Length") == str(len(body)) == str(full // 2)
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


@pytest.mark.parametrize(
    ("fault", "body"),
    [
        ("not_object", b"[1, 2, 3]"),
        ("not_schema", b'{"hello": "world"}'),
        ("deep", b"[" * 10_000 + b"]" * 10_000),
        ("nan", b'{"type": "object", "properties": {"x": {"default": NaN}}}'),
        ("duplicate_keys", b'{"type": "object", "type": "array", "properties": {}}'),
    ],
)
def test_malformed_body_faults_send_their_exact_body(
    sim: Simulator, client: httpx.Client, fault: str, body: bytes
) -> None:
    sim.set_fault(REGIONS[0], fault)
    response = client.get(schema_url(sim, "member"))
    assert (response.status_code, response.content) == (200, body)


def test_oversized_with_content_length_streams_six_mib_of_json(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "oversized")
    with client.stream("GET", schema_url(sim)) as response:
        assert response.headers["content-length"] == str(6 * MIB)
        body = b"".join(response.iter_raw())
    assert len(body) == 6 * MIB
    assert json.loads(body)["properties"] == {}


def test_oversized_chunked_has_no_length_and_valid_hand_made_chunks(sim: Simulator) -> None:
    sim.set_fault(REGIONS[0], "oversized", mode="chunked", size=MIB + 5)
    head, body = raw_exchange(sim, schema_path())
    assert head.startswith("HTTP/1.1 200")
    assert header(head, "Transfer-Encoding") == "chunked"
    assert header(head, "Content-Length") is None
    decoded = dechunk(body)
    assert len(decoded) == MIB + 5 and json.loads(decoded)["properties"] == {}


def test_oversized_close_ends_the_body_by_closing_the_connection(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "oversized", mode="close", size=2 * MIB)
    head, body = raw_exchange(sim, schema_path())
    assert header(head, "Content-Length") is None and header(head, "Transfer-Encoding") is None
    assert header(head, "Connection") == "close"
    assert len(body) == 2 * MIB
    with client.stream("GET", schema_url(sim)) as response:
        assert sum(len(piece) for piece in response.iter_raw()) == 2 * MIB


def test_gzip_bomb_is_small_on_the_wire_and_huge_inflated(sim: Simulator) -> None:
    sim.set_fault(REGIONS[0], "gzip_bomb")
    head, body = raw_exchange(sim, schema_path())  # no Accept-Encoding: the bomb is sent anyway
    assert header(head, "Content-Encoding") == "gzip"
    assert header(head, "Content-Length") == str(len(body))
    assert len(body) < 256 * 1024
    inflated = gzip.decompress(body)
    assert len(inflated) == 50 * MIB
    assert inflated.startswith(b'{"properties": {}, "pad": "000')


def test_hang_is_released_by_stop_within_two_seconds(sim: Simulator) -> None:
    sim.set_fault(REGIONS[0], "hang")
    port = int(sim.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=3.0) as conn:
        conn.sendall(f"GET {schema_path()} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\n\r\n".encode())
        wait_for_requests(sim, 1)
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(1)  # still hanging
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 2.0
        conn.settimeout(2.0)
        assert conn.recv(1024) == b""  # closed without an answer


def test_a_hung_handler_ends_when_its_client_gives_up(sim: Simulator) -> None:
    def handler_threads() -> int:
        return sum("process_request_thread" in thread.name for thread in threading.enumerate())

    sim.set_fault(REGIONS[0], "hang")
    port = int(sim.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=3.0) as conn:
        conn.sendall(f"GET {schema_path()} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\n\r\n".encode())
        wait_for_requests(sim, 1)
        assert handler_threads() == 1
    deadline = time.monotonic() + 2.0
    while handler_threads():
        assert time.monotonic() < deadline, "hung handler outlived its client"
        time.sleep(0.05)


def test_stop_cuts_idle_keep_alive_connections_and_start_stop_are_idempotent(
    sim: Simulator, client: httpx.Client
) -> None:
    sim.start()
    assert client.get(schema_url(sim)).status_code == 200  # leaves a keep-alive connection open
    started = time.monotonic()
    sim.stop()
    sim.stop()
    assert time.monotonic() - started < 2.0
    with pytest.raises(RuntimeError):
        _ = sim.base_url


def test_trickle_announces_the_full_length_and_sends_slowly(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "trickle", interval=0.2)
    full = len(json.dumps(packaged("images"), indent=4, ensure_ascii=False).encode())
    received = 0
    with client.stream("GET", schema_url(sim)) as response:
        assert response.headers["content-length"] == str(full)
        started = time.monotonic()
        for piece in response.iter_raw():
            received += len(piece)
            if time.monotonic() - started > 1.0:
                break
    assert 2 <= received <= 10


def test_redirect_fault_points_elsewhere(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "redirect", location="http://other.invalid/v2/schemas/images", code=307)
    response = client.get(schema_url(sim))
    assert (response.status_code, response.headers["location"]) == (307, "http://other.invalid/v2/schemas/images")


def test_redirect_loop_points_back_at_itself(sim: Simulator, client: httpx.Client) -> None:
    sim.set_fault(REGIONS[0], "redirect_loop")
    response = client.get(schema_url(sim))
    assert (response.status_code, response.headers["location"]) == (302, schema_path())
    with pytest.raises(httpx.TooManyRedirects):
        client.get(schema_url(sim), follow_redirects=True)


def test_reordered_has_the_same_content_in_different_bytes(sim: Simulator) -> None:
    _, normal = raw_exchange(sim, schema_path())
    sim.set_fault(REGIONS[0], "reordered")
    _, reordered = raw_exchange(sim, schema_path())
    assert reordered != normal
    assert list(json.loads(reordered)) == list(reversed(list(json.loads(normal))))
    assert sorted_enums(json.loads(reordered)) == sorted_enums(json.loads(normal))


def test_every_fault_can_be_set() -> None:
    assert {"status", "hang", "trickle", "oversized", "gzip_bomb", "flaky", "reordered"} <= FAULTS
    with Simulator(["r1"]) as simulator:
        for fault in FAULTS:
            simulator.set_fault("r1", fault)
            assert simulator.fault("r1") == fault


# -- control API ------------------------------------------------------------------------------------


def test_control_api_sets_and_clears_faults_without_a_token(sim: Simulator, client: httpx.Client) -> None:
    control = f"{sim.base_url}/_sim/{REGIONS[0]}"
    with httpx.Client(timeout=5.0) as anonymous:
        assert anonymous.post(f"{control}/fault", json={"fault": "status", "code": 503}).status_code == 200
        assert client.get(schema_url(sim)).status_code == 503
        assert anonymous.post(f"{control}/fault", json={"fault": None}).status_code == 200
        assert client.get(schema_url(sim)).status_code == 200
        assert anonymous.get(f"{control}/requests").json() == {"region": REGIONS[0], "requests": 2}
        assert anonymous.post(f"{control}/fault", json={"fault": "explode"}).status_code == 400
        assert anonymous.post(f"{sim.base_url}/_sim/xx-nowhere-1/fault", json={"fault": None}).status_code == 404


def test_a_failed_control_request_announces_the_close_and_the_client_carries_on(sim: Simulator) -> None:
    """400 and 404 control answers close the connection. Unannounced, a keep-alive client would send its
    next request on the socket the server is closing and get no answer (httpx: "Server disconnected
    without sending a response"), which a loaded machine made happen."""
    control = f"{sim.base_url}/_sim/{REGIONS[0]}"
    with httpx.Client(timeout=5.0) as anonymous:
        for _ in range(200):
            refused = anonymous.post(f"{control}/fault", json={"fault": "explode"})
            assert (refused.status_code, refused.headers.get("connection")) == (400, "close")
            unknown = anonymous.post(f"{sim.base_url}/_sim/xx-nowhere-1/fault", json={"fault": None})
            assert (unknown.status_code, unknown.headers.get("connection")) == (404, "close")
            served = anonymous.get(f"{control}/requests")  # on a new connection, kept open
            assert (served.status_code, served.headers.get("connection")) == (200, None)


def test_control_api_replaces_and_mutates_documents(sim: Simulator, client: httpx.Client) -> None:
    control = f"{sim.base_url}/_sim/{REGIONS[1]}"
    with httpx.Client(timeout=5.0) as anonymous:
        assert anonymous.put(f"{control}/schemas/image", json={"name": "image"}).status_code == 200
        assert anonymous.post(f"{control}/mutate").status_code == 200
    assert client.get(schema_url(sim, "image", REGIONS[1])).json() == {"name": "image"}
    assert client.get(schema_url(sim, "images", REGIONS[1])).json() == mutate_breaking(packaged("images"))
    assert client.get(schema_url(sim, "images", REGIONS[0])).json() == packaged("images")


# -- command line -----------------------------------------------------------------------------------


def first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first line ``process`` printed (stripped); fails when it exited without printing one, and kills
    it when it printed nothing within ``timeout`` seconds."""
    stdout = cast(IO[str], process.stdout)  # Popen(stdout=PIPE)
    timer = threading.Timer(timeout, process.kill)  # never let a broken main() hang the suite
    timer.start()
    try:
        line = stdout.readline()
    finally:
        timer.cancel()
    assert line, f"the process printed nothing and exited with {process.wait(timeout=5)}"
    return line.strip()


@pytest.mark.slow
def test_main_prints_the_endpoint_template_and_exits_cleanly_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "tests.support.regions", "--regions", "a,b", "--port", "0", "--token", TOKEN]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT) as process:
        try:
            template = first_line(process, timeout=10.0)
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\{region\}", template), template
            response = httpx.get(template.format(region="b") + "/v2/schemas/members", headers=AUTH)
            assert response.json() == packaged("members")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_validators_are_sent_and_quoting_them_gets_a_bodiless_304(sim: Simulator, client: httpx.Client) -> None:
    region = REGIONS[0]
    sim.set_fault(region, "validators", etag="content", last_modified="per_request")
    first = client.get(schema_url(sim))
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.status_code == 200 and first.json() == sim.document(region, "images")

    again = client.get(schema_url(sim), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    changed = client.get(schema_url(sim), headers={"If-Modified-Since": modified})  # a new date every request
    assert changed.status_code == 200 and changed.headers["Last-Modified"] != modified
    sim.mutate(region)
    assert client.get(schema_url(sim), headers={"If-None-Match": etag}).headers["ETag"] != etag  # from the bytes
    assert sim.quoted(region) == [(None, None), (etag, None), (None, modified), (etag, None)]


def test_validators_can_be_fixed_and_not_honoured_and_not_modified_answers_304_to_anything(
    sim: Simulator, client: httpx.Client
) -> None:
    region = REGIONS[0]
    sim.set_fault(region, "validators", etag='"same"', honour=False)
    assert client.get(schema_url(sim), headers={"If-None-Match": '"same"'}).status_code == 200
    sim.mutate(region)
    assert client.get(schema_url(sim)).headers["ETag"] == '"same"'
    sim.set_fault(region, "not_modified")
    assert client.get(schema_url(sim)).status_code == 304
