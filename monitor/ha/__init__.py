"""High availability: replicas sharing one PostgreSQL — membership, ownership of targets, the leader.

``ownership`` computes who polls what (pure: rendezvous hashing with bounded loads); ``replicas`` heartbeats,
holds leases and hands the owned set to :mod:`monitor.targets.retarget`.

May import: ``targets``, ``signals``, ``store``, ``config``, ``domain``.
"""
