"""The fleet: what follows from every region's current document — deviation, rollouts, flapping, drift.

``rules`` defines each of those facts once, as pure functions (``domain`` and ``judge`` only), for ``live``
and for the read model (:mod:`monitor.read.model`) alike; ``live`` keeps their inputs in memory after each
poll and exports the answers as metrics (the leader exports the group series).

May import: ``judge``, ``signals``, ``store``, ``config``, ``domain`` (``rules``: ``judge`` and ``domain`` only).
"""
