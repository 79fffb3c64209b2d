"""Polling: when each target is polled and what one poll does — the write path of the monitor.

``scheduler`` decides when (APScheduler: one job per target, plus housekeeping jobs; a stop's grace period);
``service`` does one poll (fetch → judge → store → fleet → signals) and returns a
:class:`~monitor.domain.PollResult`; ``fetch`` is the HTTP client (the one door to httpx for polls);
``digest`` turns a body into a canonical document (with a cache of recent ones); ``firsts`` writes first
snapshots in batches; ``lastseen`` batches the times of unchanged polls and ``housekeeping`` writes them
(and prunes, and re-reads drift state); ``outcomes`` logs a target's outcome when it changes.

May import: ``judge``, ``fleet``, ``signals``, ``store``, ``auth``, ``config``, ``domain``. Never ``read`` or
``web``: the write path does not depend on how answers are read.
"""
