"""Everything the tests share, in one place: free ports, waiting, the daemon as a process, a webhook receiver,
PgBouncer, Grafana's queries, and the simulators the tests run against (with their own tests).

``regions``: the demo's region server (:mod:`monitor.demo.server`) with faults, request counts, an
authorizer hook and a control API (``python -m tests.support.regions --regions a,b --port 8000 [--token T]``
from the repository root). ``identity``: a fake Keystone v3 / Huawei IAM identity service, and the
authorizer that makes the region simulator enforce its credentials. ``surface``: the real OpenStack version
documents served as a catalog's services. ``polling``, ``fetching``, ``live_api`` and ``stored``: the helpers
the tests of the poll service, the fetcher, the read API and the store share. None of it ships in the wheel.
"""
