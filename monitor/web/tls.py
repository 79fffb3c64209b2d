"""TLS for the guarded port: the server context built from ``tls_server_config``, and the swappable context
the listening socket keeps so that a reload applies to new connections without a new socket.

What Python's ``ssl`` module offers maps onto exporter-toolkit's settings as follows: ``min_version`` and
``max_version`` are the context's version bounds; ``client_auth_type`` is ``verify_mode`` (``CERT_NONE``,
``CERT_OPTIONAL`` for ``VerifyClientCertIfGiven``, ``CERT_REQUIRED`` for ``RequireAndVerifyClientCert``) with
the client CA loaded; ``client_allowed_sans`` is checked right after the handshake by
:class:`_SanCheckedObject` (the context's ``sslobject_class``), which ends a connection whose verified client
certificate has none of the names. Inline PEM (``cert``, ``key``) goes through a private temporary folder,
because ``load_cert_chain`` reads files only; an encrypted key is refused rather than letting OpenSSL prompt
on a terminal. Errors are :class:`~monitor.config.ConfigError` naming the setting, never a key's content.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import ssl
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from monitor.config import ConfigError
from monitor.config.webconfig import TlsServerSettings

log = logging.getLogger(__name__)

TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
VERIFY_MODES: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


class ServerContext(ssl.SSLContext):
    """A server context that may also require one of ``allowed_sans`` in the client's certificate."""

    allowed_sans: frozenset[str] = frozenset()


class _SanCheckedObject(ssl.SSLObject):
    """Ends the handshake when the (verified) client certificate has none of the context's allowed SANs."""

    def do_handshake(self) -> None:
        super().do_handshake()
        allowed: frozenset[str] = getattr(self.context, "allowed_sans", frozenset())
        if allowed and not peer_sans(self.getpeercert()) & allowed:
            log.debug("refused a client certificate: none of its SANs is in client_allowed_sans")
            raise ssl.SSLError("the client certificate has none of the names in client_allowed_sans")


class SwappableContext(ssl.SSLContext):
    """The listening socket's one context: each new connection is wrapped by whatever ``current`` is then.

    asyncio wraps every accepted connection with ``context.wrap_bio``; delegating it is what lets a reload
    change the certificate, the CA and the client-auth policy without a new socket.
    """

    current: ssl.SSLContext

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.current.wrap_bio(incoming, outgoing, server_side, server_hostname, session)


def _normal_san(value: str) -> str:
    """IP addresses in one spelling (OpenSSL writes IPv6 in full, upper case); other names as they are."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def peer_sans(certificate: Mapping[str, Any] | None) -> set[str]:
    """The DNS, IP, e-mail and URI names of ``ssl.SSLObject.getpeercert()``'s certificate."""
    names: Iterable[tuple[str, str]] = (certificate or {}).get("subjectAltName", ())
    return {_normal_san(str(value)) for _, value in names}


class _EncryptedKeyError(Exception):
    """The private key asks for a passphrase (raised instead of letting OpenSSL prompt on a terminal)."""


def _no_passphrase() -> bytes:
    raise _EncryptedKeyError


@contextlib.contextmanager
def _key_pair_files(tls: TlsServerSettings) -> Iterator[tuple[str, str]]:
    """Paths of the certificate and key; inline PEM goes to a private temporary folder, removed at once."""
    with tempfile.TemporaryDirectory(prefix="sdm-tls-") as folder:  # mode 0700: only this user reads the key
        cert, key = tls.cert_file, tls.key_file
        if cert is None:
            cert = Path(folder, "cert.pem")
            cert.write_text(tls.cert_pem or "", encoding="utf-8")
        if key is None:
            key = Path(folder, "key.pem")
            key.touch(mode=0o600)
            key.write_text(tls.key_pem.get_secret_value() if tls.key_pem else "", encoding="utf-8")
        yield str(cert), str(key)


def _load_key_pair(context: ssl.SSLContext, tls: TlsServerSettings, source: str) -> None:
    where = f"cert_file {str(tls.cert_file)!r}" if tls.cert_file else "cert"
    try:
        with _key_pair_files(tls) as (cert, key):
            context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKeyError:
        raise ConfigError(source, ["tls_server_config: the private key is encrypted; give an unencrypted key "
                                   "(exporter-toolkit takes no passphrase)"]) from None  # fmt: skip
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ConfigError(source, [f"tls_server_config: cannot load the certificate ({where}) and its key: not "
                                   f"PEM, or the key does not match the certificate ({reason})"]) from None  # fmt: skip


def _load_client_ca(context: ssl.SSLContext, tls: TlsServerSettings, source: str) -> None:
    where = f"client_ca_file {str(tls.client_ca_file)!r}" if tls.client_ca_file else "client_ca"
    try:
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        else:
            context.load_verify_locations(cadata=tls.client_ca_pem or "")
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or "no PEM certificate found"
        raise ConfigError(source, [f"tls_server_config: cannot load the client CA ({where}): {reason}"]) from None


def server_context(tls: TlsServerSettings, source: str) -> ServerContext:
    """The TLS context for ``tls``; raises ConfigError (naming the setting) when a file cannot be used."""
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])  # the server speaks HTTP/1.1: an HTTP/2 client learns it here
    _load_key_pair(context, tls, source)
    context.verify_mode = VERIFY_MODES[tls.client_auth]
    if tls.client_auth != "NoClientCert":
        _load_client_ca(context, tls, source)
    if tls.client_allowed_sans:
        context.allowed_sans = frozenset(_normal_san(name) for name in tls.client_allowed_sans)
        context.sslobject_class = _SanCheckedObject
    return context
