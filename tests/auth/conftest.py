"""What the credential tests share: one identity service with a user, a project per region and an AK/SK pair,
regions that accept only what it issued, and the password auth block of a cloud."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.identity import IdentitySimulator, RegionAuthorizer, region_authorizer
from tests.support.regions import Simulator

REGIONS = ("r1", "r2", "r3")
DOMAIN = "acme"
USER = "monitor"
PASSWORD = "pa55-W0rd-for-identity-tests"
APP_SECRET = "app-cred-secret-7c1b2a"
AK = "AKTESTACCESSKEY0001"
SK = "sk-secret-key-for-tests-0f9e8d7c"


@pytest.fixture
def identity() -> Iterator[IdentitySimulator]:
    """The identity service: user ``USER`` in ``DOMAIN``, a project per region (plus ``MOS`` and ``r1_dev``,
    which are no region names a discovery may take), and the AK/SK pair."""
    with IdentitySimulator() as service:
        service.add_user(USER, PASSWORD, domain=DOMAIN)
        for region in (*REGIONS, "MOS", "r1_dev"):
            service.add_project(region, domain=DOMAIN)
        service.add_aksk(AK, SK)
        yield service


@pytest.fixture
def authorizer(identity: IdentitySimulator) -> RegionAuthorizer:
    return region_authorizer(identity)


@pytest.fixture
def regions(identity: IdentitySimulator, authorizer: RegionAuthorizer) -> Iterator[Simulator]:
    """The simulated regions, accepting only tokens the identity service issued; the catalog lists them."""
    with Simulator(REGIONS, authorizer=authorizer) as sim:
        identity.set_catalog({region: f"{sim.base_url}/{region}" for region in REGIONS})
        yield sim


def password_auth(identity: IdentitySimulator, **overrides: Any) -> dict[str, Any]:
    """A cloud's ``auth`` block: password auth of ``USER``, one project per region, 2 s timeout."""
    return {"type": "password", "auth_url": identity.auth_url, "username": USER, "password": PASSWORD,
            "user_domain_name": DOMAIN, "project_name": "{region}", "timeout": "2s", **overrides}  # fmt: skip
