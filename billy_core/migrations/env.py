"""Alembic environment: runs billy's numbered migrations against `sqlalchemy.url`, or on the
connection `billy_core.store.migrate.upgrade` passes in (holding the migration lock)."""

from alembic import context
from sqlalchemy import create_engine, pool

from billy_core.store.tables import metadata

config = context.config
given = config.attributes.get("connection")


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if given is not None:
    _run(given)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()
