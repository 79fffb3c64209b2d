"""``auth: {type: cloud}``: a cloud's credentials, regions and TLS settings from clouds.yaml.

openstacksdk's own loader reads the files, so whatever works for the ``openstack`` command works here:
``clouds.yaml`` in ``./``, ``~/.config/openstack/`` (or ``$XDG_CONFIG_HOME/openstack/``) and
``/etc/openstack/`` (``OS_CLIENT_CONFIG_FILE`` first), ``secure.yaml`` merged over it
(``OS_CLIENT_SECURE_FILE``), built-in vendor ``profile:`` files, and — when the config names no cloud —
``OS_CLOUD`` or the ``OS_*`` environment variables.

:func:`resolve` returns what it found as plain data (:class:`CloudsYamlCloud`); the configuration applies
it (:func:`monitor.config.apply_clouds_yaml`), only where the monitor's config leaves a setting unset (the config
wins), and validates its auth mapping as one written in the config file:

* ``auth_type`` ``password``/``v3password`` (or unset) → ``type: password``; ``v3applicationcredential``/
  ``applicationcredential`` → ``type: application_credential``; ``token``/``v3token`` (or unset, with a token
  and no password) → ``type: token``: a static token, sent as is and never renewed, so its ``auth_url`` and
  scope are not used. Other auth types are refused. An ``auth_url`` without ``/v3`` is kept as written:
  keystoneauth's v3 plugins add ``/v3`` when it is missing. ``default_domain_*`` fill the user and project
  domains; ``system_scope`` and ``trust_id`` are refused (the monitor cannot honour them).
* ``regions`` (or ``region_name``) → ``regions``. No region anywhere leaves ``regions`` unset, which is
  reported as for any other cloud.
* ``image_endpoint_override`` (or ``image_endpoint``) → ``endpoint_override``, unless the config has
  ``endpoint`` or ``endpoint_override``.
* ``cacert`` → ``ca_bundle``; ``cert`` and ``key`` → ``cert`` and ``key`` (as a pair, only when the config
  has neither); ``verify: false`` or ``insecure: true`` → ``insecure`` (the daemon warns at start).
* ``interface`` (or ``image_interface``) → ``discovery.interface``, unless the config sets it.

Values that differ between a cloud's regions (per-region ``values:``, or ``{region_name}`` which
openstacksdk expands) are accepted for ``auth_url``, ``project_name``, ``project_id`` and the endpoint when
they differ only by the region name: they become ``{region}`` templates. Any other difference is an error.

Loading reads local files only: no network, no auth plugin talks to anything, and a ``profile:`` given as
a URL (which openstacksdk would fetch) is refused. No secret is ever put in an exception or a log line.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions
from openstack import warnings as sdk_warnings
from openstack.config import loader as sdk_loader
from openstack.config import vendors as sdk_vendors
from openstack.config.cloud_region import CloudRegion

from monitor.config.settings import REGION_PLACEHOLDER, CloudsYamlCloud

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# clouds.yaml auth_type → the keystoneauth plugin whose options openstacksdk normalises the auth section to
_PLUGINS = {
    "password": "password",
    "v3password": "password",
    "v3applicationcredential": "v3applicationcredential",
    "applicationcredential": "v3applicationcredential",
    "token": "token",
    "v3token": "token",
}
_SUPPORTED = ", ".join(_PLUGINS)
_INTERFACES = ("public", "internal", "admin")
_SUFFIXES = (".yaml", ".yml", ".json")
# fields that may differ between regions when they differ only by the region's name ({region_name})
_TEMPLATED = frozenset({"auth.auth_url", "auth.project_name", "auth.project_id", "endpoint_override"})
_UNSUPPORTED_AUTH_KEYS = ("system_scope", "trust_id")
_KEYSTONE_FIELDS = (
    "auth_url",
    "user_domain_name",
    "user_domain_id",
    "project_name",
    "project_id",
    "project_domain_name",
    "project_domain_id",
    "domain_name",
    "domain_id",
)
_SECRET_WORDS = ("password", "secret", "token", "passcode")


class _UnsupportedAuthType(Exception):
    def __init__(self, auth_type: object) -> None:
        super().__init__(auth_type)
        self.auth_type = auth_type


class _Loader(sdk_loader.OpenStackConfig):
    """openstacksdk's loader, with the auth type checked (and canonicalised) before any plugin is loaded."""

    infer_token = False  # auth_type not written: a token and no password means a token cloud

    def auth_config_hook(self, config: dict[str, Any]) -> dict[str, Any]:
        # called by get_one() after the key fix-ups and before the keystoneauth plugin is looked up
        config = super().auth_config_hook(config)
        auth_type = config.get("auth_type")
        plugin = _PLUGINS.get(auth_type.lower()) if isinstance(auth_type, str) else None
        if plugin is None:
            raise _UnsupportedAuthType(auth_type)
        auth = config.get("auth") or {}
        if plugin == "password" and self.infer_token:
            has_password = bool(auth.get("password") or config.get("password"))
            if not has_password and auth.get("token"):
                plugin = "token"
        config["auth_type"] = plugin
        return config


def resolve(name: str | None) -> CloudsYamlCloud:
    """The cloud ``name`` of clouds.yaml (None: ``OS_CLOUD``, else the ``OS_*`` variables).

    Raises ValueError — never showing a secret — when no cloud is named and the environment has none, the
    cloud is not found, its auth type is not supported, a required field is missing, or a setting differs
    between its regions other than by the region's name.
    """
    loader = _load()
    secrets = _secrets(loader)
    picked, where = _pick(loader, name)
    try:
        regions, settings = _read(loader, picked, secrets)
        found = _found(where, regions, settings)
    except ValueError as exc:  # openstacksdk's own messages were redacted in _sdk()
        raise ValueError(f"{where}: {exc}") from None
    log.debug("clouds.yaml: %s auth from %s", found.auth["type"], where)
    return found


def _found(where: str, regions: list[str], settings: dict[str, Any]) -> CloudsYamlCloud:
    interface = settings.get("interface")
    return CloudsYamlCloud(
        where=where,
        auth=_auth_mapping(settings),
        regions=regions,
        endpoint_override=settings.get("endpoint_override") or None,
        cacert=_path(settings["cacert"]) if settings.get("cacert") else None,
        cert=_path(settings["cert"]) if settings.get("cert") else None,
        key=_path(settings["key"]) if settings.get("key") else None,
        insecure=bool(settings.get("insecure")),
        interface=_interface(interface) if interface is not None else None,
    )


# --- loading ---------------------------------------------------------------------------------------


def _config_dirs() -> list[str]:
    """The directories openstacksdk searches, computed now.

    openstacksdk computes its lists once, when ``openstack.config.loader`` is imported (``CONFIG_FILES``
    from ``os.getcwd()`` and ``~``), so a later ``chdir`` or ``HOME`` would be missed; same order here.
    """
    snap_home = os.environ.get("SNAP_REAL_HOME")
    home_config = (
        os.path.join(snap_home, ".config", "openstack") if snap_home else os.path.expanduser("~/.config/openstack")
    )
    user_dirs = [os.getcwd(), sdk_loader.PLATFORMDIRS.user_config_dir, home_config]
    return _unique(user_dirs + _site_config_dirs())


def _site_config_dirs() -> list[str]:
    return [sdk_loader.PLATFORMDIRS.site_config_dir, sdk_loader.UNIX_SITE_CONFIG_HOME]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _files(dirs: list[str], stem: str) -> list[str]:
    return [os.path.join(d, stem + suffix) for d in dirs for suffix in _SUFFIXES]


def _load() -> _Loader:
    dirs = _config_dirs()
    try:
        return _Loader(
            config_files=_files(dirs, "clouds"),
            secure_files=_files(dirs, "secure"),
            vendor_files=_files(dirs, "clouds-public"),
            load_yaml_config=True,
            load_envvars=True,
            app_name="schema-drift-monitor",
        )
    except Exception as exc:  # the file is not a mapping, OS_CLOUD_NAME clashes, ...
        raise ValueError(f"cannot read clouds.yaml: {_redact(str(exc), _env_secrets())}") from None


def _is_synthetic(loader: _Loader) -> bool:
    """openstacksdk invents a cloud called ``defaults`` when it found no file and no ``OS_*`` variable."""
    names = loader.get_cloud_names()
    return names == ["defaults"] and loader.config_filename is None and loader.secure_config_filename is None


def _pick(loader: _Loader, requested: str | None) -> tuple[str, str]:
    """The cloud's name in the loader, and how to name its source in messages."""
    names = [] if _is_synthetic(loader) else loader.get_cloud_names()
    env_cloud = loader.envvar_key
    if requested is None:
        # not the loader's default_cloud: with a single cloud in clouds.yaml it would pick that one silently
        requested = os.environ.get("OS_CLOUD") or None
        if requested is None:
            if env_cloud not in names:
                raise ValueError(
                    "no cloud named (auth.cloud) and no OS_CLOUD or OS_AUTH_URL/OS_* variables in the environment"
                )
            requested = env_cloud
        elif requested not in names:
            raise ValueError(f"cloud {requested!r} (from OS_CLOUD) not found in {_searched(loader)}")
    if requested not in names:
        raise ValueError(f"cloud {requested!r} not found in {_searched(loader)}")
    if requested == env_cloud:
        return requested, "the OS_* environment variables"
    source = loader.config_filename or loader.secure_config_filename
    return requested, f"cloud {requested!r} in {source}"


def _searched(loader: _Loader) -> str:
    files = [f for f in (loader.config_filename, loader.secure_config_filename) if f]
    if files:
        known = [n for n in loader.get_cloud_names() if n != loader.envvar_key]
        return f"{' and '.join(files)} (clouds there: {', '.join(known) or 'none'})"
    where = ", ".join(f"{d}/" for d in _config_dirs())
    return f"any clouds.yaml (looked in {where}; OS_CLIENT_CONFIG_FILE is not set)"


def _read(loader: _Loader, name: str, secrets: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The cloud's region names and its settings, the same in every region (or templated by region)."""
    raw = loader.cloud_config["clouds"][name]
    if not isinstance(raw, dict):
        raise ValueError("the cloud's entry is not a mapping")
    profile = raw.get("profile", raw.get("cloud"))
    if isinstance(profile, str) and urlparse(profile).netloc and profile not in sdk_vendors.profiles():
        # openstacksdk would fetch <profile>/.well-known/openstack/api (vendors.get_profile)
        raise ValueError(f"profile {profile!r} is a URL; remote vendor profiles are not fetched: copy its settings")
    if name == loader.envvar_key:  # the loader lays its defaults (auth_type: password) under OS_* values
        explicit = any(os.environ.get(k) for k in ("OS_AUTH_TYPE", "OS_AUTH_PLUGIN"))
    else:
        explicit = any(k in raw for k in ("auth_type", "auth-type", "auth_plugin", "auth-plugin"))
    loader.infer_token = not explicit
    # the loader's own per-cloud region list (regions, region_name, or the vendor profile's regions)
    known = _sdk(lambda: loader._get_known_regions(name), secrets)
    regions = [str(r["name"]) for r in known if r.get("name")]
    per_region = [
        (region, _settings(_sdk(partial(loader.get_one, name, validate=True, region_name=region), secrets)))
        for region in regions or [""]
    ]
    return regions, _merge(per_region)


def _sdk(call: Callable[[], _T], secrets: list[str]) -> _T:
    """Runs an openstacksdk call; its failures become ValueError without a secret."""
    try:
        with warnings.catch_warnings():
            # get_one() always passes an influxdb_config dict (all None) to CloudRegion, which then warns
            # that InfluxDB support is deprecated (cloud_region.py, "if influxdb_config:"): not the user's doing
            warnings.filterwarnings("ignore", "Support for InfluxDB", sdk_warnings.RemovedInSDK60Warning)
            return call()
    except _UnsupportedAuthType as exc:
        raise ValueError(f"auth_type {exc.auth_type!r} is not supported (supported: {_SUPPORTED})") from None
    except ksa_exceptions.MissingRequiredOptions as exc:
        missing = ", ".join(opt.dest for opt in exc.options)
        raise ValueError(f"auth needs {missing}") from None
    except (KeyError, IndexError, AttributeError) as exc:
        # str.format() on the cloud's values (loader.get_one, magic_fixes): the message is a piece of the
        # value, which could be a secret, so only the kind of problem is told
        hint = " (the region is {region_name} in clouds.yaml)" if exc.args == ("region",) else ""
        raise ValueError(
            f"openstacksdk cannot expand a '{{...}}' placeholder in a value{hint} ({type(exc).__name__})"
        ) from None
    except (sdk_exceptions.ConfigException, ksa_exceptions.ClientException, TypeError, ValueError) as exc:
        raise ValueError(f"openstacksdk cannot use it: {_redact(str(exc), secrets)}") from None


def _settings(region: CloudRegion) -> dict[str, Any]:
    """What the monitor takes from one CloudRegion, flattened (``auth.<key>`` for the auth section)."""
    config = region.config
    settings: dict[str, Any] = {"auth_type": config.get("auth_type")}
    for key, value in (config.get("auth") or {}).items():
        if value not in (None, ""):
            settings[f"auth.{key}"] = value
    settings["cacert"] = config.get("cacert") or None
    settings["cert"] = config.get("cert") or None
    settings["key"] = config.get("key") or None
    settings["insecure"] = _is_true(config.get("insecure")) or _is_false(config.get("verify"))
    settings["endpoint_override"] = region.get_endpoint("image")
    settings["interface"] = region.get_interface("image")
    return settings


def _is_true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "1"))


def _is_false(value: object) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in ("false", "no", "0"))


def _merge(per_region: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    keys = _unique(k for _, settings in per_region for k in settings)
    merged: dict[str, Any] = {}
    for key in keys:
        values = [(region, settings.get(key)) for region, settings in per_region]
        first = values[0][1]
        if all(value == first for _, value in values):
            if first is not None:
                merged[key] = first
            continue
        template = _template(values) if key in _TEMPLATED else None
        if template is None:
            differing = ", ".join(region for region, _ in values)
            raise ValueError(
                f"{key} differs between the regions {differing}; the monitor needs one value "
                f"(only {', '.join(sorted(_TEMPLATED))} may differ, and only by the region name)"
            )
        merged[key] = template
    return merged


def _template(values: list[tuple[str, Any]]) -> str | None:
    """One ``{region}`` template for values that differ only by their region's name, else None."""
    templates = {
        value.replace(region, REGION_PLACEHOLDER) if isinstance(value, str) and region else None
        for region, value in values
    }
    if len(templates) != 1:
        return None
    template = templates.pop()
    return template if template and REGION_PLACEHOLDER in template else None


# --- mapping ---------------------------------------------------------------------------------------


def _path(value: Any) -> Path:
    return Path(os.path.expanduser(str(value)))


def _interface(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    name = value.removesuffix("URL") if isinstance(value, str) else None
    if name not in _INTERFACES:
        raise ValueError(f"interface must be one of {', '.join(_INTERFACES)}, got {value!r}")
    return name


def _auth_mapping(settings: dict[str, Any]) -> dict[str, Any]:
    """The cloud's ``auth:`` as the monitor's config would write it (validated by the configuration)."""
    auth = {k.removeprefix("auth."): v for k, v in settings.items() if k.startswith("auth.")}
    plugin = settings.get("auth_type")
    if plugin == "token":
        # a static token: sent as is, never renewed; the auth_url and scope it was issued for are not needed
        if not auth.get("token"):
            raise ValueError("auth_type token needs auth.token (OS_TOKEN)")
        return {"type": "token", "token": auth["token"]}
    for key in _UNSUPPORTED_AUTH_KEYS:
        if key in auth:
            raise ValueError(f"auth.{key} is not supported by the monitor")
    data = {f: auth[f] for f in _KEYSTONE_FIELDS if f in auth}
    for kind in ("id", "name"):  # keystoneauth's generic plugins: the domain of user and project by default
        default = auth.get(f"default_domain_{kind}")
        for scope in ("user", "project"):
            if default and not (data.get(f"{scope}_domain_id") or data.get(f"{scope}_domain_name")):
                data[f"{scope}_domain_{kind}"] = default
    if plugin == "password":
        data.update({f: auth[f] for f in ("username", "user_id", "password") if f in auth})
        return {"type": "password", **data}
    fields = ("application_credential_id", "application_credential_name", "application_credential_secret")
    # an application credential carries its own scope: project/domain settings (often inherited from
    # OS_PROJECT_* or default_domain) would only make Keystone refuse it
    data = {f: value for f, value in data.items() if not f.startswith(("project_", "domain_"))}
    data.update({f: auth[f] for f in (*fields, "username", "user_id") if f in auth})
    return {"type": "application_credential", **data}


# --- secrets ---------------------------------------------------------------------------------------


def _secrets(loader: _Loader) -> list[str]:
    """Every secret-looking value the loader holds or the environment has, longest first."""
    found = set(_env_secrets())

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str | int) and any(w in str(key).lower() for w in _SECRET_WORDS):
                    found.add(str(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(loader.cloud_config)
    return _secret_forms(found)


def _env_secrets() -> list[str]:
    return _secret_forms(
        value
        for key, value in os.environ.items()
        if key.startswith("OS_") and any(w in key.lower() for w in _SECRET_WORDS)
    )


def _secret_forms(values: Iterable[str]) -> list[str]:
    forms = {form for value in values if value for form in (value, repr(value)[1:-1])}
    return sorted(forms, key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
