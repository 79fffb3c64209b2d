"""Signals to the outside: Prometheus metrics, notifications and the git export.

``metrics`` is the one door to prometheus_client; ``notify`` delivers grouped change reports through the
outbox, one module per channel; ``gitexport`` writes the snapshots to a git repository (dulwich).

May import: ``store`` (the outbox, the export), ``judge``, ``config``, ``domain``.
"""
