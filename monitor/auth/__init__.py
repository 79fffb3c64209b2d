"""Credentials for the polled endpoints: static tokens, Keystone v3 / Huawei IAM, AK/SK signing, clouds.yaml.

``credentials`` holds the runtime objects that put credentials on a request; ``manager`` builds one per
(cloud, region); ``clouds`` reads clouds.yaml. (Region discovery, which uses these, is
:mod:`monitor.targets.discovery`.)

May import: ``signals`` (its metrics), ``config.settings`` (the plain settings the configuration builds for it:
never pydantic or the configuration's models), ``domain``.
"""
