"""Credentials for the polled endpoints: static tokens, Keystone v3 / Huawei IAM, AK/SK signing, clouds.yaml.

``models`` holds the configuration (imported by :mod:`monitor.config`, so it must stay light);
``credentials`` the runtime objects that put credentials on a request; ``manager`` builds one per
(cloud, region); ``clouds`` reads clouds.yaml; ``discovery`` finds regions in the identity service.
"""
