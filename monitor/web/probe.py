"""``schema-drift-monitor healthcheck``: ask this host's monitor for ``/healthz`` the way its port is guarded.

The check goes to the configured listen address (a wildcard address becomes the loopback one) over HTTPS when
the web configuration turns TLS on, trusting exactly the configured server certificate (the certificate names
the service's public name, not the loopback address, so the host name is not compared; pinning the
certificate is the stronger check). ``/healthz`` needs no credentials. Under ``RequireAndVerifyClientCert`` the
handshake needs a client certificate: pass one the server's client CA signed. No proxy from the environment is
used: the check is about this host.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from monitor.config.webconfig import TlsServerSettings

WILDCARDS: Final = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def health_url(host: str, port: int, tls: bool) -> str:
    """The ``/healthz`` URL for a server listening on ``host:port``."""
    host = WILDCARDS.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/healthz"


def client_context(
    tls: TlsServerSettings, client_cert: Path | None = None, client_key: Path | None = None
) -> ssl.SSLContext:
    """A client context trusting the server certificate of ``tls`` (and no other), with an optional client
    certificate; raises OSError or ssl.SSLError when a file cannot be read."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the certificate itself is pinned below
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a leaf certificate can be the trust anchor
    pem = tls.cert_file.read_text(encoding="utf-8") if tls.cert_file is not None else tls.cert_pem or ""
    context.load_verify_locations(cadata=pem)
    if client_cert is not None:
        context.load_cert_chain(str(client_cert), str(client_key) if client_key is not None else None)
    return context


def check_health(url: str, context: ssl.SSLContext | None, timeout: float) -> tuple[bool, str]:
    """Whether ``url`` answers 200 within ``timeout`` seconds, and one line saying so (or why not)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return False, f"unhealthy: {url}: {reason}"
    if status != 200:
        return False, f"unhealthy: {url} answered {status}"
    return True, f"healthy: {url} answered 200"
