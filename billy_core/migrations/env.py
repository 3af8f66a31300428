"""Alembic environment: runs billy's numbered migrations against `sqlalchemy.url`."""

from alembic import context
from sqlalchemy import create_engine, pool

from billy_core.store.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
engine = create_engine(url, poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
