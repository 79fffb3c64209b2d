"""Alembic environment: runs migrations on the engine handed over by ``monitor.store.engine``.

Run migrations through ``schema-drift-monitor db upgrade``; the package builds the Alembic config itself,
so there is no alembic.ini to keep in sync.
"""

from alembic import context
from sqlalchemy import Engine

from monitor.store.tables import Base

engine: Engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
