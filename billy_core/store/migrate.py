"""Run Alembic migrations programmatically: `upgrade(url)` at start, `downgrade(url)` in tests.

Roles started together on a fresh database all call `upgrade`; a PostgreSQL advisory lock
(held on the migration's own connection) makes them take turns, so one migrates and the
others find the database already at head.
"""

from __future__ import annotations

import sqlalchemy
import sqlalchemy.pool
from alembic import command
from alembic.config import Config

HEAD = "head"
# pg_advisory_lock key: any constant unique to billy's migrations ("billymig" in ASCII).
MIGRATION_LOCK_KEY = 0x62696C6C796D6967


def _config(sqlalchemy_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "billy_core:migrations")
    # '%' is ConfigParser's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


def upgrade(sqlalchemy_url: str, revision: str = HEAD) -> None:
    engine = sqlalchemy.create_engine(sqlalchemy_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            try:
                config = _config(sqlalchemy_url)
                config.attributes["connection"] = conn  # env.py migrates on this connection
                command.upgrade(config, revision)
                conn.commit()
            except BaseException:
                # A failed migration leaves the transaction aborted: roll back first, so the
                # unlock below can run and the migration's own error is the one raised.
                conn.rollback()
                raise
            finally:
                conn.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY}
                )
                conn.commit()
    finally:
        engine.dispose()


def downgrade(sqlalchemy_url: str, revision: str = "base") -> None:
    command.downgrade(_config(sqlalchemy_url), revision)
