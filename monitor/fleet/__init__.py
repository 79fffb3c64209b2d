"""The fleet: what follows from every region's current document — deviation, rollouts, flapping, drift.

``live`` keeps that state in memory after each poll and exports it as metrics (the leader exports the
group series).

May import: ``judge``, ``signals``, ``store``, ``config``, ``domain``.
"""
