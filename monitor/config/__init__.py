"""YAML + environment → a frozen, typed configuration; its expansion into targets; clouds.yaml; the API catalog.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` whose message lists every problem
found, each once, as ``<file>: <field>: <what is wrong>`` (a cloud named: ``clouds[5] (huawei-iam).auth.password``).
``${VAR}`` in any string is replaced from the environment; keys ending in ``_file`` read a secret from a file.
Secrets are held as ``SecretStr`` in the models and :class:`~monitor.config.settings.Secret` in the plain settings,
so no ``repr``, log line or error message shows them.

The package, one job per module:

* :mod:`~monitor.config.types` — building blocks: durations, sizes, names, secret files, the base model;
* :mod:`~monitor.config.auth` — the ``auth:`` models; :mod:`~monitor.config.cloud` — one cloud and the poll
  settings; :mod:`~monitor.config.models` — the other sections and :class:`Config`, the whole file;
* :mod:`~monitor.config.consumers` — the ``consumers:`` section: clients and their requirements, checked against
  the clouds (docs/consumers.md);
* :mod:`~monitor.config.targets` — the expansion of clouds into :class:`~monitor.domain.TargetSpec`;
  :mod:`~monitor.config.catalog` — the API-surface documents of a catalog service;
* :mod:`~monitor.config.loading` — file, environment, the list of problems (:mod:`~monitor.config.errors`);
  :mod:`~monitor.config.clouds_yaml` — completing a cloud from clouds.yaml;
* :mod:`~monitor.config.settings` — the plain settings built for the credentials and discovery (standard
  library only: :mod:`monitor.auth` and :mod:`monitor.targets.discovery` import nothing else from here);
* :mod:`~monitor.config.webconfig` — the exporter-toolkit web configuration of the port (TLS, basic auth).

May import: ``domain``, pydantic and PyYAML (this package is their one door, with the web API's own models).
"""

from __future__ import annotations

from monitor.config.cloud import (
    SCHEMA_PATH_PREFIX,
    AuthConfig,
    CloudConfig,
    Defaults,
    DiscoveryConfig,
    IgnoreConfig,
    PollSettings,
    SchemaConfig,
    TargetAuth,
)
from monitor.config.clouds_yaml import NO_CLOUDS_YAML, CloudsYamlReader, apply_clouds_yaml, resolve_clouds_yaml
from monitor.config.consumers import ConsumerConfig, RequirementConfig, consumer_contracts
from monitor.config.errors import ConfigError
from monitor.config.loading import load_config, parse_config
from monitor.config.models import (
    DEFAULT_DATABASE_URL,
    DEFAULT_LISTEN,
    AlertmanagerChannel,
    ApiConfig,
    ChangesConfig,
    ChannelConfig,
    ChannelSettings,
    Config,
    DatabaseConfig,
    ExpectedWindowConfig,
    HaConfig,
    HttpConfig,
    MetricsConfig,
    NotificationsConfig,
    PollingConfig,
    SlackChannel,
    UiConfig,
    WebhookChannel,
)
from monitor.config.settings import BASE, CloudsYamlCloud

__all__ = [
    "BASE",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_LISTEN",
    "NO_CLOUDS_YAML",
    "SCHEMA_PATH_PREFIX",
    "AlertmanagerChannel",
    "ApiConfig",
    "AuthConfig",
    "ChangesConfig",
    "ChannelConfig",
    "ChannelSettings",
    "CloudConfig",
    "CloudsYamlCloud",
    "CloudsYamlReader",
    "Config",
    "ConfigError",
    "ConsumerConfig",
    "DatabaseConfig",
    "Defaults",
    "DiscoveryConfig",
    "ExpectedWindowConfig",
    "HaConfig",
    "HttpConfig",
    "IgnoreConfig",
    "MetricsConfig",
    "NotificationsConfig",
    "PollSettings",
    "PollingConfig",
    "RequirementConfig",
    "SchemaConfig",
    "SlackChannel",
    "TargetAuth",
    "UiConfig",
    "WebhookChannel",
    "apply_clouds_yaml",
    "consumer_contracts",
    "load_config",
    "parse_config",
    "resolve_clouds_yaml",
]
