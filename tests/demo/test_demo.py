"""The demo's region server (what ``schema-drift-monitor demo`` polls) over real loopback sockets."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import pytest

from monitor.demo import DEMO_REGIONS
from monitor.demo.server import SCHEMAS, RegionServer, UnknownRegionError, mutate_breaking

TOKEN = "demo-test-token"


def packaged(schema: str) -> dict[str, Any]:
    text = resources.files("monitor.demo").joinpath("documents", f"{schema}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.fixture
def regions() -> Iterator[RegionServer]:
    with RegionServer(DEMO_REGIONS, token=TOKEN) as server:
        yield server


def url(server: RegionServer, region: str, schema: str) -> str:
    return server.endpoint_template().format(region=region) + f"/v2/schemas/{schema}"


def test_it_serves_the_packaged_documents_in_every_region_with_the_token(regions: RegionServer) -> None:
    with httpx.Client(headers={"X-Auth-Token": TOKEN}, timeout=5.0) as client:
        for region in DEMO_REGIONS:
            for schema in SCHEMAS:
                response = client.get(url(regions, region, schema))
                assert (response.status_code, response.json()) == (200, packaged(schema))


def test_a_missing_or_wrong_token_is_401_and_unknown_routes_are_404(regions: RegionServer) -> None:
    with httpx.Client(timeout=5.0) as client:  # one keep-alive client: no error answer may break it
        statuses = [
            client.get(url(regions, DEMO_REGIONS[0], "images")).status_code,
            client.get(url(regions, DEMO_REGIONS[0], "images"), headers={"X-Auth-Token": "wrong"}).status_code,
            client.get(url(regions, "xx-nowhere-1", "images"), headers={"X-Auth-Token": TOKEN}).status_code,
            client.get(url(regions, DEMO_REGIONS[0], "tasks"), headers={"X-Auth-Token": TOKEN}).status_code,
            client.get(f"{regions.base_url}/_sim/{DEMO_REGIONS[0]}/requests").status_code,  # no control API
            client.get(url(regions, DEMO_REGIONS[0], "images"), headers={"X-Auth-Token": TOKEN}).status_code,
        ]
    assert statuses == [401, 401, 404, 404, 404, 200]


def test_it_compresses_only_when_the_client_accepts_gzip(regions: RegionServer) -> None:
    target = url(regions, DEMO_REGIONS[1], "members")
    with httpx.Client(headers={"X-Auth-Token": TOKEN}, timeout=5.0) as client:
        plain = client.get(target, headers={"Accept-Encoding": "identity"})
        with client.stream("GET", target, headers={"Accept-Encoding": "gzip"}) as response:
            compressed = b"".join(response.iter_raw())
            encoding = response.headers.get("content-encoding")
    assert plain.headers.get("content-encoding") is None and plain.json() == packaged("members")
    assert encoding == "gzip" and json.loads(gzip.decompress(compressed)) == packaged("members")


def test_mutate_changes_only_the_images_schema_of_that_region(regions: RegionServer) -> None:
    regions.mutate(DEMO_REGIONS[0])
    with httpx.Client(headers={"X-Auth-Token": TOKEN}, timeout=5.0) as client:
        changed = client.get(url(regions, DEMO_REGIONS[0], "images")).json()
        other = client.get(url(regions, DEMO_REGIONS[1], "images")).json()
    assert changed == mutate_breaking(packaged("images")) != packaged("images")
    assert other == packaged("images")
    with pytest.raises(UnknownRegionError):
        regions.mutate("xx-nowhere-1")
