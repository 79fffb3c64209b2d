"""Loading: a YAML file and the environment → a validated :class:`~monitor.config.models.Config`, or one
:class:`~monitor.config.errors.ConfigError` listing every problem.

``${VAR}`` in any string is replaced from the environment (an unset one is a problem, told where it is written);
``<key>_file`` keys are read by the models. The steps — YAML, variables, the models, clouds.yaml, the static
tokens — all add to one list of problems, told together (:func:`monitor.config.errors.report`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.auth import TokenAuth
from monitor.config.clouds_yaml import CloudsYamlReader, resolve_clouds_yaml
from monitor.config.consumers import consumer_problems
from monitor.config.errors import ConfigError, Location, Problem, report, validation_problems
from monitor.config.models import Config

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_config(path: str | Path, clouds_yaml: CloudsYamlReader | None = None) -> Config:
    """Read and validate the YAML file at ``path``; raises ConfigError (never a bare exception).

    ``clouds_yaml`` as for :func:`parse_config`.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {_yaml_problem(exc)}"]) from None
    return parse_config(data, source, clouds_yaml)


def parse_config(data: Any, source: str = "<config>", clouds_yaml: CloudsYamlReader | None = None) -> Config:
    """Validate already-parsed YAML data; raises ConfigError listing every problem.

    ``clouds_yaml`` reads clouds for ``auth: {type: cloud}`` (without it, such a cloud is a problem).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of sections"])
    problems: list[Problem] = []
    substituted = substitute_env(data, (), problems)
    try:
        config = Config.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(source, report(problems + validation_problems(exc.errors(), data), data)) from None
    config, found = resolve_clouds_yaml(config, clouds_yaml)
    problems += found + _token_problems(config) + consumer_problems(config)
    if not config.clouds:
        problems.append(Problem(("clouds",), "at least one cloud is needed"))
    if problems:
        raise ConfigError(source, report(problems, data))
    return config


def substitute_env(node: Any, path: Location, problems: list[Problem]) -> Any:
    """``node`` with ``${VAR}`` replaced in every string; an unset variable is a problem at its place (and
    becomes the empty string). ``*_file`` keys are left for the models to read."""
    if isinstance(node, dict):
        return {key: substitute_env(value, (*path, key), problems) for key, value in node.items()}
    if isinstance(node, list):
        return [substitute_env(value, (*path, i), problems) for i, value in enumerate(node)]
    if isinstance(node, str):

        def value_of(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(Problem(path, f"environment variable {name} is not set", unset_variable=True))
                return ""
            return os.environ[name]

        return _ENV_RE.sub(value_of, node)
    return node


def _token_problems(config: Config) -> list[Problem]:
    """A static token that cannot be used (its file unreadable, or empty) is a problem now, not at the first poll."""
    problems = []
    for i, cloud in enumerate(config.clouds):
        if isinstance(cloud.auth, TokenAuth):
            try:
                cloud.auth.resolve()
            except ValueError as exc:
                field = "token" if cloud.auth.token is not None else "token_file"
                problems.append(Problem(("clouds", i, "auth", field), str(exc)))
    return problems


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's excerpt of the line (it may hold a secret)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)
