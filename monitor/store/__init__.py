"""Storage: the only package that imports SQLAlchemy and Alembic; ``database.Database`` is the door the rest uses.

May import: ``domain`` only. Nothing from ``signals``, ``fleet``, ``read``, ``poll`` or ``web``.
"""
