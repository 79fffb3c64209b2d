"""Polling: when each target is polled and what one poll does — the write path of the monitor.

``scheduler`` decides when (APScheduler: one job per target, plus housekeeping jobs); ``service`` does one poll
(fetch → judge → store → fleet → signals) and returns a :class:`~monitor.domain.PollResult`; ``fetch`` is the
HTTP client (the one door to httpx for polls); ``lastseen`` batches the times of unchanged polls.

May import: ``judge``, ``fleet``, ``signals``, ``store``, ``auth``, ``config``, ``domain``. Never ``read`` or
``web``: the write path does not depend on how answers are read.
"""
