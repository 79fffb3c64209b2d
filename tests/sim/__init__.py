"""Test support: the simulators the tests run against, and their own tests.

``regions``: the demo's region server (:mod:`monitor.demo.server`) with faults, request counts, an
authorizer hook and a control API (``python -m tests.sim.regions --regions a,b --port 8000 [--token T]``
from the repository root). ``identity``: a fake Keystone v3 / Huawei IAM identity service, and the
authorizer that makes the region simulator enforce its credentials. Neither ships in the wheel.
"""
