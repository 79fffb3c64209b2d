"""Storage: the only package that imports SQLAlchemy and Alembic.

``records`` is the port: the plain data classes and errors the rest of the monitor passes in and gets back
(no SQLAlchemy there). ``database.Database`` is the door to the adapters behind it: ``repository``
(targets, snapshots, changes, poll outcomes), ``drift`` (baselines, acknowledgements, expected windows,
rollouts), ``outbox`` (notifications), ``export`` (the git export's reads) and ``coordination`` (replicas
and leases); ``engine`` builds engines and runs the migrations, ``sqlite_lock`` keeps one process per
SQLite file.

May import: ``domain`` only. Nothing from ``signals``, ``fleet``, ``read``, ``poll`` or ``web``.
"""
