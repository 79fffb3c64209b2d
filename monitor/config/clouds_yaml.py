"""``auth: {type: cloud}``: a cloud completed from what clouds.yaml (+ secure.yaml, or ``OS_*``) says about it.

Reading clouds.yaml needs openstacksdk, an optional extra, so the reader (:func:`monitor.auth.clouds.resolve`) is
passed in by the caller. What it found is applied only where the config leaves a setting unset (the config wins),
and the completed cloud is validated like any other: its auth mapping by the same models as one written in the
config file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from monitor.config.auth import CloudsYamlAuth
from monitor.config.cloud import CloudConfig
from monitor.config.errors import Problem, report, validation_problems
from monitor.config.models import Config
from monitor.config.settings import CloudsYamlCloud

CloudsYamlReader = Callable[[str | None], CloudsYamlCloud]
"""Reads one cloud of clouds.yaml by name (None: ``OS_CLOUD`` / ``OS_*``); raises ValueError without secrets.

:func:`monitor.auth.clouds.resolve` is the one implementation; it needs openstacksdk, so the caller passes it in.
"""

NO_CLOUDS_YAML = "type cloud needs openstacksdk: pip install 'schema-drift-monitor[openstack]'"


def resolve_clouds_yaml(config: Config, reader: CloudsYamlReader | None) -> tuple[Config, list[Problem]]:
    """Replace every ``auth: {type: cloud}`` by what ``reader`` finds in clouds.yaml; returns problems found."""
    problems: list[Problem] = []
    clouds = list(config.clouds)
    for i, cloud in enumerate(clouds):
        if not isinstance(cloud.auth, CloudsYamlAuth):
            continue
        try:
            if reader is None:
                raise ValueError(NO_CLOUDS_YAML)
            clouds[i] = apply_clouds_yaml(cloud, reader(cloud.auth.cloud))
        except ValueError as exc:
            problems.append(Problem(("clouds", i, "auth"), str(exc)))
    return config.model_copy(update={"clouds": clouds}), problems


def apply_clouds_yaml(cloud: CloudConfig, found: CloudsYamlCloud) -> CloudConfig:
    """``cloud`` with its ``auth: {type: cloud}`` replaced by ``found``, validated like any other cloud.

    Regions, endpoint, TLS settings and the discovery interface are taken from clouds.yaml only where the
    config leaves them unset. Raises ValueError (without a secret) when the completed cloud is invalid.
    """
    data = {**cloud.model_dump(), **_clouds_yaml_update(cloud, found)}
    try:
        return CloudConfig.model_validate(data)
    except ValidationError as exc:
        # pydantic's own str(exc) would show the input values: only locations and messages are told
        lines = report(validation_problems(exc.errors(), data), data)
        raise ValueError(f"{found.where}: {'; '.join(lines)}") from None


def _clouds_yaml_update(cloud: CloudConfig, found: CloudsYamlCloud) -> dict[str, Any]:
    """The CloudConfig fields to change: the auth, and whatever the config leaves unset."""
    update: dict[str, Any] = {"auth": dict(found.auth)}
    if cloud.regions is None and found.regions:
        update["regions"] = found.regions
    if found.endpoint_override and cloud.endpoint is None and cloud.endpoint_override is None:
        update["endpoint_override"] = found.endpoint_override
    if found.cacert and cloud.ca_bundle is None:
        update["ca_bundle"] = found.cacert
    if (found.cert or found.key) and cloud.cert is None and cloud.key is None:
        update["cert"], update["key"] = found.cert, found.key
    if found.insecure and "insecure" not in cloud.model_fields_set:
        update["insecure"] = True
    if found.interface is not None and "interface" not in cloud.discovery.model_fields_set:
        update["discovery"] = {**cloud.discovery.model_dump(), "interface": found.interface}
    return update
