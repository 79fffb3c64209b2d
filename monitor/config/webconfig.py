"""The Prometheus exporter-toolkit web configuration file → frozen settings for the guarded HTTP port.

The file is the one Prometheus exporters take with ``--web.config.file`` (exporter-toolkit's
``docs/web-configuration.md``): ``tls_server_config``, ``http_server_config``, ``basic_auth_users`` and
``rate_limit``, with the same keys, defaults and meanings. :func:`load_web_config` reads it and returns
:class:`WebSettings`, or raises :class:`~monitor.config.ConfigError` listing every problem. The serving side
(:mod:`monitor.web.guard`) turns the settings into an ``ssl.SSLContext`` and the authentication middleware.

What differs from the Go implementation, and why:

* Unknown keys are refused, as ``yaml.UnmarshalStrict`` refuses them.
* Options Python's ``ssl`` module cannot honour are refused by name instead of being ignored: Go cipher-suite
  names (``cipher_suites``) and curve names (``curve_preferences``) — OpenSSL names them differently and
  Python 3.11 cannot set a curve list; ``client_auth_type`` ``RequestClientCert`` and ``RequireAnyClientCert``
  (OpenSSL cannot accept a client certificate it does not verify); and ``http2: true`` (the server speaks
  HTTP/1.1; ``http2: false`` is accepted, and without the key HTTP/1.1 is what clients negotiate).
* ``cert`` and ``cert_file`` (likewise ``key``/``key_file``, ``client_ca``/``client_ca_file``) together are
  refused rather than one silently winning; a verifying ``client_auth_type`` needs a client CA (Go would fall
  back to the system's roots, which would let any publicly trusted certificate in).
* ``rate_limit`` never applies to the health routes (probes must keep answering).

Relative file names are relative to the web configuration file's folder, as in exporter-toolkit. Secrets
(the bcrypt hashes, an inline ``key``) are kept out of every ``repr`` and every error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from monitor.config.errors import ConfigError

CLIENT_AUTH_TYPES: Final = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
"""The ``client_auth_type`` values served; ``NoClientCert`` is the default."""
UNVERIFIED_CLIENT_AUTH: Final = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
"""Go's values that accept a client certificate without verifying it: OpenSSL cannot, so they are refused."""
TLS_VERSIONS: Final = ("TLS10", "TLS11", "TLS12", "TLS13")
HEADER_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
"""The response headers ``http_server_config.headers`` may set, with their allowed values (empty: any)."""
BCRYPT_RE: Final = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
HASH_HINT: Final = "generate one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
_GO_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_HINTS: Final = {"tls_config": "tls_server_config", "http_config": "http_server_config", "users": "basic_auth_users"}


@dataclass(frozen=True, slots=True)
class TlsServerSettings:
    """``tls_server_config``: the server's certificate and key (a file or inline PEM), client certificates.

    ``client_auth`` is one of :data:`CLIENT_AUTH_TYPES`; a verifying one comes with a client CA (file or PEM).
    ``min_version``/``max_version`` are ``TLS10``..``TLS13``. ``key_pem`` is secret: it is not in the ``repr``.
    """

    cert_file: Path | None
    key_file: Path | None
    cert_pem: str | None = field(default=None, repr=False)
    key_pem: SecretStr | None = field(default=None, repr=False)
    client_auth: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca_pem: str | None = field(default=None, repr=False)
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True

    @property
    def files(self) -> tuple[Path, ...]:
        """The files this TLS configuration reads (a change to any of them is a reason to reload)."""
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate_limit``: a token bucket refilled with one request every ``interval`` seconds, holding ``burst``."""

    interval: float
    burst: int


@dataclass(frozen=True, slots=True)
class WebSettings:
    """A whole web configuration file, validated; ``source`` is its path.

    ``users`` maps each user name to its bcrypt hash (secret: not in the ``repr``; see :attr:`user_names`).
    ``headers`` are the response headers to add, in the file's order. ``tls`` is None for plain HTTP.
    """

    source: str
    tls: TlsServerSettings | None = None
    users: dict[str, SecretStr] = field(default_factory=dict, repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    rate_limit: RateLimit | None = None

    @property
    def user_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.users))

    @property
    def files(self) -> tuple[Path, ...]:
        """The file itself and every file it names: what to watch for changes."""
        return (Path(self.source), *(self.tls.files if self.tls else ()))


# --- the file's schema (pydantic, strict: unknown keys refused) ----------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _blank_is_none(value: Any) -> Any:
    """Go's YAML leaves an empty string as the zero value: ``cert_file: ""`` means no cert_file."""
    return None if value == "" else value


class _TlsServerConfig(_Strict):
    cert: str | None = None
    key: SecretStr | None = None
    client_ca: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: str | None = None
    client_ca_file: str | None = None
    client_allowed_sans: list[str] | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"
    cipher_suites: list[str] = Field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = Field(default_factory=list)

    @field_validator("cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
                     mode="before")  # fmt: skip
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_none(value)

    @property
    def enabled(self) -> bool:
        """TLS is on when any of its own settings is (exporter-toolkit's ``IsEnabled``)."""
        fields = (self.cert, self.key, self.client_ca, self.cert_file, self.key_file, self.client_ca_file,
                  self.client_auth_type)  # fmt: skip
        return any(value is not None for value in fields)


class _HttpServerConfig(_Strict):
    http2: bool | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class _RateLimitConfig(_Strict):
    interval: float = 0.0
    burst: int = Field(default=0, ge=0)

    @field_validator("interval", mode="before")
    @classmethod
    def _go_duration(cls, value: Any) -> float:
        return parse_go_duration(value)


class _WebConfigFile(_Strict):
    tls_server_config: _TlsServerConfig | None = None
    http_server_config: _HttpServerConfig | None = None
    basic_auth_users: dict[str, SecretStr] | None = None
    rate_limit: _RateLimitConfig | None = None


def parse_go_duration(value: Any) -> float:
    """Seconds from a Go duration (``1s``, ``250ms``, ``1m30s``) or a number of seconds; raises ValueError."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text == "0":
        return 0.0
    parts = _GO_DURATION_RE.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"expected a duration like 1s, 250ms or 1m30s, got {text!r}")
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


# --- checks beyond the schema: each returns the problems it finds ---------------------------------------------


def _tls_problems(tls: _TlsServerConfig) -> list[str]:
    where = "tls_server_config"
    problems = [f"{where}.{name}: {why}" for name, why in _unsupported(tls)]
    for inline, path in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if getattr(tls, inline) is not None and getattr(tls, path) is not None:
            problems.append(f"{where}: give {inline} or {path}, not both")
    if tls.cert is None and tls.cert_file is None:
        problems.append(f"{where}: missing one of cert or cert_file (the server's certificate)")
    if tls.key is None and tls.key_file is None:
        problems.append(f"{where}: missing one of key or key_file (the server's private key)")
    problems += _client_auth_problems(tls)
    if TLS_VERSIONS.index(tls.min_version) > TLS_VERSIONS.index(tls.max_version):
        problems.append(f"{where}: min_version {tls.min_version} is above max_version {tls.max_version}")
    return problems


def _unsupported(tls: _TlsServerConfig) -> list[tuple[str, str]]:
    """The settings Python's ``ssl`` module cannot honour, each with the reason and what to do instead."""
    found = []
    if tls.cipher_suites:
        found.append(("cipher_suites", "Go cipher-suite names cannot be honoured here (OpenSSL chooses among "
                      "its TLS 1.2/1.3 defaults); remove the list"))  # fmt: skip
    if tls.curve_preferences:
        found.append(("curve_preferences", "Go curve names cannot be honoured here (OpenSSL's default groups "
                      "are used); remove the list"))  # fmt: skip
    if tls.client_auth_type in UNVERIFIED_CLIENT_AUTH:
        found.append(("client_auth_type", f"{tls.client_auth_type} cannot be honoured here (OpenSSL verifies "
                      "every client certificate it accepts); use VerifyClientCertIfGiven or "
                      "RequireAndVerifyClientCert with client_ca_file"))  # fmt: skip
    return found


def _client_auth_problems(tls: _TlsServerConfig) -> list[str]:
    where = "tls_server_config"
    auth = tls.client_auth_type or "NoClientCert"
    if auth in UNVERIFIED_CLIENT_AUTH:
        return []  # named by _unsupported
    if auth not in CLIENT_AUTH_TYPES:
        return [f"{where}.client_auth_type: unknown value {auth!r}; one of {', '.join(CLIENT_AUTH_TYPES)}"]
    has_ca = tls.client_ca is not None or tls.client_ca_file is not None
    if has_ca and auth == "NoClientCert":
        return [f"{where}: a client CA is configured without client_auth_type (set RequireAndVerifyClientCert)"]
    if not has_ca and auth != "NoClientCert":
        return [f"{where}: client_auth_type {auth} needs client_ca_file (or client_ca): the CA that signs the "
                "client certificates"]  # fmt: skip
    if tls.client_allowed_sans is not None and auth != "RequireAndVerifyClientCert":
        return [f"{where}: client_allowed_sans needs client_auth_type RequireAndVerifyClientCert"]
    return []


def _http_problems(http: _HttpServerConfig) -> list[str]:
    where = "http_server_config"
    problems = []
    if http.http2:
        problems.append(f"{where}.http2: HTTP/2 cannot be honoured here (the server speaks HTTP/1.1); remove "
                        "http2 or set it to false")  # fmt: skip
    for name, value in http.headers.items():
        allowed = HEADER_VALUES.get(name)
        if allowed is None:
            problems.append(f"{where}.headers: header {name!r} cannot be configured; one of "
                            f"{', '.join(HEADER_VALUES)}")  # fmt: skip
        elif allowed and value and value not in allowed:
            problems.append(f"{where}.headers.{name}: expected one of {', '.join(allowed)}, got {value!r}")
    return problems


def _user_problems(users: dict[str, SecretStr]) -> list[str]:
    """Each password must be a bcrypt hash; the value itself is never repeated in the message."""
    return [f"basic_auth_users: the password of user {name!r} is not a bcrypt hash ($2y$10$ and 53 characters); "
            f"{HASH_HINT}"
            for name, secret in users.items() if not BCRYPT_RE.match(secret.get_secret_value())]  # fmt: skip


def _rate_problems(rate: _RateLimitConfig) -> list[str]:
    if rate.interval < 0:
        return ["rate_limit.interval: must not be negative (0 turns the rate limit off)"]
    if rate.interval > 0 and rate.burst < 1:
        return ["rate_limit.burst: must be at least 1 when interval is set (0 would refuse every request)"]
    return []


# --- building the settings -----------------------------------------------------------------------------------


def _path(folder: Path, name: str | None) -> Path | None:
    return None if name is None else folder / name


def _tls_settings(tls: _TlsServerConfig, folder: Path) -> TlsServerSettings:
    return TlsServerSettings(
        cert_file=_path(folder, tls.cert_file),
        key_file=_path(folder, tls.key_file),
        cert_pem=tls.cert,
        key_pem=tls.key,
        client_auth=tls.client_auth_type or "NoClientCert",
        client_ca_file=_path(folder, tls.client_ca_file),
        client_ca_pem=tls.client_ca,
        client_allowed_sans=tuple(tls.client_allowed_sans or ()),
        min_version=tls.min_version,
        max_version=tls.max_version,
        prefer_server_cipher_suites=tls.prefer_server_cipher_suites,
    )


def _file_problems(settings: TlsServerSettings) -> list[str]:
    names = (("cert_file", settings.cert_file), ("key_file", settings.key_file),
             ("client_ca_file", settings.client_ca_file))  # fmt: skip
    return [f"tls_server_config.{name}: {str(path)!r} is not a readable file"
            for name, path in names if path is not None and not path.is_file()]  # fmt: skip


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _schema_error(error: Any) -> str:
    """One line per pydantic error: where and what, never the input (it may be a hash or a key)."""
    where = _location(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":
        hint = _HINTS.get(str(error["loc"][-1]))
        return f"{where}: unknown key" + (f" (did you mean {hint}?)" if hint else "")
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"


def parse_web_config(data: Any, source: str) -> WebSettings:
    """Validate already-parsed YAML data of the file at ``source``; raises ConfigError listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping (tls_server_config, basic_auth_users, ...)"])
    try:
        parsed = _WebConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_schema_error(e) for e in exc.errors()]) from None
    folder = Path(source).parent
    tls = parsed.tls_server_config if parsed.tls_server_config and parsed.tls_server_config.enabled else None
    http = parsed.http_server_config or _HttpServerConfig()
    rate = parsed.rate_limit or _RateLimitConfig()
    users = parsed.basic_auth_users or {}
    problems = (_tls_problems(tls) if tls else []) + _http_problems(http) + _user_problems(users)
    problems += _rate_problems(rate)
    settings = _tls_settings(tls, folder) if tls else None
    if settings is not None and not problems:
        problems += _file_problems(settings)
    if problems:
        raise ConfigError(source, problems)
    return WebSettings(
        source=source,
        tls=settings,
        users=dict(users),
        headers=tuple((name, value) for name, value in http.headers.items() if value),
        rate_limit=RateLimit(rate.interval, rate.burst) if rate.interval > 0 else None,
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's excerpt of the line (it may hold a hash or a key)."""
    problem = getattr(exc, "problem", None) or "syntax error"
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def load_web_config(path: str | Path) -> WebSettings:
    """Read and validate the web configuration file at ``path``; raises ConfigError (never a bare exception)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the web configuration file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, ["the web configuration file is not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {_yaml_problem(exc)}"]) from None
    return parse_web_config(data, source)
