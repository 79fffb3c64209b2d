"""One :class:`~monitor.auth.credentials.Credentials` per (cloud, region), built on first use.

Each region gets its own Keystone token, scoped to the region's project when the auth config says
``{region}`` (Huawei IMS is project-scoped per region), so token requests, failures and expiries are
exported per (cloud, region). Identity requests run on threads of their own, a few per cloud, so a
hanging identity service holds neither the event loop, nor the database workers, nor another cloud's
logins. :func:`warn_insecure` warns once per cloud whose TLS verification is switched off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import certifi

from monitor.auth.credentials import AkSk, Credentials, KeystoneToken, StaticToken
from monitor.config.settings import (
    AkSkSettings,
    ApplicationCredentialSettings,
    CloudSettings,
    KeystoneCredentials,
    PasswordSettings,
    TokenSettings,
)
from monitor.domain import AuthSettings, TargetSpec, TlsSettings
from monitor.signals.metrics import Metrics

log = logging.getLogger(__name__)

DISCOVERY_REGION = "_discovery"
"""The ``region`` label of the token used to discover a cloud's regions."""


class AuthManager:
    """Builds and caches credentials; ``close`` releases the identity threads."""

    def __init__(self, metrics: Metrics, workers_per_cloud: int = 4) -> None:
        self._metrics = metrics
        self._workers = workers_per_cloud
        self._executors: dict[str, ThreadPoolExecutor] = {}  # per cloud: a hanging identity service holds its own
        self._gates: dict[str, asyncio.Semaphore] = {}  # as many requests in flight as the cloud has threads
        self._bundles: dict[Path, Path] = {}  # a cloud's cacert → the usual CAs plus it, in a temporary file
        self._cache: dict[tuple[str, str], Credentials | None] = {}

    def for_target(self, spec: TargetSpec) -> Credentials | None:
        """The credentials of the target's (cloud, region); None for ``auth: none``."""
        return self._get(spec.key.cloud, spec.key.region, spec.auth, spec.tls)

    def for_region(self, cloud: CloudSettings, region: str) -> Credentials | None:
        """The credentials polls of ``region`` use (the same object as :meth:`for_target`)."""
        return self._get(cloud.name, region, cloud.auth, cloud.tls)

    def for_discovery(self, cloud: CloudSettings, *, domain_scope: bool = False) -> KeystoneToken:
        """The token used to find a cloud's regions: its configured scope, or the user's domain."""
        key = (cloud.name, DISCOVERY_REGION)
        credentials = self._cache.get(key)
        if credentials is None:
            auth = cloud.auth
            if not isinstance(auth, PasswordSettings | ApplicationCredentialSettings):
                raise TypeError(f"cloud {cloud.name}: discovery needs password or application_credential auth")
            if domain_scope:  # an application credential keeps its own scope
                auth = auth.domain_scoped()
            credentials = self._keystone(cloud.name, DISCOVERY_REGION, auth, cloud.tls)
            self._cache[key] = credentials
        assert isinstance(credentials, KeystoneToken)
        return credentials

    def _get(self, cloud: str, region: str, auth: AuthSettings, tls: TlsSettings) -> Credentials | None:
        key = (cloud, region)
        if key not in self._cache:
            self._cache[key] = self._build(cloud, region, auth, tls)
        return self._cache[key]

    def forget(self, cloud: str, region: str) -> None:
        """Drop a region's credentials and auth series (it is no longer polled)."""
        if self._cache.pop((cloud, region), None) is not None:
            self._metrics.remove_identity(cloud, region)

    def close(self) -> None:
        """Stop the identity threads (a hanging request is abandoned, not awaited)."""
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        for bundle in self._bundles.values():
            bundle.unlink(missing_ok=True)

    def _build(self, cloud: str, region: str, auth: AuthSettings, tls: TlsSettings) -> Credentials | None:
        if isinstance(auth, TokenSettings):
            return StaticToken(auth)
        if isinstance(auth, AkSkSettings):
            return AkSk(auth, region)
        if isinstance(auth, PasswordSettings | ApplicationCredentialSettings):
            return self._keystone(cloud, region, auth.for_region(region) if auth.per_region else auth, tls)
        return None

    def _executor(self, cloud: str) -> ThreadPoolExecutor:
        executor = self._executors.get(cloud)
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=f"identity-{cloud}")
            self._executors[cloud] = executor
        return executor

    def _verify(self, ca_bundle: Path | None) -> str | bool:
        """What requests verifies the identity service with: the usual CAs, plus ``ca_bundle`` if given.

        requests takes one bundle file, which would replace the usual CAs; a merged copy keeps ``cacert``
        meaning "trust this CA too" for the identity service as for the polls.
        """
        if ca_bundle is None:
            return True
        merged = self._bundles.get(ca_bundle)
        if merged is None:
            content = Path(certifi.where()).read_bytes() + b"\n" + ca_bundle.read_bytes()
            handle, name = tempfile.mkstemp(prefix="schemadrift-ca-", suffix=".pem")
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            merged = self._bundles[ca_bundle] = Path(name)
        return str(merged)

    def _gate(self, cloud: str) -> asyncio.Semaphore:
        return self._gates.setdefault(cloud, asyncio.Semaphore(self._workers))

    def _keystone(self, cloud: str, region: str, auth: KeystoneCredentials, tls: TlsSettings) -> KeystoneToken:
        self._metrics.register_identity(cloud, region)

        def on_attempt(ok: bool, expires_at: float) -> None:
            if (cloud, region) in self._cache:  # not a request that outlived its region's removal
                self._metrics.auth_attempt(cloud, region, ok, expires_at)

        return KeystoneToken(
            auth,
            verify=False if tls.insecure else self._verify(tls.ca_bundle),
            cert=(str(tls.cert), str(tls.key)) if tls.cert and tls.key else (str(tls.cert) if tls.cert else None),
            executor=self._executor(cloud),
            gate=self._gate(cloud),
            on_attempt=on_attempt,
        )


class _NamedTls(Protocol):
    """A cloud as far as TLS warnings go (a configured cloud, or its :class:`CloudSettings`)."""

    @property
    def name(self) -> str: ...

    @property
    def tls(self) -> TlsSettings: ...


def warn_insecure(clouds: Iterable[_NamedTls]) -> None:
    """Log a warning for every cloud whose TLS verification the config switches off."""
    for cloud in clouds:
        if cloud.tls.insecure:
            log.warning("cloud %s: insecure: true — TLS certificates are NOT verified (polls and identity)", cloud.name)
