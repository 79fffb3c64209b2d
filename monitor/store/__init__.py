"""Storage: the only package that imports SQLAlchemy; ``database.Database`` is the door the rest uses."""
