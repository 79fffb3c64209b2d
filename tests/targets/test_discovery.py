"""Which catalog endpoints discovery keeps for a cloud's ``services:`` (unit level, no identity service)."""

from __future__ import annotations

from monitor.config import parse_config
from monitor.config.settings import CloudSettings
from monitor.targets import discovery

CATALOG = {
    "block-storage": "https://volume.r1.example/v3/0123456789abcdef",
    "network": "https://network.r1.example",
    "compute": "https://compute.r1.example/v2.1",
}


def surface_cloud(services: list[str] | str) -> CloudSettings:
    config = parse_config(
        {
            "database": {"url": "sqlite:///unused.db"},
            "clouds": [
                {
                    "name": "os",
                    "regions": "auto",
                    "services": services,
                    "auth": {"type": "password", "auth_url": "https://keystone.example/v3", "username": "u",
                             "password": "p", "project_name": "p", "user_domain_name": "Default",
                             "project_domain_name": "Default"},
                }
            ],
        },
        "test",
    )  # fmt: skip
    return config.clouds[0].settings()


def test_listed_service_types_match_the_catalog_under_their_official_names() -> None:
    cloud = surface_cloud(["volumev3", "network"])  # volumev3 is the catalog alias of block-storage

    endpoints = discovery._region_endpoints(cloud, "r1", CATALOG)

    assert endpoints == {"block-storage": CATALOG["block-storage"], "network": CATALOG["network"]}
    assert discovery._relevant(cloud, {"block-storage": CATALOG["block-storage"]})
    assert not discovery._relevant(cloud, {"compute": CATALOG["compute"]})


def test_all_keeps_every_service_of_the_catalog() -> None:
    assert discovery._region_endpoints(surface_cloud("all"), "r1", CATALOG) == CATALOG
